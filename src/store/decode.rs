//! Turning what a backend stored back into domain types, the same way on every backend:
//! each backend reads its own column types into these, and nothing it reads passes
//! unchecked.

use super::{OrderMetrics, StoreError};
use crate::domain::{
    Delivery, DeliveryId, ItemIds, Money, Order, OrderEvent, OrderId, OrderResult, OrderStatus,
    Timestamp, UserId, WebhookEndpoint, WebhookId, WebhookUrl, event_id, parse_event_types,
};

/// The columns every backend reads, as every backend can decode them.
pub(super) struct StoredOrder {
    pub id: OrderId,
    pub user_id: String,
    pub item_ids: Vec<String>,
    pub amount_cents: i64,
    pub status: String,
    pub created_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub failed_at: Option<Timestamp>,
    /// When a `Pending` order may be claimed (for an event, kept only while `Pending`).
    pub available_at: Option<Timestamp>,
    pub cancelled_at: Option<Timestamp>,
    pub cancel_reason: Option<String>,
    /// The result's JSON text, on a `Completed` order that has one.
    pub result: Option<String>,
}

impl StoredOrder {
    /// The order, refusing values the domain would never have written.
    pub fn into_order(self) -> Result<Order, StoreError> {
        let status: OrderStatus = self.status.parse().map_err(corrupt)?;
        Ok(Order {
            id: self.id,
            user_id: UserId::parse(self.user_id).map_err(|e| corrupt(e.message))?,
            item_ids: ItemIds::parse(self.item_ids).map_err(|e| corrupt(e.message))?,
            total_amount: Money::from_cents(self.amount_cents)
                .ok_or_else(|| corrupt("amount out of range"))?,
            status,
            created_at: self.created_at,
            completed_at: self.completed_at,
            attempts: u32::try_from(self.attempts).map_err(corrupt)?,
            last_error: self.last_error,
            failed_at: self.failed_at,
            next_attempt_at: self.available_at.filter(|_| status == OrderStatus::Pending),
            cancelled_at: self.cancelled_at,
            cancel_reason: self.cancel_reason,
            result: self
                .result
                .map(|text| OrderResult::parse(&text).map_err(corrupt))
                .transpose()?,
        })
    }
}

