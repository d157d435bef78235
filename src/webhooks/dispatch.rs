//! The claimers: claim due deliveries (retries, deliveries that waited behind an
//! earlier event of their order, those sent again by operators, and any whose sender
//! died), make each attempt within the shared slots (`WEBHOOK_CONCURRENCY` in flight
//! at most), decide what follows from the answer, and record attempts in batches. A
//! receiver that hangs holds one of those slots until the timeout, never a request of
//! the API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::WebhookSettings;
use super::send::{Sender, Sent, Target};
use crate::domain::{
    AfterAttempt, Answer, DeliverySchedule, OrderEvent, Timestamp, WebhookId, now,
};
use crate::store::{
    ClaimOutcome, DeliveryClaim, DeliveryRooms, FinishedAttempt, NextStep, Store, StoreError,
};
use crate::wire::WebhookPayload;

/// How often due deliveries are looked for when nothing woke the claimers (retries
/// come due by the clock, and other instances' deliveries are not announced).
const POLL: Duration = Duration::from_millis(100);
/// Most attempts recorded in one write.
const RECORD_BATCH: usize = 512;
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
    fn in_flight(&self) -> HashMap<WebhookId, usize> {
        self.flying.lock().expect("not poisoned").clone()
    }
}

/// Claims due deliveries and sends them until `stop`.
pub(super) async fn claim_until_stopped(
    store: Arc<dyn Store>,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    while !stop.is_cancelled() {
        match claim_and_send(&store, &shared).await {
            // Every free slot taken, or an endpoint's whole share: more may be due.
            Ok(round) if round.more => continue,
            Ok(_) => {}
            Err(err) => warn!(error = %err, "claiming webhook deliveries failed; will retry"),
        }
        tokio::select! {
            () = shared.wake.notified() => {}
            () = tokio::time::sleep(POLL) => {}
            () = stop.cancelled() => {}
        }
    }
}

/// What one round of claims found.
#[derive(Debug, Default)]
struct Round {
    /// Whether more may be due at once: every free slot was taken, or some endpoint
    /// took its whole share of them.
    more: bool,
}

/// Claims what is due for the free slots and starts an attempt for each.
async fn claim_and_send(store: &Arc<dyn Store>, shared: &Arc<Shared>) -> Result<Round, StoreError> {
    let free = shared.slots.available_permits();
    if free == 0 {
        return Ok(Round::default());
    }
    let endpoints = store.endpoints().await?;
    let enabled = endpoints.iter().filter(|e| e.disabled_at.is_none()).count();
    if enabled == 0 {
        return Ok(Round::default());
    }
    // The slots are taken before the claim, and never more claimed than taken: every
    // delivery claimed starts at once, none waits for a slot while its lease runs out.
    let Ok(mut taken) = shared
        .slots
        .clone()
        .try_acquire_many_owned(u32::try_from(free).unwrap_or(u32::MAX))
    else {
        // The consumer of the log took some meanwhile: again at the next wake-up.
        return Ok(Round::default());
    };
    // Each endpoint gets its part of the free slots, and none more in flight than its
    // share of them all: one with a backlog, or one that hangs, holds up no other.
    let share = shared.share(enabled);
    let fair = (free / enabled).max(1);
    let rooms = DeliveryRooms {
        each: fair,
        except: shared
            .in_flight()
            .into_iter()
            .map(|(endpoint, n)| (endpoint, fair.min(share.saturating_sub(n))))
            .collect(),
    };
    let at = now();
    let claims = store
        .claim_deliveries(&rooms, free, at, shared.lease)
        .await?;
    if claims.is_empty() {
        return Ok(Round::default());
    }
    let mut shares: HashMap<WebhookId, usize> = HashMap::new();
    for claim in &claims {
        *shares.entry(claim.delivery.endpoint_id).or_default() += 1;
    }
    let round = Round {
        more: claims.len() >= free || shares.iter().any(|(endpoint, n)| *n >= rooms.of(*endpoint)),
    };
    let positions: Vec<i64> = claims.iter().map(|c| c.delivery.event_position).collect();
    let events: HashMap<i64, OrderEvent> = store
        .events_at(&positions)
        .await?
        .into_iter()
        .map(|event| (event.position, event))
        .collect();
    let mut targets: HashMap<WebhookId, Arc<Result<Target, String>>> = endpoints
        .iter()
        .map(|e| (e.id, Arc::new(Target::of(e, at))))
        .collect();
    for claim in claims {
        let target = match targets.get(&claim.delivery.endpoint_id) {
            Some(target) => target.clone(),
            // Registered after the list was read.
            None => {
                let target = Arc::new(match store.endpoint(claim.delivery.endpoint_id).await? {
                    Some(endpoint) => Target::of(&endpoint, at),
                    None => Err("the endpoint was removed".to_owned()),
                });
                targets.insert(claim.delivery.endpoint_id, target.clone());
                target
            }
        };
        // `None` only if retention took it, which it does not while it is owed.
        let event = events.get(&claim.delivery.event_position).cloned();
        let slot = taken.split(1).expect("a slot for every claim");
        let shared = shared.clone();
        // Counted whatever the share: the room was computed from it, and first
        // attempts that took off since (in slots freed meanwhile) make it over by as
        // many at most, for the length of these attempts.
        let flight = shared.take_off(claim.delivery.endpoint_id, usize::MAX);
        tokio::spawn(async move {
            let occurred_at = claim.delivery.occurred_at;
            let attempt = attempt(&shared, claim, event, &target).await;
            drop(flight);
            drop(slot);
            let _ = shared.made.send(Made {
                attempt,
                occurred_at,
            });
        });
    }
    Ok(round)
}

