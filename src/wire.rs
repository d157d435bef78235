//! The JSON shapes orders and events are shown in, wherever they go (the API's
//! answers, the HTTP processor's calls): the whole order, the creation answer, the
//! status alone, and an event of the order's log (whose `data` is the whole order).

use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::domain::{EventType, Order, OrderEvent, OrderStatus};

/// An order as the API shows it. The fields from `completed_at` on appear on the full
/// view; the creation answer keeps the reference's exact field set.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Order)]
pub struct OrderBody {
    /// A UUIDv7: ids sort by creation time.
    #[schema(format = Uuid)]
    order_id: String,
    user_id: String,
    item_ids: Vec<String>,
    /// The amount as a JSON number with the exact decimal value stored.
    #[schema(value_type = f64, example = 100.5)]
    total_amount: Box<RawValue>,
    status: OrderStatus,
    /// RFC 3339, UTC, milliseconds.
    #[schema(format = DateTime)]
    created_at: String,
    /// When the order became `Completed`; `null` before.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    completed_at: Option<Option<String>>,
    /// Processing starts since creation or the last operator retry.
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts: Option<u32>,
    /// Why the last attempt failed, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    last_error: Option<Option<String>>,
    /// When the order was dead-lettered as `Failed`; `null` otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    failed_at: Option<Option<String>>,
    /// While `Pending`, the earliest time a worker may take it up: its creation, or the
    /// end of a failed attempt's backoff; `null` in every other status.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    next_attempt_at: Option<Option<String>>,
    /// When the order was cancelled; `null` otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    cancelled_at: Option<Option<String>>,
    /// The reason given when it was cancelled, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    cancel_reason: Option<Option<String>>,
    /// What the processing step answered when it completed the order: the JSON object
    /// it sent back (at most 16 KB), as it sent it; `null` if it sent none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    result: Option<Option<Box<RawValue>>>,
}

impl OrderBody {
    pub fn created(order: &Order) -> Self {
        Self {
            order_id: order.id.to_string(),
            user_id: order.user_id.as_str().to_owned(),
            item_ids: order.item_ids.as_slice().to_vec(),
            total_amount: RawValue::from_string(order.total_amount.to_string())
                .expect("a decimal is a JSON number"),
            status: order.status,
            created_at: rfc3339(order.created_at),
            completed_at: None,
            attempts: None,
            last_error: None,
            failed_at: None,
            next_attempt_at: None,
            cancelled_at: None,
            cancel_reason: None,
            result: None,
        }
    }

    /// Every field, `null` where unset: the answer of `GET /orders/{id}` and listings,
    /// and what the HTTP processor sends.
    pub fn full(order: &Order) -> Self {
        Self {
            completed_at: Some(order.completed_at.map(rfc3339)),
            attempts: Some(order.attempts),
            last_error: Some(order.last_error.clone()),
            failed_at: Some(order.failed_at.map(rfc3339)),
            next_attempt_at: Some(order.next_attempt_at.map(rfc3339)),
            cancelled_at: Some(order.cancelled_at.map(rfc3339)),
            cancel_reason: Some(order.cancel_reason.clone()),
            result: Some(order.result.as_ref().map(|result| {
                RawValue::from_string(result.as_str().to_owned())
                    .expect("a result is a JSON object")
            })),
            ..Self::created(order)
        }
    }
}

pub fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `{"status": "Pending"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusBody {
    status: OrderStatus,
}

impl StatusBody {
    pub fn new(status: OrderStatus) -> Self {
        Self { status }
    }
}

/// One event of an order's log.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Event)]
pub struct EventBody {
    /// A UUIDv7, the same wherever the event is delivered: deduplicate by it.
    #[schema(format = Uuid)]
    event_id: String,
    #[schema(format = Uuid)]
    order_id: String,
    /// 1, 2, 3... per order, without gaps.
    seq: u32,
    #[serde(rename = "type")]
    event_type: EventType,
    /// RFC 3339, UTC, milliseconds.
    #[schema(format = DateTime)]
    occurred_at: String,
    /// Orders all events of all orders; page `GET /events` by it.
    position: i64,
    /// The order as `GET /orders/{order_id}` showed it right after the change.
    data: OrderBody,
}

impl EventBody {
    pub fn new(event: &OrderEvent) -> Self {
        Self {
            event_id: event.event_id.hyphenated().to_string(),
            order_id: event.order_id.to_string(),
            seq: event.seq,
            event_type: event.event_type,
            occurred_at: rfc3339(event.occurred_at),
            position: event.position,
            data: OrderBody::full(&event.order),
        }
    }
}

/// `{"events": [...]}`: an order's history, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct History {
    events: Vec<EventBody>,
}

impl History {
    pub fn new(events: &[OrderEvent]) -> Self {
        Self {
            events: events.iter().map(EventBody::new).collect(),
        }
    }
}

/// A page of every order's events, by position.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    events: Vec<EventBody>,
    /// Pass as `after` for the next page: the last position answered, or the `after`
    /// asked when nothing newer has committed yet.
    next_after: i64,
}

impl EventPage {
    pub fn new(events: &[OrderEvent], after: i64) -> Self {
        Self {
            events: events.iter().map(EventBody::new).collect(),
            next_after: events.last().map_or(after, |event| event.position),
        }
    }
}

/// A webhook delivery's body (Standard Webhooks): the event's type, when it happened,
/// and the order as `GET /orders/{order_id}` showed it right after the change.
#[derive(Debug, Serialize)]
pub struct WebhookPayload {
    #[serde(rename = "type")]
    event_type: EventType,
    /// RFC 3339, UTC, milliseconds: the event's `occurred_at`.
    timestamp: String,
    data: OrderBody,
}

impl WebhookPayload {
    pub fn new(event: &OrderEvent) -> Self {
        Self {
            event_type: event.event_type,
            timestamp: rfc3339(event.occurred_at),
            data: OrderBody::full(&event.order),
        }
    }
}