/// A webhook delivery's columns, as every backend can decode them.
pub(super) struct StoredDelivery {
    pub id: DeliveryId,
    pub endpoint_id: WebhookId,
    pub event_position: i64,
    pub event_id: uuid::Uuid,
    pub order_id: OrderId,
    pub seq: i64,
    pub event_type: String,
    pub occurred_at: Timestamp,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<Timestamp>,
    pub last_attempt_at: Option<Timestamp>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

impl StoredDelivery {
    /// The delivery, refusing values the domain would never have written.
    pub fn into_delivery(self) -> Result<Delivery, StoreError> {
        Ok(Delivery {
            id: self.id,
            endpoint_id: self.endpoint_id,
            event_position: self.event_position,
            event_id: self.event_id,
            order_id: self.order_id,
            seq: u32::try_from(self.seq).map_err(corrupt)?,
            event_type: self.event_type.parse().map_err(corrupt)?,
            occurred_at: self.occurred_at,
            status: self.status.parse().map_err(corrupt)?,
            attempts: u32::try_from(self.attempts).map_err(corrupt)?,
            next_attempt_at: self.next_attempt_at,
            last_attempt_at: self.last_attempt_at,
            last_status_code: self
                .last_status_code
                .map(|code| u16::try_from(code).map_err(corrupt))
                .transpose()?,
            last_error: self.last_error,
            created_at: self.created_at,
            finished_at: self.finished_at,
        })
    }
}

/// A webhook endpoint's columns, as every backend can decode them.
pub(super) struct StoredEndpoint {
    pub id: WebhookId,
    pub url: String,
    pub description: String,
    pub event_types: Option<Vec<String>>,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<Timestamp>,
    pub disabled_at: Option<Timestamp>,
    pub disabled_reason: Option<String>,
    pub last_delivered_at: Option<Timestamp>,
    pub failing_since: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub revision: i64,
}

impl StoredEndpoint {
    /// The endpoint, refusing values the domain would never have written.
    pub fn into_endpoint(self) -> Result<WebhookEndpoint, StoreError> {
        Ok(WebhookEndpoint {
            id: self.id,
            url: WebhookUrl::from_stored(&self.url).map_err(|e| corrupt(e.message))?,
            description: self.description,
            event_types: self
                .event_types
                .map(|names| parse_event_types(&names).map_err(|e| corrupt(e.message)))
                .transpose()?,
            secret: self.secret,
            previous_secret: self.previous_secret.zip(self.previous_secret_until),
            disabled_at: self.disabled_at,
            disabled_reason: self.disabled_reason,
            last_delivered_at: self.last_delivered_at,
            failing_since: self.failing_since,
            created_at: self.created_at,
            updated_at: self.updated_at,
            revision: u32::try_from(self.revision).map_err(corrupt)?,
        })
    }
}

/// An endpoint's event types as stored: their names, or `None` for every type.
pub(super) fn event_type_names(endpoint: &WebhookEndpoint) -> Option<Vec<String>> {
    endpoint
        .event_types
        .as_ref()
        .map(|types| types.iter().map(|t| t.as_str().to_owned()).collect())
}

/// An event's own columns, as every backend can decode them; its order is read
/// beside it (the order's fixed columns from `orders`, the rest from the event).
pub(super) struct StoredEvent {
    pub position: i64,
    pub seq: i64,
    pub event_type: String,
    pub occurred_at: Timestamp,
}

impl StoredEvent {
    /// The event, with `order` as the change left it.
    pub fn into_event(self, order: Order) -> Result<OrderEvent, StoreError> {
        let seq = u32::try_from(self.seq).map_err(corrupt)?;
        Ok(OrderEvent {
            event_id: event_id(order.id, seq, self.occurred_at),
            order_id: order.id,
            seq,
            event_type: self.event_type.parse().map_err(corrupt)?,
            occurred_at: self.occurred_at,
            position: self.position,
            order,
        })
    }
}

/// A stored value the domain rejects: the database was changed behind our back.
pub(super) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// A new order whose id is already stored: never a client's doing (ids are made here),
/// so the database holds what we did not write.
pub(super) fn id_taken() -> StoreError {
    corrupt("an order id was already taken")
}

/// Metrics from per-status totals: (status, orders, processing milliseconds).
pub(super) fn metrics_from_totals(
    totals: impl IntoIterator<Item = (String, i64, i64)>,
) -> Result<OrderMetrics, StoreError> {
    let mut metrics = OrderMetrics::default();
    for (status, orders, processing_ms) in totals {
        let status: OrderStatus = status.parse().map_err(corrupt)?;
        metrics
            .counts
            .add(status, u64::try_from(orders).map_err(corrupt)?);
        if status == OrderStatus::Completed {
            metrics.total_processing_ms = processing_ms;
        }
    }
    Ok(metrics)
}

/// `Ok` when every migration this build embeds is applied. A newer database is
/// accepted: most migrations only add, and the README names the releases that cannot
/// run beside an older one (the event log's).
pub(super) fn schema_current(
    migrator: &sqlx::migrate::Migrator,
    applied: Option<i64>,
) -> Result<(), StoreError> {
    let needed = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    if applied.is_some_and(|applied| applied >= needed) {
        Ok(())
    } else {
        Err(StoreError::SchemaBehind { applied, needed })
    }
}

/// Checks, after migrating, that the running totals hold a row for every status (the
/// statuses `present` in `order_stats`): fails loudly rather than letting a new status
/// count into nothing.
pub(super) fn check_status_totals(present: &[String]) -> Result<(), StoreError> {
    let missing: Vec<&str> = OrderStatus::ALL
        .iter()
        .map(|status| status.as_str())
        .filter(|name| !present.iter().any(|p| p == name))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(StoreError::MissingStatusTotals(missing.join(", ")))
    }
}

/// The statement that lists the statuses with a running-totals row; the same on both
/// backends.
pub(super) const STATUSES_WITH_TOTALS: &str = "SELECT DISTINCT status FROM order_stats";
