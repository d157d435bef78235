//! One claimed order's attempt: process it within the timeout (abandoning it if the
//! pool's heartbeat finds its lease lost), then record the outcome under the claim
//! (completed, retried after a backoff, or dead-lettered).

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::leases::InFlight;
use super::{ProcessingError, Processor};
use crate::domain::{AfterFailure, Order, OrderResult, RetryPolicy, now};
use crate::store::{Claim, ClaimOutcome, Store, StoreError};

/// Everything one attempt needs; cheap to make per claimed order.
pub(super) struct Job {
    pub store: Arc<dyn Store>,
    pub processor: Arc<dyn Processor>,
    pub in_flight: InFlight,
    pub retry: RetryPolicy,
    pub timeout: Duration,
    pub new_work: Arc<Notify>,
}

/// What an attempt's outcome asks the store to record.
enum Outcome {
    Completed(Option<OrderResult>),
    Failed {
        error: String,
        after: AfterFailure,
        /// The step refused the order: no attempt could succeed.
        refused: bool,
    },
}

impl Job {
    /// Runs the attempt of `claim`, which `in_flight` holds; `lost` is cancelled if a
    /// heartbeat finds its lease lost.
    pub async fn run(self, claim: Claim, lost: CancellationToken) {
        let order_id = claim.order.id;
        let attempt = claim.order.attempts;
        metrics::counter!("order_attempts_total").increment(1);
        let started = std::time::Instant::now();
        // A lost lease (the order was taken back, and may be another worker's now)
        // drops the attempt: its answer must not be applied.
        let attempted = tokio::select! {
            attempted = self.attempt(&claim.order) => Some(attempted),
            () = lost.cancelled() => None,
        };
        let Some(attempted) = attempted else {
            metrics::counter!("order_attempts_abandoned_total").increment(1);
            warn!(
                order_id = %order_id, attempt,
                "lease lost during the attempt (the order was taken back); abandoned it, \
                 and its answer is not applied"
            );
            self.in_flight.forget(&claim);
            return;
        };
        let label = if attempted.is_ok() {
            "completed"
        } else {
            "failed"
        };
        metrics::histogram!("order_processing_duration_seconds", "outcome" => label)
            .record(started.elapsed().as_secs_f64());
        let outcome = match attempted {
            Ok(result) => Outcome::Completed(result),
            Err(ProcessingError::Permanent { message }) => Outcome::Failed {
                error: message,
                after: AfterFailure::DeadLetter,
                refused: true,
            },
            Err(ProcessingError::Transient {
                message,
                retry_after,
            }) => {
                let at = now();
                let mut after = self.retry.after_failure(attempt, at, fastrand::f64());
                if let Some(wait) = retry_after {
                    after = self.retry.not_before(after, at, wait);
                }
                Outcome::Failed {
                    error: message,
                    after,
                    refused: false,
                }
            }
        };
        match (self.record(&claim, &outcome).await, &outcome) {
            (Ok(ClaimOutcome::Applied), Outcome::Completed(_)) => {
                info!(order_id = %order_id, attempt, "order completed");
            }
            (
                Ok(ClaimOutcome::Applied),
                Outcome::Failed {
                    error,
                    refused: true,
                    ..
                },
            ) => {
                metrics::counter!("order_dead_letters_total").increment(1);
                error!(
                    order_id = %order_id, attempt, error = %error,
                    "processing refused the order; dead-lettered as Failed, no further attempts"
                );
            }
            (Ok(ClaimOutcome::Applied), Outcome::Failed { error, after, .. }) => match after {
                AfterFailure::RetryAt(at) => {
                    metrics::counter!("order_retries_total").increment(1);
                    let delay = (*at - now()).to_std().unwrap_or_default();
                    warn!(order_id = %order_id, attempt, error = %error,
                          retry_in_ms = delay.as_millis() as u64,
                          "processing failed; will retry");
                    self.wake_at(delay);
                }
                AfterFailure::DeadLetter => {
                    metrics::counter!("order_dead_letters_total").increment(1);
                    error!(
                    order_id = %order_id, attempt, error = %error,
                    "processing failed; attempts used up, order dead-lettered as Failed"
                    );
                }
            },
            (Ok(ClaimOutcome::ClaimLost), _) => warn!(
                order_id = %order_id,
                "claim was lost (lease expired and the order was taken back); leaving it alone"
            ),
            (Err(err), _) => error!(
                order_id = %order_id, error = ?err,
                "could not record the outcome; the order returns to the queue when its lease expires"
            ),
        }
        self.in_flight.forget(&claim);
    }

    /// Runs the processing step. A panic or a timeout is a failed attempt like any
    /// transient error; the timeout cancels the step by dropping it.
    async fn attempt(&self, order: &Order) -> Result<Option<OrderResult>, ProcessingError> {
        let work = AssertUnwindSafe(self.processor.process(order)).catch_unwind();
        match tokio::time::timeout(self.timeout, work).await {
            Ok(Ok(processed)) => processed,
            Ok(Err(panic)) => Err(ProcessingError::transient(format!(
                "processing panicked: {}",
                panic_message(&*panic)
            ))),
            Err(_) => Err(ProcessingError::transient(format!(
                "processing timed out after {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    /// Records the outcome under the claim. While the database is unavailable it keeps
    /// trying until the lease ends: after that the order is rescued and processed
    /// again, so nothing is lost either way.
    async fn record(&self, claim: &Claim, outcome: &Outcome) -> Result<ClaimOutcome, StoreError> {
        let mut delay = Duration::from_millis(50);
        loop {
            let result = match outcome {
                Outcome::Completed(result) => {
                    self.store.complete(claim, result.as_ref(), now()).await
                }
                Outcome::Failed { error, after, .. } => {
                    self.store.fail(claim, error, *after, now()).await
                }
            };
            match result {
                Err(err)
                    if err.is_unavailable() && now() + delay < self.in_flight.lease_end(claim) =>
                {
                    warn!(order_id = %claim.order.id, error = %err, "database unavailable; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                other => return other,
            }
        }
    }

    /// Wakes an idle worker when a retry falls due, so short backoffs are kept to the
    /// millisecond rather than to the next poll.
    fn wake_at(&self, delay: Duration) {
        let new_work = self.new_work.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            new_work.notify_one();
        });
    }
}

/// The text a panic was raised with, when it has one.
fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}
