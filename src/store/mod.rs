//! Persistence: the traits every backend implements (by concern: the backend itself,
//! orders, the queue, idempotency keys, the event log and its consumers, webhook
//! endpoints and deliveries), and the types they speak. All SQL lives
//! below this module, one folder per backend with the same files in each.

mod claims;
mod decode;
mod deliveries;
mod error;
mod group_commit;
mod postgres;
mod sqlite;
mod types;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use crate::domain::{
    AfterFailure, CancelReason, Delivery, DeliveryId, Order, OrderEvent, OrderId, OrderResult,
    OrderStatus, Timestamp, WebhookEndpoint, WebhookId,
};

pub use error::{BoxError, SharedFailure, StoreError};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use types::{
    ActivityCount, CancelOutcome, Claim, ClaimOutcome, DeliveryClaim, DeliveryGauges,
    DeliveryQuery, DeliveryRooms, Extended, FailedFilter, FinishedAttempt, IdempotentResponse,
    KeyedInsert, ListQuery, NextStep, OrderMetrics, Owed, OwedPage, Pruned, Rescued, RetryOutcome,
};

/// What every backend does besides holding orders: wake-ups, migrations, readiness.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Notified when work may be waiting: an order committed through this store, one
    /// returned to the queue, or (where the backend can tell) either of those in
    /// another instance. Workers still poll as a fallback.
    fn new_work(&self) -> Arc<Notify>;

    /// Changes when events may have been added to the log, by this instance or (where
    /// the backend can tell) by another; every reader of the log subscribes its own
    /// receiver, so none takes a wake-up from another. Readers still poll as a fallback.
    fn new_events(&self) -> watch::Receiver<()>;

    /// Applies this backend's migrations; safe to run on every start.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// `Ok` when the database answers and every migration this build knows is applied.
    async fn ready(&self) -> Result<(), StoreError>;
}

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

    /// Counts by status and the processing-time sum, from one snapshot.
    async fn metrics(&self) -> Result<OrderMetrics, StoreError>;

    /// Orders newest first, filtered, at most `query.limit`.
    async fn list(&self, query: &ListQuery) -> Result<Vec<Order>, StoreError>;
}

