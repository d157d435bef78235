//! Processors a test steers: one that holds every order until opened (`Gate`), and one
//! that fails every attempt while switched on (`Switch`).

use async_trait::async_trait;
use order_processor::domain::{Order, OrderResult};
use order_processor::worker::{ProcessingError, Processor};
use tokio_util::sync::CancellationToken;

/// A processor that holds every order until opened, so tests can see orders
/// `Processing` (and, behind a busy worker, `Pending`) for as long as they need.
#[derive(Default)]
pub struct Gate {
    open: CancellationToken,
}

impl Gate {
    pub fn open(&self) {
        self.open.cancel();
    }
}

#[async_trait]
impl Processor for Gate {
    async fn process(&self, _order: &Order) -> Result<Option<OrderResult>, ProcessingError> {
        self.open.cancelled().await;
        Ok(None)
    }
}

/// A processor that fails every attempt while `failing` is set, and succeeds once it is
/// not: dead letters on demand, that a retry then completes.
#[derive(Default)]
pub struct Switch {
    pub failing: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Processor for Switch {
    async fn process(&self, _order: &Order) -> Result<Option<OrderResult>, ProcessingError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ProcessingError::transient("payment declined"));
        }
        Ok(None)
    }
}
