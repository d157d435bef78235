//! Webhooks: signed deliveries of the event log to the shop's endpoints. The check an
//! endpoint's address passes (`network`), the consumer of the log that owes deliveries
//! and makes their first attempts (`fanout`), the claimers that make every other
//! attempt (`dispatch`), what all senders share (`shared`), one attempt and what
//! follows it (`attempt`), one attempt's signed request (`send`), and the recorder of
//! attempts (`record`).

mod attempt;
mod dispatch;
mod fanout;
mod network;
mod record;
mod send;
mod shared;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::api_load::ApiLoad;
use crate::domain::DeliverySchedule;
use crate::store::Store;

pub use fanout::CONSUMER;
pub use network::{NetworkPolicy, check_reachable};

/// How deliveries are made.
#[derive(Debug, Clone, Copy)]
pub struct WebhookSettings {
    /// Time an endpoint has to answer.
    pub timeout: Duration,
    pub schedule: DeliverySchedule,
    /// An endpoint whose every attempt failed this long is disabled.
    pub disable_after: Duration,
    /// Most attempts in flight at once.
    pub concurrency: usize,
    pub network: NetworkPolicy,
}

/// Owes and sends deliveries until `stop`; returns once attempts in flight are
/// recorded (or their timeout passed).
pub async fn deliver_until_stopped(
    store: Arc<dyn Store>,
    settings: WebhookSettings,
    load: Arc<ApiLoad>,
    stop: CancellationToken,
) {
    let (shared, to_record) = match shared::Shared::new(&settings) {
        Ok(parts) => parts,
        Err(err) => {
            tracing::error!(error = %err, "cannot build the webhook client; webhooks are NOT delivered");
            return;
        }
    };
    let shared = Arc::new(shared);
    let recorder = tokio::spawn(record::record(
        store.clone(),
        to_record,
        shared.wake.clone(),
        settings.disable_after,
    ));
    let owing = tokio::spawn(fanout::owe_until_stopped(
        store.clone(),
        shared.clone(),
        settings.disable_after,
        load,
        stop.clone(),
    ));
    dispatch::claim_until_stopped(store, shared.clone(), stop).await;
    let _ = owing.await;
    // Attempts in flight end within the timeout; each returns its slot, and the last
    // sender gone ends the recorder once it has recorded what it was given.
    let all = u32::try_from(settings.concurrency).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(settings.timeout, shared.slots.acquire_many(all)).await;
    drop(shared);
    let _ = tokio::time::timeout(Duration::from_secs(10), recorder).await;
}
