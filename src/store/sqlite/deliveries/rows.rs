//! How a delivery row is read: the columns every statement that answers deliveries
//! returns, and their decoding.

use std::str::FromStr;

use rusqlite::Row;
use uuid::Uuid;

use crate::domain::{Delivery, DeliveryId, OrderId, Timestamp, WebhookId, from_millis};
use crate::store::StoreError;
use crate::store::decode::{StoredDelivery, corrupt};

/// The columns `delivery_from_row` reads, in its order.
pub(super) const DELIVERY_COLUMNS: &str = "id, endpoint_id, event_position, event_id, order_id, seq, type, \
     occurred_at, status, attempts, next_attempt_at, last_attempt_at, last_status_code, \
     last_error, created_at, finished_at";

pub(super) fn delivery_from_row(row: &Row<'_>) -> Result<Delivery, StoreError> {
    let text = |column: usize| -> Result<String, StoreError> { Ok(row.get(column)?) };
    let time = |column: usize| -> rusqlite::Result<Option<Timestamp>> {
        Ok(row.get::<_, Option<i64>>(column)?.map(from_millis))
    };
    StoredDelivery {
        id: DeliveryId::from_str(&text(0)?).map_err(corrupt)?,
        endpoint_id: WebhookId::from_str(&text(1)?).map_err(corrupt)?,
        event_position: row.get(2)?,
        event_id: Uuid::try_parse(&text(3)?).map_err(corrupt)?,
        order_id: OrderId::from_str(&text(4)?).map_err(corrupt)?,
        seq: row.get(5)?,
        event_type: row.get(6)?,
        occurred_at: from_millis(row.get(7)?),
        status: row.get(8)?,
        attempts: row.get(9)?,
        next_attempt_at: time(10)?,
        last_attempt_at: time(11)?,
        last_status_code: row.get(12)?,
        last_error: row.get(13)?,
        created_at: from_millis(row.get(14)?),
        finished_at: time(15)?,
    }
    .into_delivery()
}

/// Runs a prepared statement whose rows are `DELIVERY_COLUMNS`.
pub(super) fn deliveries_from(
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<Delivery>, StoreError> {
    let mut rows = stmt.query(params)?;
    let mut deliveries = Vec::new();
    while let Some(row) = rows.next()? {
        deliveries.push(delivery_from_row(row)?);
    }
    Ok(deliveries)
}
