//! The SQLite backend's statements and row decoding, shared by the writer thread and
//! the readers.

use std::str::FromStr;

use rusqlite::types::Value;
use rusqlite::{CachedStatement, Connection, OptionalExtension, Row, params};

use crate::domain::{
    EventType, Order, OrderEvent, OrderId, OrderResult, OrderStatus, Timestamp, from_millis,
};
use crate::store::decode::{StoredEvent, StoredOrder, corrupt};
use crate::store::literal::literal;
use crate::store::{ListQuery, StoreError};

/// The columns an order is read from, written once for `ORDER_COLUMNS` and
/// `CHANGED_COLUMNS`.
macro_rules! order_columns {
    () => {
        "id, user_id, item_ids, amount_cents, status, created_at, completed_at, attempts, \
         last_error, failed_at, available_at, cancelled_at, cancel_reason, result"
    };
}

/// The columns `order_from_row` reads, in its order.
pub(super) const ORDER_COLUMNS: &str = order_columns!();

/// Inserts one whole order (any status) unless its id is already stored; its first
/// event is numbered 1.
pub(super) const INSERT_ORDER: &str = "INSERT INTO orders (id, user_id, item_ids, amount_cents, \
     status, created_at, completed_at, attempts, last_error, failed_at, available_at, \
     cancelled_at, cancel_reason, result, last_seq) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?6, ?11, ?12, ?13, 1) \
     ON CONFLICT (id) DO NOTHING";

/// Writes one event, with the order as the change left it.
const INSERT_EVENT: &str = "INSERT INTO order_events (order_id, seq, type, occurred_at, status, \
     attempts, last_error, completed_at, failed_at, next_attempt_at, cancelled_at, cancel_reason) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

/// What a change's `RETURNING` gives: the order as it left it, and the seq of the
/// event it writes (`changed_from` reads them).
pub(super) const CHANGED_COLUMNS: &str = concat!(order_columns!(), ", last_seq");

/// An event and its order, in the order `event_from_row` reads them: the columns of
/// `ORDER_COLUMNS` (the fixed ones from `orders`, the rest from the event), then the
/// event's own.
pub(super) const EVENT_SELECT: &str = "SELECT o.id, o.user_id, o.item_ids, o.amount_cents, \
     e.status, o.created_at, e.completed_at, e.attempts, e.last_error, e.failed_at, \
     e.next_attempt_at, e.cancelled_at, e.cancel_reason, \
     CASE WHEN e.type = 'order.completed' THEN o.result END, \
     e.position, e.seq, e.type, e.occurred_at \
     FROM order_events e JOIN orders o ON o.id = e.order_id";

pub(super) fn millis(at: Timestamp) -> i64 {
    at.timestamp_millis()
}

/// Reads a row of `ORDER_COLUMNS`.
pub(super) fn order_from_row(row: &Row<'_>) -> Result<Order, StoreError> {
    let id: String = row.get(0)?;
    let item_ids: String = row.get(2)?;
    let time = |column: usize| -> rusqlite::Result<Option<Timestamp>> {
        Ok(row.get::<_, Option<i64>>(column)?.map(from_millis))
    };
    StoredOrder {
        id: OrderId::from_str(&id).map_err(corrupt)?,
        user_id: row.get(1)?,
        item_ids: serde_json::from_str(&item_ids).map_err(corrupt)?,
        amount_cents: row.get(3)?,
        status: row.get(4)?,
        created_at: from_millis(row.get(5)?),
        completed_at: time(6)?,
        attempts: row.get(7)?,
        last_error: row.get(8)?,
        failed_at: time(9)?,
        available_at: time(10)?,
        cancelled_at: time(11)?,
        cancel_reason: row.get(12)?,
        result: row.get(13)?,
    }
    .into_order()
}

/// Reads a row of `EVENT_SELECT`.
pub(super) fn event_from_row(row: &Row<'_>) -> Result<OrderEvent, StoreError> {
    let order = order_from_row(row)?;
    StoredEvent {
        position: row.get(14)?,
        seq: row.get(15)?,
        event_type: row.get(16)?,
        occurred_at: from_millis(row.get(17)?),
    }
    .into_event(order)
}

