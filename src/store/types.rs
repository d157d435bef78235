//! The types the store's traits speak besides the domain's: claims and what ends them,
//! the outcomes of operators' changes, listings, idempotent answers, metrics, and
//! webhook deliveries' claims and attempts.

use uuid::Uuid;

use crate::domain::{
    Delivery, DeliveryId, DeliveryStatus, Order, OrderId, OrderStatus, StatusCounts, Timestamp,
    WebhookId,
};

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

/// How many events of one type occurred in one minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivityCount {
    /// The minute's start.
    pub minute: Timestamp,
    pub event_type: crate::domain::EventType,
    pub count: u64,
}

/// Which `Failed` orders a bulk retry takes: all, or one user's, or those
/// dead-lettered by a time (so a retry confirmed after a count takes what was counted).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FailedFilter {
    pub user_id: Option<String>,
    /// Only orders dead-lettered at or before this time.
    pub failed_by: Option<Timestamp>,
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

/// What `GET /metrics` shows: the running totals and, at a given time, when the
/// longest-waiting claimable order became due, read from one snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Overview {
    pub metrics: OrderMetrics,
    /// The least `available_at` of the `Pending` orders due at the time asked about, or
    /// `None` when none is waiting. Orders waiting out a retry backoff are not waiting
    /// on the workers, so they do not count.
    pub oldest_due: Option<Timestamp>,
}

impl Overview {
    /// The overview at `now` from `self`, read at a time no earlier than `now`: the
    /// least due time at the read's time is also the least at `now` if it was due by
    /// then, and if it was not, nothing was. So one read answers callers who asked at
    /// different times.
    pub fn as_of(&self, now: Timestamp) -> Overview {
        Overview {
            metrics: self.metrics,
            oldest_due: self.oldest_due.filter(|due| *due <= now),
        }
    }
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

/// A delivery as the webhooks consumer hands it to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owed {
    /// When `settled`, stored as it is (its status, attempts and last answer, as the
    /// consumer's own first attempt left it); else stored `Pending` with no attempt,
    /// due at once unless an earlier event of its order is owed to the endpoint (in
    /// the store, or earlier in the same page), when it waits behind it.
    pub delivery: Delivery,
    pub settled: bool,
    /// A settled delivery whose attempt is still in flight: the claim it is made
    /// under (its `next_attempt_at` is the claim's lease end).
    pub claim: Option<Uuid>,
}

impl Owed {
    /// A delivery owed, to be sent by whoever claims it.
    pub fn unsent(delivery: Delivery) -> Self {
        Self {
            delivery,
            settled: false,
            claim: None,
        }
    }
}

/// What the webhooks consumer writes for a page of the log, in one transaction with
/// its move to `through`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwedPage {
    pub through: i64,
    pub owed: Vec<Owed>,
    /// The consumer's own attempts that ended (delivered or not), for the endpoints'
    /// health, as `finish_deliveries` keeps it.
    pub attempts: Vec<FinishedAttempt>,
    pub failing_too_long: Timestamp,
}

/// A delivery claimed for one attempt. The token proves the claim: only its holder
/// records the attempt, and a delivery whose lease ran out is claimed with a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryClaim {
    pub delivery: Delivery,
    pub token: Uuid,
}

/// How an attempt ended, as it is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedAttempt {
    pub id: DeliveryId,
    pub token: Uuid,
    pub endpoint_id: WebhookId,
    /// When the answer (or the error) came.
    pub at: Timestamp,
    /// The answer's status code; `None` without an answer.
    pub status_code: Option<u16>,
    /// What went wrong: the start of the answer, or the connection's error.
    pub error: Option<String>,
    pub next: NextStep,
    /// The endpoint answered `410 Gone`: it is disabled at once.
    pub gone: bool,
    /// Whether the attempt tells of the endpoint's health: `false` when it failed on
    /// this side (the event no longer kept, an endpoint that cannot be read), which
    /// must not count towards disabling the endpoint.
    pub reached: bool,
}

/// What follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    Delivered,
    RetryAt(Timestamp),
    /// The schedule is used up: `failed`.
    GiveUp,
}

/// How many due deliveries one claim may take of each enabled endpoint: `each`,
/// except the endpoints listed, which have the room given (the claimer's count of
/// attempts already in flight to them taken off their share).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryRooms {
    pub each: usize,
    pub except: std::collections::HashMap<WebhookId, usize>,
}

impl DeliveryRooms {
    /// The same room for every endpoint.
    pub fn each(each: usize) -> Self {
        Self {
            each,
            except: std::collections::HashMap::new(),
        }
    }

    /// The room of one endpoint.
    pub fn of(&self, endpoint: WebhookId) -> usize {
        self.except.get(&endpoint).copied().unwrap_or(self.each)
    }
}

/// Which deliveries of an endpoint an operator lists: newest first, strictly older
/// than `before`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryQuery {
    pub endpoint_id: WebhookId,
    pub status: Option<DeliveryStatus>,
    pub before: Option<DeliveryId>,
    pub limit: usize,
}

/// The deliveries' figures for `/metrics/prometheus`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryGauges {
    /// Deliveries still owed (due, in flight, waiting, or held by a disabled endpoint).
    pub pending: u64,
    pub disabled_endpoints: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::from_millis;

    #[test]
    fn an_overview_read_later_answers_for_an_earlier_time() {
        let read = Overview {
            metrics: OrderMetrics::default(),
            oldest_due: Some(from_millis(100)),
        };
        assert_eq!(read.as_of(from_millis(99)).oldest_due, None);
        assert_eq!(
            read.as_of(from_millis(100)).oldest_due,
            Some(from_millis(100))
        );
        assert_eq!(
            read.as_of(from_millis(500)).oldest_due,
            Some(from_millis(100))
        );
        let idle = Overview::default();
        assert_eq!(idle.as_of(from_millis(500)).oldest_due, None);
    }
}
