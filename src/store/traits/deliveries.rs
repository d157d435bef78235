//! Webhook deliveries: owed, claimed under leases, their attempts recorded, listed,
//! sent again and pruned.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use crate::domain::{Delivery, DeliveryId, OrderId, Timestamp, WebhookId};
use crate::store::{
    ClaimOutcome, DeliveryClaim, DeliveryGauges, DeliveryQuery, DeliveryRooms, FinishedAttempt,
    OwedPage, StoreError,
};

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
