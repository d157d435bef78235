//! The log's consumers: how far each reader that must see every event got, held by
//! one instance at a time under a lease.

use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use crate::domain::Timestamp;
use crate::store::StoreError;

/// Readers of the log that must see every event (the NATS relay): how far each got,
/// each held by one instance at a time under a lease. Retention waits for them.
#[async_trait]
pub trait Consumers: Send + Sync + 'static {
    /// Takes or keeps the lease on consumer `name` for `holder` until `lease` after
    /// `now` (creating the consumer at position 0, the start of the log, if it is new);
    /// answers its position if `holder` holds it now, `None` while another holder's
    /// lease runs.
    async fn hold_consumer(
        &self,
        name: &str,
        holder: Uuid,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Option<i64>, StoreError>;

    /// Records that consumer `name` has seen every event up to `position`, and extends
    /// its lease, if `holder` still holds it; `false` if it does not.
    async fn advance_consumer(
        &self,
        name: &str,
        holder: Uuid,
        position: i64,
        now: Timestamp,
        lease: Duration,
    ) -> Result<bool, StoreError>;

    /// Every consumer's position, by name.
    async fn consumer_positions(&self) -> Result<Vec<(String, i64)>, StoreError>;
}