/// The work queue: claims under leases and what ends them, and operator retries.
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Claims up to `limit` `Pending` orders that are due at `now`, longest due first:
    /// each becomes `Processing` with `attempts` incremented and a lease ending `lease`
    /// after `now`, in one short committed transaction.
    async fn claim(
        &self,
        limit: usize,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Vec<Claim>, StoreError>;

    /// Moves a claimed order to `Completed` at `now`, keeping the processor's `result`
    /// if it gave one, if the claim is still current.
    async fn complete(
        &self,
        claim: &Claim,
        result: Option<&OrderResult>,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError>;

    /// Extends the leases of claims still being worked on to `lease` after `now`, in
    /// one write, each only if its claim is still current. Writes no event: the orders
    /// themselves do not change.
    async fn extend(
        &self,
        claims: &[Claim],
        now: Timestamp,
        lease: Duration,
    ) -> Result<Extended, StoreError>;

    /// Records a failed attempt, if the claim is still current: back to `Pending` (not
    /// claimable before the retry time) or on to `Failed`, with `error` as `last_error`.
    async fn fail(
        &self,
        claim: &Claim,
        error: &str,
        after: AfterFailure,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError>;

    /// Returns a claimed order to `Pending` at `now` (an attempt interrupted by a stop,
    /// not a failure), if the claim is still current.
    async fn release(&self, claim: &Claim, now: Timestamp) -> Result<ClaimOutcome, StoreError>;

    /// Takes back every `Processing` order whose lease ended before `now`: to `Pending`,
    /// or to `Failed` if it has had `max_attempts` attempts (an order that kills its
    /// worker every time must not loop for ever).
    async fn rescue_expired(
        &self,
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<Rescued, StoreError>;

    /// When the longest-waiting claimable order became due: the least `available_at`
    /// of the `Pending` orders due at `now`, or `None` when none is waiting. Orders
    /// waiting out a retry backoff are not waiting on the workers, so they do not count.
    async fn oldest_due(&self, now: Timestamp) -> Result<Option<Timestamp>, StoreError>;

    /// Puts a `Failed` order back to `Pending`, due at `now`, with its attempts reset.
    async fn retry_failed(&self, id: OrderId, now: Timestamp) -> Result<RetryOutcome, StoreError>;

    /// How many `Failed` orders match `filter`.
    async fn count_failed(&self, filter: &FailedFilter) -> Result<u64, StoreError>;

    /// Puts up to `limit` `Failed` orders matching `filter` back to `Pending` as
    /// [`Queue::retry_failed`] does, oldest first, in one transaction; returns how many.
    /// Callers repeat while `limit` come back, so no transaction grows without bound.
    async fn retry_failed_matching(
        &self,
        filter: &FailedFilter,
        now: Timestamp,
        limit: usize,
    ) -> Result<u64, StoreError>;

    /// Moves a `Pending` or `Failed` order to `Cancelled` at `now`, keeping `reason`.
    /// A claim cannot take it meanwhile: either the cancel or the claim wins.
    async fn cancel(
        &self,
        id: OrderId,
        reason: Option<&CancelReason>,
        now: Timestamp,
    ) -> Result<CancelOutcome, StoreError>;
}

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

/// Idempotency keys, each committed with its order.
#[async_trait]
pub trait Keys: Send + Sync + 'static {
    /// Commits a new order together with its idempotency key, in one transaction, unless
    /// a key with the same scope and name created after `live_since` exists (an older,
    /// expired one is replaced).
    async fn insert_keyed(
        &self,
        order: &Order,
        response: &IdempotentResponse,
        live_since: Timestamp,
    ) -> Result<KeyedInsert, StoreError>;

    /// The stored answer for a key, if it was created after `live_since`.
    async fn find_keyed(
        &self,
        scope: &str,
        key: &str,
        live_since: Timestamp,
    ) -> Result<Option<IdempotentResponse>, StoreError>;

    /// Deletes keys created before `before`; returns how many.
    async fn prune_keys(&self, before: Timestamp) -> Result<u64, StoreError>;
}

/// Webhook endpoints: registered, read, changed and removed by operators.
#[async_trait]
pub trait Webhooks: Send + Sync + 'static {
    /// Registers a new endpoint.
    async fn insert_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<(), StoreError>;

    /// Every endpoint, oldest first.
    async fn endpoints(&self) -> Result<Vec<WebhookEndpoint>, StoreError>;

    /// One endpoint, if it exists.
    async fn endpoint(&self, id: WebhookId) -> Result<Option<WebhookEndpoint>, StoreError>;

    /// Replaces everything about an endpoint but its id, its secrets, its health and
    /// registration time, if it is still at `endpoint.revision`, and moves it to the
    /// next revision; `false` if it was changed meanwhile or removed. Enabling a
    /// disabled endpoint starts its failure count afresh.
    async fn update_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<bool, StoreError>;

    /// Makes `secret` the endpoint's secret, the current one its previous secret
    /// (signing until `previous_until`), in one statement; the endpoint as it is now,
    /// or `None` if there is none.
    async fn rotate_secret(
        &self,
        id: WebhookId,
        secret: &str,
        previous_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<WebhookEndpoint>, StoreError>;

    /// Removes an endpoint and its deliveries; `false` if there was none.
    async fn delete_endpoint(&self, id: WebhookId) -> Result<bool, StoreError>;
}

/// Webhook deliveries: owed as the webhooks consumer moves along the log, claimed
/// under leases, their attempts recorded, listed and sent again by operators. An
/// endpoint receives an order's events in `seq` order: a delivery waits (is not due)
/// while an earlier event of its order is still owed to the same endpoint.
#[async_trait]
pub trait Deliveries: Send + Sync + 'static {
    /// Writes a page's deliveries (of events up to `page.through`; those to endpoints
    /// since disabled or removed are dropped), keeps the endpoints' health from the
    /// consumer's own attempts in it, and moves consumer `name` to `page.through`, in
    /// one transaction, if `holder` still holds it; `false` (and nothing written) if it
    /// does not.
    async fn enqueue_deliveries(
        &self,
        name: &str,
        holder: Uuid,
        page: &OwedPage,
        now: Timestamp,
        lease: Duration,
    ) -> Result<bool, StoreError>;

    /// Which of these (order, endpoint) pairs have a delivery owed (pending): a new
    /// event of such an order must wait behind it.
    async fn owing(
        &self,
        pairs: &[(OrderId, WebhookId)],
    ) -> Result<HashSet<(OrderId, WebhookId)>, StoreError>;

    /// Claims up to `limit` deliveries due at `now`, at most `rooms.of(endpoint)` of
    /// each enabled endpoint (taken in a random order, so that when the limit cuts the
    /// list short no endpoint is always last), each endpoint's soonest due first: each
    /// counts an attempt and is not due again until `lease` after `now` (so a crashed
    /// sender's delivery comes back by itself).
    async fn claim_deliveries(
        &self,
        rooms: &DeliveryRooms,
        limit: usize,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Vec<DeliveryClaim>, StoreError>;

    /// Records attempts, each if its claim is still current (an outcome per attempt,
    /// in the order given): a delivered or failed delivery lets the next event of its
    /// order for that endpoint come due. Keeps each endpoint's health, and disables an
    /// endpoint that answered `410`, or whose every attempt has failed since before
    /// `failing_too_long`.
    async fn finish_deliveries(
        &self,
        attempts: &[FinishedAttempt],
        failing_too_long: Timestamp,
    ) -> Result<Vec<ClaimOutcome>, StoreError>;

    /// One endpoint's deliveries, newest first, filtered, at most `query.limit`.
    async fn deliveries(&self, query: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError>;

    /// Owes a delivery again with a fresh schedule, due at `now` (or once an earlier
    /// event of its order owed to the endpoint is done); one in flight (claimed, its
    /// lease running) is left as it is. `None` if the endpoint has no such delivery.
    async fn retry_delivery(
        &self,
        endpoint: WebhookId,
        id: DeliveryId,
        now: Timestamp,
    ) -> Result<Option<Delivery>, StoreError>;

    /// Owes again, as `retry_delivery` does, every failed delivery of the endpoint
    /// owed at `since` or later; answers how many.
    async fn recover_deliveries(
        &self,
        endpoint: WebhookId,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError>;

    /// Deletes up to `limit` deliveries owed and finished (delivered or failed) before
    /// `before`; answers how many (fewer than `limit`: nothing older is left).
    async fn prune_deliveries(&self, before: Timestamp, limit: usize) -> Result<u64, StoreError>;

    /// Pending deliveries and disabled endpoints, counted.
    async fn delivery_gauges(&self) -> Result<DeliveryGauges, StoreError>;
}

/// The system of record for orders, which is also the work queue: every concern in
/// one object. Each backend implements the eight traits, one file per concern.
pub trait Store:
    Backend + Orders + Queue + Keys + Events + Consumers + Webhooks + Deliveries
{
}

impl<T: Backend + Orders + Queue + Keys + Events + Consumers + Webhooks + Deliveries> Store for T {}

/// Opens the store a database URL names: `sqlite://PATH` or `postgres://...`.
/// `max_connections` sizes the connection pool (for SQLite, the reader pool).
pub async fn connect(url: &str, max_connections: u32) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url, max_connections).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(
            PostgresStore::connect(url, max_connections).await?,
        ))
    } else {
        // Only the scheme: the rest of a URL may hold a password.
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        Err(StoreError::UnsupportedUrl(format!("{scheme}:")))
    }
}

