//! This backend's columns and row decoding, the insert every write of new orders
//! shares, and the clause that logs a change's events in its statement.

use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row};
use uuid::Uuid;

use crate::domain::{EventType, Order, OrderEvent, OrderId};
use crate::store::StoreError;
use crate::store::decode::{StoredEvent, StoredOrder};
use crate::store::literal::literal;

/// The columns an order is read from, written once for `ORDER_COLUMNS` and
/// `CHANGED_COLUMNS`.
macro_rules! order_columns {
    () => {
        "id, user_id, item_ids, amount_cents, status, created_at, completed_at, attempts, \
         last_error, failed_at, available_at, cancelled_at, cancel_reason, result"
    };
}

pub(super) const ORDER_COLUMNS: &str = order_columns!();

/// What a change's `RETURNING` gives, for its events and its answer.
pub(super) const CHANGED_COLUMNS: &str = concat!(order_columns!(), ", last_seq");

/// What every change of an order also sets: the next `seq`, and the transaction that
/// writes its event (which a trigger holds to increasing, migration 0005).
pub(super) const NEXT_EVENT: &str = "last_seq = last_seq + 1, event_xid = pg_current_xact_id()";

/// An event and its order: the columns of `ORDER_COLUMNS` (the fixed ones from
/// `orders`, the rest from the event), then the event's own.
pub(super) const EVENT_SELECT: &str = "SELECT o.id, o.user_id, o.item_ids, o.amount_cents, \
     e.status, o.created_at, e.completed_at, e.attempts, e.last_error, e.failed_at, \
     e.next_attempt_at AS available_at, e.cancelled_at, e.cancel_reason, \
     CASE WHEN e.type = 'order.completed' THEN o.result END AS result, \
     e.position, e.seq, e.type, e.occurred_at \
     FROM order_events e JOIN orders o ON o.id = e.order_id";

/// The data-modifying `WITH` entry that writes one event per row of the entry
/// `changed` (which returns `CHANGED_COLUMNS`), in the same statement and so the same
/// transaction; `event_type` and `occurred_at` are SQL over `changed`'s rows. A
/// transaction may run one such statement, changing at most `MAX_EVENTS_PER_STATEMENT`
/// orders: positions are its id and the row's number, so a second statement, or a
/// larger one, would reuse or overrun them (every caller is bounded, checked in mod.rs).
pub(super) fn log_changes(event_type: &str, occurred_at: &str) -> String {
    format!(
        "logged AS (INSERT INTO order_events (position, order_id, seq, type, occurred_at, \
             status, attempts, last_error, completed_at, failed_at, next_attempt_at, \
             cancelled_at, cancel_reason) \
         SELECT order_event_position(row_number() OVER ()), id, last_seq, {event_type}, \
                {occurred_at}, status, attempts, last_error, completed_at, failed_at, \
                CASE WHEN status = 'Pending' THEN available_at END, cancelled_at, cancel_reason \
         FROM changed)"
    )
}

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
        available_at: row.try_get("available_at")?,
        cancelled_at: row.try_get("cancelled_at")?,
        cancel_reason: row.try_get("cancel_reason")?,
        result: row.try_get("result")?,
    }
    .into_order()
}

pub(super) fn orders_from_rows(rows: &[PgRow]) -> Result<Vec<Order>, StoreError> {
    rows.iter().map(order_from_row).collect()
}

/// Reads a row of `EVENT_SELECT`.
pub(super) fn event_from_row(row: &PgRow) -> Result<OrderEvent, StoreError> {
    StoredEvent {
        position: row.try_get("position")?,
        seq: i64::from(row.try_get::<i32, _>("seq")?),
        event_type: row.try_get("type")?,
        occurred_at: row.try_get("occurred_at")?,
    }
    .into_event(order_from_row(row)?)
}

