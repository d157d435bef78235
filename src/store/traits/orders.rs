//! Orders in and out: writing new ones, reading them, the running totals, listings.

use async_trait::async_trait;

use crate::domain::{Order, OrderId, OrderStatus, Timestamp, now};
use crate::store::{ListQuery, OrderMetrics, Overview, StoreError};

/// Orders in and out: writing new ones, reading them, the running totals, listings.
#[async_trait]
pub trait Orders: Send + Sync + 'static {
    /// Commits a new `Pending` order durably before returning.
    async fn insert(&self, order: &Order) -> Result<(), StoreError>;

    /// Inserts orders whose ids are not yet stored, as they are (any status);
    /// returns how many were new. Used by `seed`, so running it twice adds nothing.
    async fn import(&self, orders: &[Order]) -> Result<u64, StoreError>;

    /// One order, if it exists.
    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError>;

    /// One order's status, if it exists.
    async fn status(&self, id: OrderId) -> Result<Option<OrderStatus>, StoreError>;

    /// Counts by status and the processing-time sum, from one snapshot: the totals of
    /// [`Orders::overview`], so there is one read of them to keep right.
    async fn metrics(&self) -> Result<OrderMetrics, StoreError> {
        Ok(self.overview(now()).await?.metrics)
    }

    /// The running totals and the oldest `Pending` order due at `now`, from one
    /// snapshot that holds every change committed before the call: what `GET /metrics`
    /// shows. A backend may answer concurrent calls from one read.
    async fn overview(&self, now: Timestamp) -> Result<Overview, StoreError>;

    /// Orders newest first, filtered, at most `query.limit`.
    async fn list(&self, query: &ListQuery) -> Result<Vec<Order>, StoreError>;
}
