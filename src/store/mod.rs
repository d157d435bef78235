//! Persistence: the `Store` trait every backend implements, and the types it speaks.
//! All SQL lives below this module, one file per backend.

mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use crate::domain::{Order, OrderId, OrderStatus, StatusCounts, Timestamp};

pub use sqlite::SqliteStore;

/// A failure of the storage layer. Client mistakes never reach here: they are
/// refused before anything is written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("migration failed")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored row is invalid: {0}")]
    Corrupt(String),
    #[error("unsupported database URL {0:?}: expected sqlite://PATH")]
    UnsupportedUrl(String),
}

/// A batch of orders claimed by one worker pool, each moved to `Processing`.
///
/// The token proves the claim: only its holder can complete or release these
/// orders, and a rescued-and-reclaimed order gets a new token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub order: Order,
    pub token: Uuid,
    pub lease_expires_at: Timestamp,
}

/// What a guarded completion or release did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The claim was current and the order moved on.
    Applied,
    /// The claim was no longer current (its lease expired and the order was
    /// rescued or claimed again): nothing was changed.
    ClaimLost,
}

/// The figures behind `GET /metrics`, read in one consistent snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OrderMetrics {
    pub counts: StatusCounts,
    /// Sum over completed orders of `completed_at - created_at`, in milliseconds.
    pub total_processing_ms: i64,
}

impl OrderMetrics {
    /// Mean processing time of completed orders in seconds, rounded to the millisecond;
    /// 0 when none is completed.
    pub fn average_processing_seconds(&self) -> f64 {
        if self.counts.completed == 0 {
            return 0.0;
        }
        let mean_ms = (self.total_processing_ms as f64 / self.counts.completed as f64).round();
        mean_ms / 1000.0
    }
}

/// The system of record for orders, which is also the work queue.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies this backend's migrations; safe to run on every start.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Commits a new `Pending` order durably before returning.
    async fn insert(&self, order: &Order) -> Result<(), StoreError>;

    /// Inserts orders whose ids are not yet stored, as they are (any status);
    /// returns how many were new. Used by `seed`, so running it twice adds nothing.
    async fn import(&self, orders: &[Order]) -> Result<u64, StoreError>;

    /// One order, if it exists.
    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError>;

    /// One order's status, if it exists.
    async fn status(&self, id: OrderId) -> Result<Option<OrderStatus>, StoreError>;

    /// Counts by status and the processing-time sum, from one snapshot.
    async fn metrics(&self) -> Result<OrderMetrics, StoreError>;

    /// Claims up to `limit` `Pending` orders, oldest first: each becomes `Processing`
    /// with `attempts` incremented and a lease ending `lease` after `now`, in one
    /// short committed transaction.
    async fn claim(
        &self,
        limit: usize,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Vec<Claim>, StoreError>;

    /// Moves a claimed order to `Completed` at `now`, if the claim is still current.
    async fn complete(&self, claim: &Claim, now: Timestamp) -> Result<ClaimOutcome, StoreError>;

    /// Returns a claimed order to `Pending`, if the claim is still current.
    async fn release(&self, claim: &Claim) -> Result<ClaimOutcome, StoreError>;

    /// Returns every `Processing` order whose lease ended before `now` to `Pending`;
    /// returns how many were rescued.
    async fn rescue_expired(&self, now: Timestamp) -> Result<u64, StoreError>;
}

/// Opens the store a database URL names. Only `sqlite://` for now.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }
}
