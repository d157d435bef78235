//! How a delivery row is read: the columns every statement that answers deliveries
//! returns, and their decoding.

use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::domain::{Delivery, DeliveryId, OrderId, WebhookId};
use crate::store::StoreError;
use crate::store::decode::StoredDelivery;

/// The columns `delivery_from_row` reads.
pub(super) const DELIVERY_COLUMNS: &str = "id, endpoint_id, event_position, event_id, order_id, seq, type, \
     occurred_at, status, attempts, next_attempt_at, last_attempt_at, last_status_code, \
     last_error, created_at, finished_at";

pub(super) fn delivery_from_row(row: &PgRow) -> Result<Delivery, StoreError> {
    StoredDelivery {
        id: DeliveryId::from_uuid(row.try_get("id")?),
        endpoint_id: WebhookId::from_uuid(row.try_get("endpoint_id")?),
        event_position: row.try_get("event_position")?,
        event_id: row.try_get("event_id")?,
        order_id: OrderId::from_uuid(row.try_get("order_id")?),
        seq: i64::from(row.try_get::<i32, _>("seq")?),
        event_type: row.try_get("type")?,
        occurred_at: row.try_get("occurred_at")?,
        status: row.try_get("status")?,
        attempts: i64::from(row.try_get::<i32, _>("attempts")?),
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_attempt_at: row.try_get("last_attempt_at")?,
        last_status_code: row
            .try_get::<Option<i32>, _>("last_status_code")?
            .map(i64::from),
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        finished_at: row.try_get("finished_at")?,
    }
    .into_delivery()
}
