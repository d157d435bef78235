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
/// completion is committed means the order is processed again).
#[async_trait]
pub trait Processor: Send + Sync + 'static {
    async fn process(&self, order: &Order) -> Result<(), ProcessingError>;
}

/// Stands in for real work by taking a fixed time, as the reference system did.
#[derive(Debug, Clone)]
pub struct SimulatedProcessor {
    duration: Duration,
}

impl SimulatedProcessor {
    pub fn new(duration: Duration) -> Self {
        Self { duration }
    }
}

#[async_trait]
impl Processor for SimulatedProcessor {
    async fn process(&self, _order: &Order) -> Result<(), ProcessingError> {
        if !self.duration.is_zero() {
            tokio::time::sleep(self.duration).await;
        }
        Ok(())
    }
}
