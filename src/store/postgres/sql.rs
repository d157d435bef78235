//! This backend's columns and row decoding, and the insert every write of new orders
//! shares.

use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};

use crate::domain::{Order, OrderId};
use crate::store::StoreError;
use crate::store::decode::StoredOrder;

pub(super) const ORDER_COLUMNS: &str = "id, user_id, item_ids, amount_cents, status, created_at, \
     completed_at, attempts, last_error, failed_at";

/// Reads a row of `ORDER_COLUMNS`.
pub(super) fn order_from_row(row: &PgRow) -> Result<Order, StoreError> {
    StoredOrder {
        id: OrderId::from_uuid(row.try_get("id")?),
        user_id: row.try_get("user_id")?,
        item_ids: row.try_get("item_ids")?,
        amount_cents: row.try_get("amount_cents")?,
        status: row.try_get("status")?,
        created_at: row.try_get("created_at")?,
        completed_at: row.try_get("completed_at")?,
        attempts: i64::from(row.try_get::<i32, _>("attempts")?),
        last_error: row.try_get("last_error")?,
        failed_at: row.try_get("failed_at")?,
    }
    .into_order()
}

pub(super) fn orders_from_rows(rows: &[PgRow]) -> Result<Vec<Order>, StoreError> {
    rows.iter().map(order_from_row).collect()
}

/// `INSERT` of whole orders (any status), skipping ids already stored.
pub(super) fn insert_orders(orders: &[Order]) -> QueryBuilder<'_, Postgres> {
    let mut query: QueryBuilder<Postgres> = QueryBuilder::new(
        "INSERT INTO orders (id, user_id, item_ids, amount_cents, status, created_at, \
         completed_at, attempts, last_error, failed_at, available_at) ",
    );
    query.push_values(orders, |mut row, order| {
        row.push_bind(*order.id.as_uuid())
            .push_bind(order.user_id.as_str().to_owned())
            .push_bind(order.item_ids.as_slice().to_vec())
            .push_bind(order.total_amount.cents())
            .push_bind(order.status.as_str())
            .push_bind(order.created_at)
            .push_bind(order.completed_at)
            .push_bind(i32::try_from(order.attempts).unwrap_or(i32::MAX))
            .push_bind(order.last_error.clone())
            .push_bind(order.failed_at)
            .push_bind(order.created_at);
    });
    query.push(" ON CONFLICT (id) DO NOTHING");
    query
}
