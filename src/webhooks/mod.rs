//! Webhooks: signed deliveries of the event log to the shop's endpoints. The check an
//! endpoint's address passes (`network`), the consumer of the log that owes deliveries
//! (`fanout`), the senders that make and record attempts (`dispatch`), and one
//! attempt's signed request (`send`).

mod dispatch;
mod fanout;
mod network;
mod send;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

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
    stop: CancellationToken,
) {
    let wake = Arc::new(Notify::new());
    let owing = tokio::spawn(fanout::owe_until_stopped(
        store.clone(),
        wake.clone(),
        stop.clone(),
    ));
    dispatch::send_until_stopped(store, settings, wake, stop).await;
    let _ = owing.await;
}
