//! The types the store's traits speak besides the domain's: claims and what ends them,
//! the outcomes of operators' changes, listings, idempotent answers, metrics.

use uuid::Uuid;

use crate::domain::{Order, OrderId, OrderStatus, StatusCounts, Timestamp};

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

/// What a heartbeat did: the leases' new end, and for each claim (in the order given)
/// whether it was still current and extended, or lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extended {
    pub until: Timestamp,
    pub outcomes: Vec<ClaimOutcome>,
}

/// What a lease rescue did with the orders whose worker stopped answering.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rescued {
    /// Returned to `Pending`, to be processed again.
    pub requeued: u64,
    /// Had used up their attempts, so moved to `Failed`.
    pub dead_lettered: u64,
}

/// What an operator's retry of a dead letter did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryOutcome {
    /// The order is `Pending` again with a fresh attempt budget.
    Retried(Box<Order>),
    /// The order is not `Failed`; nothing changed.
    NotFailed(OrderStatus),
    NotFound,
}

/// What a cancel did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The order is `Cancelled` now, and its `order.cancelled` event written.
    Cancelled(Order),
    /// It was `Cancelled` already: nothing changed, whatever the reason given.
    AlreadyCancelled(Order),
    /// Its status allows no cancel (it is being processed, or done).
    NotCancellable(OrderStatus),
    /// No order has this id.
    NotFound,
}

/// Which orders a listing wants: newest first, strictly older than `before`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListQuery {
    pub status: Option<OrderStatus>,
    pub user_id: Option<String>,
    /// Keyset cursor: only orders whose id sorts before this one.
    pub before: Option<OrderId>,
    pub limit: usize,
}

/// The first answer to a request that carried an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentResponse {
    /// Whose key it is: the token's user, or empty with authentication off.
    pub scope: String,
    pub key: String,
    /// Identifies the request's content, so a reuse with another body is told apart.
    pub fingerprint: String,
    pub order_id: OrderId,
    pub status: u16,
    pub body: String,
    pub created_at: Timestamp,
}

/// What storing a keyed order did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyedInsert {
    /// The order and its key were committed together.
    Inserted,
    /// A live key with this scope and name already exists; nothing was written.
    KeyTaken,
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
        let completed = self.counts.get(OrderStatus::Completed);
        if completed == 0 {
            return 0.0;
        }
        let mean_ms = (self.total_processing_ms as f64 / completed as f64).round();
        mean_ms / 1000.0
    }
}

/// What one window of retention did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Events deleted.
    pub deleted: u64,
    /// Where the next window starts: the last position looked at, or `None` when this
    /// window held no event older than the cutoff (nothing further is old enough).
    pub next_after: Option<i64>,
}
