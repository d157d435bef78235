//! Recording attempts: in batches as they are made, waking the claimers after each,
//! and the metrics of every attempt recorded.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tracing::warn;

use super::shared::Made;
use crate::domain::now;
use crate::store::{ClaimOutcome, FinishedAttempt, NextStep, Store};

/// Most attempts recorded in one write.
const RECORD_BATCH: usize = 512;

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
