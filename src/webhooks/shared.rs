//! What every sender shares, the consumer's first attempts and the claimers' alike:
//! the client, the slots (`WEBHOOK_CONCURRENCY` in flight at most), the attempts in
//! flight to each endpoint, the recorder's queue and the claimers' wake-up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc};

use super::WebhookSettings;
use super::send::Sender;
use crate::domain::{DeliverySchedule, Timestamp, WebhookId};
use crate::store::FinishedAttempt;

/// How long a claim outlives the attempt's timeout before another sender may take the
/// delivery: an attempt that has not been recorded by then is presumed lost.
const LEASE_MARGIN: Duration = Duration::from_secs(10);

/// An attempt made, and when its event happened (for the latency metric).
pub(super) struct Made {
    pub attempt: FinishedAttempt,
    pub occurred_at: Timestamp,
}

/// What every sender shares: the client, the slots (at most `WEBHOOK_CONCURRENCY`
/// attempts in flight in all), the recorder's queue, and the claimers' wake-up.
pub(super) struct Shared {
    pub sender: Sender,
    pub slots: Arc<Semaphore>,
    pub made: mpsc::UnboundedSender<Made>,
    pub schedule: DeliverySchedule,
    /// A claim's lease: the attempt's timeout and a margin.
    pub lease: Duration,
    pub wake: Arc<Notify>,
    /// The slots in all (`WEBHOOK_CONCURRENCY`).
    pub concurrency: usize,
    /// Attempts in flight to each endpoint, first attempts and claimed ones alike: none
    /// gets more than its share of the slots, so one that hangs holds up no other.
    flying: Flying,
}

/// Attempts in flight, by endpoint.
type Flying = Arc<Mutex<HashMap<WebhookId, usize>>>;

/// One attempt counted in flight to its endpoint, until dropped.
pub(super) struct Flight {
    flying: Flying,
    endpoint: WebhookId,
}

impl Drop for Flight {
    fn drop(&mut self) {
        let mut flying = self
            .flying
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = flying.get_mut(&self.endpoint) {
            *count -= 1;
            if *count == 0 {
                flying.remove(&self.endpoint);
            }
        }
    }
}

impl Shared {
    /// The shared parts, and the recorder's end of its queue.
    pub fn new(
        settings: &WebhookSettings,
    ) -> reqwest::Result<(Self, mpsc::UnboundedReceiver<Made>)> {
        let (made, to_record) = mpsc::unbounded_channel();
        let shared = Self {
            sender: Sender::new(settings.timeout, settings.network)?,
            slots: Arc::new(Semaphore::new(settings.concurrency)),
            made,
            schedule: settings.schedule,
            lease: settings.timeout + LEASE_MARGIN,
            wake: Arc::new(Notify::new()),
            concurrency: settings.concurrency,
            flying: Flying::default(),
        };
        Ok((shared, to_record))
    }

    /// Each endpoint's share of the slots, among `enabled` endpoints.
    pub fn share(&self, enabled: usize) -> usize {
        (self.concurrency / enabled.max(1)).max(1)
    }

    /// Counts an attempt to `endpoint` as in flight, unless it has `share` already;
    /// the count ends when the returned flight is dropped, however the attempt ends.
    pub fn take_off(&self, endpoint: WebhookId, share: usize) -> Option<Flight> {
        let mut flying = self.flying.lock().expect("not poisoned");
        let count = flying.entry(endpoint).or_default();
        if *count >= share {
            return None;
        }
        *count += 1;
        Some(Flight {
            flying: self.flying.clone(),
            endpoint,
        })
    }

    /// The endpoints with attempts in flight, and how many.
    pub fn in_flight(&self) -> HashMap<WebhookId, usize> {
        self.flying.lock().expect("not poisoned").clone()
    }
}
