//! The shapes the API answers orders with: the whole order, the creation answer, and
//! the status alone.

use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::domain::{Order, OrderStatus};

/// An order as the API shows it. `completed_at`, `attempts`, `last_error` and
/// `failed_at` appear on the full view; the creation answer keeps the reference's
/// exact field set.
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
        }
    }

    /// Every field, `null` where unset: the answer of `GET /orders/{id}` and listings.
    pub fn full(order: &Order) -> Self {
        Self {
            completed_at: Some(order.completed_at.map(rfc3339)),
            attempts: Some(order.attempts),
            last_error: Some(order.last_error.clone()),
            failed_at: Some(order.failed_at.map(rfc3339)),
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