/// One statement that inserts whole orders (any status), skipping ids already stored,
/// and writes an `order.created` event for each new one; it answers the new ids.
///
/// The orders go in as arrays, one per column, so every batch size is one statement
/// text: one prepared statement and plan per connection, where a `VALUES` list was a
/// new statement, parsed and planned again, for each size. An order's items go as the
/// text of a PostgreSQL array, cast back per row.
pub(super) fn insert_orders(
    orders: &[Order],
) -> sqlx::query::QueryScalar<'static, Postgres, Uuid, sqlx::postgres::PgArguments> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "WITH input AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], \
                 $4::bigint[], $5::text[], $6::timestamptz[], $7::timestamptz[], $8::int[], \
                 $9::text[], $10::timestamptz[], $11::timestamptz[], $12::text[], \
                 $13::text[]) \
                 AS t (id, user_id, items, amount_cents, status, created_at, completed_at, \
                       attempts, last_error, failed_at, cancelled_at, cancel_reason, result)), \
             changed AS (INSERT INTO orders (id, user_id, item_ids, amount_cents, status, \
                 created_at, completed_at, attempts, last_error, failed_at, available_at, \
                 cancelled_at, cancel_reason, result, last_seq, event_xid) \
                 SELECT id, user_id, items::text[], amount_cents, status, created_at, \
                        completed_at, attempts, last_error, failed_at, created_at, \
                        cancelled_at, cancel_reason, result, 1, pg_current_xact_id() \
                 FROM input ORDER BY id \
                 ON CONFLICT (id) DO NOTHING RETURNING {CHANGED_COLUMNS}), {} \
             SELECT id FROM changed",
            log_changes(&literal(EventType::Created), "created_at")
        )
    });
    let column = |f: &dyn Fn(&Order) -> String| orders.iter().map(f).collect::<Vec<_>>();
    sqlx::query_scalar(SQL.as_str())
        .bind(orders.iter().map(|o| *o.id.as_uuid()).collect::<Vec<_>>())
        .bind(column(&|o| o.user_id.as_str().to_owned()))
        .bind(column(&|o| array_literal(o.item_ids.as_slice())))
        .bind(
            orders
                .iter()
                .map(|o| o.total_amount.cents())
                .collect::<Vec<_>>(),
        )
        .bind(column(&|o| o.status.as_str().to_owned()))
        .bind(orders.iter().map(|o| o.created_at).collect::<Vec<_>>())
        .bind(orders.iter().map(|o| o.completed_at).collect::<Vec<_>>())
        .bind(
            orders
                .iter()
                .map(|o| i32::try_from(o.attempts).unwrap_or(i32::MAX))
                .collect::<Vec<_>>(),
        )
        .bind(
            orders
                .iter()
                .map(|o| o.last_error.clone())
                .collect::<Vec<_>>(),
        )
        .bind(orders.iter().map(|o| o.failed_at).collect::<Vec<_>>())
        .bind(orders.iter().map(|o| o.cancelled_at).collect::<Vec<_>>())
        .bind(
            orders
                .iter()
                .map(|o| o.cancel_reason.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            orders
                .iter()
                .map(|o| o.result.as_ref().map(|r| r.as_str().to_owned()))
                .collect::<Vec<_>>(),
        )
}

/// `{"a","b"}`: a PostgreSQL array literal of texts, every element quoted and escaped.
fn array_literal(items: &[String]) -> String {
    let mut text = String::from("{");
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            text.push(',');
        }
        text.push('"');
        for c in item.chars() {
            if c == '"' || c == '\\' {
                text.push('\\');
            }
            text.push(c);
        }
        text.push('"');
    }
    text.push('}');
    text
}

#[cfg(test)]
mod tests {
    use super::array_literal;

    #[test]
    fn array_literals_quote_and_escape_every_item() {
        assert_eq!(array_literal(&["a".into(), "b c".into()]), r#"{"a","b c"}"#);
        assert_eq!(
            array_literal(&[r#"q"uote"#.into(), r"back\slash".into(), "{,}".into()]),
            r#"{"q\"uote","back\\slash","{,}"}"#
        );
        assert_eq!(array_literal(&["NULL".into()]), r#"{"NULL"}"#);
    }
}