/// Like [`connect`], but waits out a database that is not reachable yet (starting up,
/// restarting), retrying with capped exponential backoff and saying so in the log.
/// Errors that retrying cannot fix (a bad URL) are returned at once.
pub async fn connect_with_retry(
    url: &str,
    max_connections: u32,
) -> Result<Arc<dyn Store>, StoreError> {
    let mut delay = Duration::from_millis(250);
    loop {
        match connect(url, max_connections).await {
            Err(err) if err.is_unavailable() => {
                tracing::warn!(
                    error = %std::error::Error::source(&err).map_or(err.to_string(), ToString::to_string),
                    retry_in_ms = delay.as_millis() as u64,
                    "database unreachable; retrying"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_of_other_databases_are_refused_without_echoing_credentials() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let Err(err) = runtime.block_on(connect("mysql://root:secret@db/orders", 1)) else {
            panic!("mysql is not supported");
        };
        let message = err.to_string();
        assert!(
            message.contains("DATABASE_URL") && message.contains("mysql:"),
            "{message}"
        );
        assert!(!message.contains("secret"));
    }

    #[test]
    fn an_in_memory_sqlite_database_is_refused() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let Err(err) = runtime.block_on(connect("sqlite::memory:", 1)) else {
            panic!("an in-memory database would lose acknowledged orders");
        };
        assert!(err.to_string().contains("in-memory"), "{err}");
    }
}