/// Makes one attempt and decides what follows it.
pub(super) async fn attempt(
    shared: &Shared,
    claim: DeliveryClaim,
    event: Option<OrderEvent>,
    target: &Result<Target, String>,
) -> FinishedAttempt {
    let (sender, schedule) = (&shared.sender, shared.schedule);
    let delivery = &claim.delivery;
    let retry =
        |at, retry_after| match schedule.after(delivery.attempts, at, fastrand::f64(), retry_after)
        {
            AfterAttempt::RetryAt(when) => NextStep::RetryAt(when),
            AfterAttempt::GiveUp => NextStep::GiveUp,
        };
    let finished = |at, status_code, error, next, gone, reached| FinishedAttempt {
        id: delivery.id,
        token: claim.token,
        endpoint_id: delivery.endpoint_id,
        at,
        status_code,
        error,
        next,
        gone,
        reached,
    };
    let sent = match (event, target) {
        (Some(event), Ok(target)) => {
            let body =
                serde_json::to_vec(&WebhookPayload::new(&event)).expect("an event serialises");
            sender
                .send(target, &delivery.event_id.hyphenated().to_string(), &body)
                .await
        }
        // Failures on this side are recorded, but say nothing of the endpoint's health.
        // Retention keeps what is owed, so only the recovery of a delivery older than
        // EVENT_RETENTION meets this one: nothing can be sent, now or later.
        (None, _) => {
            let why = "the event is no longer kept in the log (EVENT_RETENTION)";
            return finished(
                now(),
                None,
                Some(why.to_owned()),
                NextStep::GiveUp,
                false,
                false,
            );
        }
        (_, Err(why)) => {
            let why = format!("the endpoint cannot be used: {why}");
            let at = now();
            return finished(at, None, Some(why), retry(at, None), false, false);
        }
    };
    let at = now();
    let (status_code, error, next, gone) = match sent {
        Sent::Answered {
            status,
            retry_after,
            text,
        } => {
            let error = text.map(|text| format!("answered {status}: {text}"));
            match Answer::of(status) {
                Answer::Accepted => (Some(status), None, NextStep::Delivered, false),
                Answer::Gone => (Some(status), error, retry(at, None), true),
                Answer::Busy => (Some(status), error, retry(at, retry_after), false),
                Answer::Refused => (Some(status), error, retry(at, None), false),
            }
        }
        Sent::NoAnswer(why) => (None, Some(why), retry(at, None), false),
    };
    finished(at, status_code, error, next, gone, true)
}

/// Records attempts as they are made, in batches, until every sender is gone; wakes
/// the senders after each batch (the next event of an order may be due now).
pub(super) async fn record(
    store: Arc<dyn Store>,
    mut made: mpsc::UnboundedReceiver<Made>,
    wake: Arc<Notify>,
    disable_after: Duration,
) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    while made.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        let attempts: Vec<FinishedAttempt> = batch.iter().map(|m| m.attempt.clone()).collect();
        let mut wait = Duration::from_millis(100);
        let outcomes = loop {
            let failing_too_long =
                now() - chrono::Duration::from_std(disable_after).unwrap_or(chrono::Duration::MAX);
            match store.finish_deliveries(&attempts, failing_too_long).await {
                Ok(outcomes) => break Some(outcomes),
                // Unrecorded, the deliveries come due again when their claims' leases
                // end: sent again, never lost.
                Err(err) if wait > Duration::from_secs(5) => {
                    warn!(error = %err, attempts = attempts.len(), "recording webhook attempts failed; they will be made again");
                    break None;
                }
                Err(err) => {
                    warn!(error = %err, "recording webhook attempts failed; will retry");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
            }
        };
        for (made, outcome) in batch.drain(..).zip(outcomes.unwrap_or_default()) {
            if outcome == ClaimOutcome::Applied {
                observe(&made);
            }
        }
        wake.notify_one();
    }
}

/// The metrics of one recorded attempt.
pub(super) fn observe(made: &Made) {
    let outcome = match made.attempt.next {
        NextStep::Delivered => {
            let latency = (made.attempt.at - made.occurred_at)
                .to_std()
                .unwrap_or_default();
            metrics::histogram!("webhook_delivery_latency_seconds").record(latency.as_secs_f64());
            "delivered"
        }
        NextStep::RetryAt(_) => "retrying",
        NextStep::GiveUp => "failed",
    };
    metrics::counter!("webhook_attempts_total", "outcome" => outcome).increment(1);
}
