//! The processing step an order goes through once claimed, behind a small trait so
//! that a real step (payment, stock, fulfilment) can replace the simulation.

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::Order;

/// Why one processing attempt did not succeed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProcessingError(pub String);

/// Does the work an order stands for. Must be safe to run more than once for the
/// same order: processing is at-least-once (a crash after the work but before the
/// completion is committed means the order is processed again). Must be async all
/// the way: the attempt timeout cancels it by dropping the future, which cannot
/// interrupt a thread blocked in synchronous code (use `spawn_blocking` for that).
#[async_trait]
pub trait Processor: Send + Sync + 'static {
    async fn process(&self, order: &Order) -> Result<(), ProcessingError>;
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
    async fn process(&self, _order: &Order) -> Result<(), ProcessingError> {
        if !self.duration.is_zero() {
            tokio::time::sleep(self.duration).await;
        }
        // `f64()` is in [0, 1): a rate of 0 never fails and a rate of 1 always does.
        if fastrand::f64() < self.failure_rate {
            return Err(ProcessingError(
                "simulated transient failure (PROCESSING_FAILURE_RATE)".into(),
            ));
        }
        Ok(())
    }
}