/// Runs a prepared `EVENT_SELECT` and decodes every row.
pub(super) fn events_from(
    stmt: &mut CachedStatement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<OrderEvent>, StoreError> {
    let mut rows = stmt.query(params)?;
    let mut events = Vec::new();
    while let Some(row) = rows.next()? {
        events.push(event_from_row(row)?);
    }
    Ok(events)
}

/// Runs a prepared statement and decodes every row as an order.
pub(super) fn orders_from(
    stmt: &mut CachedStatement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<Order>, StoreError> {
    let mut rows = stmt.query(params)?;
    let mut orders = Vec::new();
    while let Some(row) = rows.next()? {
        orders.push(order_from_row(row)?);
    }
    Ok(orders)
}

/// Runs a prepared change whose `RETURNING` is `CHANGED_COLUMNS`: each changed order
/// with the seq of the event the change writes.
pub(super) fn changed_from(
    stmt: &mut CachedStatement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<(Order, i64)>, StoreError> {
    let mut rows = stmt.query(params)?;
    let mut changed = Vec::new();
    while let Some(row) = rows.next()? {
        changed.push((order_from_row(row)?, row.get(14)?));
    }
    Ok(changed)
}

/// Writes the `seq`th event of `order` (as the change left it), in the caller's
/// transaction.
pub(super) fn record_event(
    conn: &Connection,
    order: &Order,
    seq: i64,
    event_type: EventType,
    at: Timestamp,
) -> rusqlite::Result<()> {
    conn.prepare_cached(INSERT_EVENT)?.execute(params![
        order.id.to_string(),
        seq,
        event_type.as_str(),
        millis(at),
        order.status.as_str(),
        i64::from(order.attempts),
        order.last_error.as_deref(),
        order.completed_at.map(millis),
        order.failed_at.map(millis),
        order.next_attempt_at.map(millis),
        order.cancelled_at.map(millis),
        order.cancel_reason.as_deref(),
    ])?;
    Ok(())
}

/// Writes the events of changes `changed_from` read.
pub(super) fn record_changes(
    conn: &Connection,
    changed: &[(Order, i64)],
    event_type: impl Fn(&Order) -> EventType,
    at: Timestamp,
) -> rusqlite::Result<()> {
    for (order, seq) in changed {
        record_event(conn, order, *seq, event_type(order), at)?;
    }
    Ok(())
}

/// Inserts whole orders (any status) in the caller's transaction, skipping ids already
/// stored, and adds the new ones to the running totals in the same transaction; says
/// which orders went in.
pub(super) fn insert_new_orders<'a, I>(conn: &Connection, orders: I) -> rusqlite::Result<Vec<bool>>
where
    I: IntoIterator<Item = &'a Order>,
    I::IntoIter: Clone,
{
    let orders = orders.into_iter();
    let mut insert = conn.prepare_cached(INSERT_ORDER)?;
    let added = orders
        .clone()
        .map(|order| Ok(insert_order(&mut insert, order)? == 1))
        .collect::<rusqlite::Result<Vec<bool>>>()?;
    let new_orders = orders
        .zip(&added)
        .filter(|(_, new)| **new)
        .map(|(order, _)| order);
    for order in new_orders.clone() {
        // As it was stored: due at its creation, if it waits.
        let stored = Order {
            next_attempt_at: (order.status == OrderStatus::Pending).then_some(order.created_at),
            ..order.clone()
        };
        record_event(conn, &stored, 1, EventType::Created, order.created_at)?;
    }
    count_new_orders(conn, new_orders)?;
    Ok(added)
}

/// Runs `INSERT_ORDER` for `order`; returns the rows added (0 for a taken id).
fn insert_order(stmt: &mut CachedStatement<'_>, order: &Order) -> rusqlite::Result<usize> {
    stmt.execute(params![
        order.id.to_string(),
        order.user_id.as_str(),
        serde_json::to_string(order.item_ids.as_slice()).expect("a list of strings serialises"),
        order.total_amount.cents(),
        order.status.as_str(),
        millis(order.created_at),
        order.completed_at.map(millis),
        i64::from(order.attempts),
        order.last_error.as_deref(),
        order.failed_at.map(millis),
        order.cancelled_at.map(millis),
        order.cancel_reason.as_deref(),
        order.result.as_ref().map(OrderResult::as_str),
    ])
}

/// Adds newly inserted orders to the running totals, in the inserting transaction:
/// one statement per status rather than a trigger run per row (migration 0005).
fn count_new_orders<'a>(
    conn: &Connection,
    orders: impl IntoIterator<Item = &'a Order>,
) -> rusqlite::Result<()> {
    let mut totals: Vec<(OrderStatus, i64, i64)> = Vec::new();
    for order in orders {
        let processing_ms = order
            .completed_at
            .map_or(0, |done| millis(done) - millis(order.created_at));
        match totals
            .iter_mut()
            .find(|(status, _, _)| *status == order.status)
        {
            Some((_, count, sum)) => {
                *count += 1;
                *sum += processing_ms;
            }
            None => totals.push((order.status, 1, processing_ms)),
        }
    }
    let mut add = conn.prepare_cached(
        "UPDATE order_stats SET orders = orders + ?2, processing_ms = processing_ms + ?3 \
         WHERE status = ?1",
    )?;
    for (status, count, sum) in totals {
        add.execute(params![status.as_str(), count, sum])?;
    }
    Ok(())
}

/// The statement (and its values) for a page of a listing, newest first. It names the
/// index it reads (migration 0006), so no listing walks the whole table for a status
/// that few orders have: each status's own index, except for a user's orders, which
/// their user's index finds without passing over everyone else's (a user's orders in
/// flight aside: the lease index holds only those). The status is written into the
/// statement rather than bound, so SQLite can tell that a partial index covers it.
pub(super) fn list_statement(query: &ListQuery) -> (String, Vec<Value>) {
    let by_user = query.user_id.is_some();
    let index = match (query.status, by_user) {
        // Orders in flight are few, whoever's they are.
        (Some(OrderStatus::Processing), _) => Some("orders_processing_lease"),
        // In id order, so a page stops at its limit: every listing a non-admin caller
        // makes is by user.
        (_, true) => Some("orders_user_id"),
        (Some(OrderStatus::Pending), false) => Some("orders_pending"),
        (Some(OrderStatus::Completed), false) => Some("orders_completed"),
        (Some(OrderStatus::Failed), false) => Some("orders_failed"),
        (Some(OrderStatus::Cancelled), false) => Some("orders_cancelled"),
        // The table itself, which is in id order.
        (None, false) => None,
    };
    let mut sql = format!("SELECT {ORDER_COLUMNS} FROM orders");
    if let Some(index) = index {
        sql.push_str(" INDEXED BY ");
        sql.push_str(index);
    }
    sql.push_str(" WHERE 1 = 1");
    let mut values = Vec::new();
    if let Some(status) = query.status {
        sql.push_str(&format!(" AND status = {}", literal(status)));
    }
    if let Some(user_id) = &query.user_id {
        sql.push_str(" AND user_id = ?");
        values.push(Value::Text(user_id.clone()));
    }
    if let Some(before) = query.before {
        sql.push_str(" AND id < ?");
        values.push(Value::Text(before.to_string()));
    }
    sql.push_str(" ORDER BY id DESC LIMIT ?");
    values.push(Value::Integer(
        i64::try_from(query.limit).unwrap_or(i64::MAX),
    ));
    (sql, values)
}

pub(super) fn status_of(conn: &Connection, id: OrderId) -> Result<Option<OrderStatus>, StoreError> {
    let status: Option<String> = conn
        .prepare_cached("SELECT status FROM orders WHERE id = ?1")?
        .query_row([id.to_string()], |row| row.get(0))
        .optional()?;
    status.map(|s| s.parse().map_err(corrupt)).transpose()
}
