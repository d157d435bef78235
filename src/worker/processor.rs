//! The processing step an order goes through once claimed, behind a small trait so
//! that a real step (the HTTP processor, `http_processor.rs`) can replace the
//! simulation; and how an attempt can fail.

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{Order, OrderResult};

/// Why one processing attempt did not succeed, and whether another could.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessingError {
    /// Worth another attempt, after the backoff (and no sooner than `retry_after`,
    /// when the step asked for that).
    #[error("{message}")]
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// No attempt can succeed (the order was refused): `Failed` at once.
    #[error("{message}")]
    Permanent { message: String },
}

impl ProcessingError {
    /// A transient failure with no wish about when to try again.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::Transient {
            message: message.into(),
            retry_after: None,
        }
    }
}

/// Does the work an order stands for; the attempt is `order.attempts`. Must be safe to
/// run more than once for the same order: processing is at-least-once (a crash after
/// the work but before the completion is committed means the order is processed
/// again). Must be async all the way: the attempt timeout, and a lost lease, cancel it
/// by dropping the future, which cannot interrupt a thread blocked in synchronous code
/// (use `spawn_blocking` for that). On success it may hand back a result to keep.
#[async_trait]
pub trait Processor: Send + Sync + 'static {
    async fn process(&self, order: &Order) -> Result<Option<OrderResult>, ProcessingError>;
}

/// Stands in for real work by taking a fixed time, as the reference system did, and
/// failing a given fraction of attempts with a transient error, so that retries and
/// dead letters can be shown and tested.
#[derive(Debug, Clone)]
pub struct SimulatedProcessor {
    duration: Duration,
    failure_rate: f64,
}

impl SimulatedProcessor {
    /// `failure_rate` is the probability, 0 to 1, that an attempt fails.
    pub fn new(duration: Duration, failure_rate: f64) -> Self {
        Self {
            duration,
            failure_rate: failure_rate.clamp(0.0, 1.0),
        }
    }
}

#[async_trait]
impl Processor for SimulatedProcessor {
    async fn process(&self, _order: &Order) -> Result<Option<OrderResult>, ProcessingError> {
        if !self.duration.is_zero() {
            tokio::time::sleep(self.duration).await;
        }
        // `f64()` is in [0, 1): a rate of 0 never fails and a rate of 1 always does.
        if fastrand::f64() < self.failure_rate {
            return Err(ProcessingError::transient(
                "simulated transient failure (PROCESSING_FAILURE_RATE)",
            ));
        }
        Ok(None)
    }
}
