//! The event log's readers: one order's events, pages of every order's, activity
//! counts, and retention.

use async_trait::async_trait;

use crate::domain::{OrderEvent, OrderId, Timestamp};
use crate::store::{ActivityCount, Pruned, StoreError};

/// The event log: every change of an order is one event, written in the transaction
/// of the change (by the operations above); these read it.
#[async_trait]
pub trait Events: Send + Sync + 'static {
    /// One order's events with a position after `after` (0 for all), in `seq` order.
    async fn order_events(&self, id: OrderId, after: i64) -> Result<Vec<OrderEvent>, StoreError>;

    /// Up to `limit` events of every order with a position after `after`, in position
    /// order. Safe to page by: an event that is not in an answer yet will never have a
    /// position at or below the last one answered.
    async fn events_after(&self, after: i64, limit: usize) -> Result<Vec<OrderEvent>, StoreError>;

    /// The events at these positions (those still kept), in position order.
    async fn events_at(&self, positions: &[i64]) -> Result<Vec<OrderEvent>, StoreError>;

    /// How many events of each type occurred in each minute from the minute of `since`
    /// on; minutes and types with none are left out.
    async fn activity(&self, since: Timestamp) -> Result<Vec<ActivityCount>, StoreError>;

    /// The largest position `events_after` could answer now (0 for an empty log):
    /// where a reader that wants only what comes next starts.
    async fn last_position(&self) -> Result<i64, StoreError>;

    /// Looks at the `scan` events after position `after` and deletes those of orders
    /// that became `Completed` or `Cancelled` before `before`, in one short
    /// transaction; the orders stay, and so does every event after `keep_after` (one a
    /// consumer has not seen yet). A run of retention calls it window after window
    /// from position 0, each picking up where the last stopped, until it answers that
    /// the window held nothing older than `before`: so no call reads more than `scan`
    /// events, and a run reads the old part of the log once. An event a webhook
    /// delivery still owes is kept.
    async fn prune_events(
        &self,
        before: Timestamp,
        after: i64,
        scan: usize,
        keep_after: i64,
    ) -> Result<Pruned, StoreError>;
}
