//! Orders in and out: new orders (group-committed), imports, reads by id (coalesced),
//! the running totals and listings.

use std::sync::LazyLock;

use async_trait::async_trait;
use sqlx::postgres::PgPool;
use sqlx::{Postgres, QueryBuilder};

use super::PostgresStore;
use super::sql::{ORDER_COLUMNS, insert_orders, orders_from_rows};
use crate::domain::{Order, OrderId, OrderStatus, Timestamp};
use crate::store::decode::{corrupt, id_taken, metrics_from_totals};
use crate::store::literal::literal;
use crate::store::{ListQuery, Orders, Overview, StoreError};

/// Most orders one import statement inserts.
pub(super) const IMPORT_CHUNK: usize = 1_000;

#[async_trait]
impl Orders for PostgresStore {
    async fn insert(&self, order: &Order) -> Result<(), StoreError> {
        if !self.inserts.submit(order.clone()).await? {
            return Err(id_taken());
        }
        // Wake a local worker without waiting for the NOTIFY round trip.
        self.new_work.notify_one();
        Ok(())
    }

    async fn import(&self, orders: &[Order]) -> Result<u64, StoreError> {
        if orders.is_empty() {
            return Ok(0);
        }
        // In chunks, each its own transaction: one statement's events must fit the
        // positions of one transaction, and a transaction may write events in one
        // statement only (migration 0005). So a failure can leave part of an import
        // in; running it again adds the rest (ids already stored are skipped).
        let mut added = 0;
        for chunk in orders.chunks(IMPORT_CHUNK) {
            let ids: Vec<uuid::Uuid> = insert_orders(chunk).fetch_all(&self.pool).await?;
            added += ids.len() as u64;
        }
        Ok(added)
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        self.orders.get(id).await
    }

    async fn status(&self, id: OrderId) -> Result<Option<OrderStatus>, StoreError> {
        self.statuses.get(id).await
    }

    async fn overview(&self, now: Timestamp) -> Result<Overview, StoreError> {
        self.overviews
            .get(now)
            .await?
            .ok_or_else(|| corrupt("the overview's read answered nothing"))
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<Order>, StoreError> {
        let mut sql: QueryBuilder<Postgres> =
            QueryBuilder::new(format!("SELECT {ORDER_COLUMNS} FROM orders WHERE true"));
        // Written into the statement rather than bound, so PostgreSQL can tell that a
        // status's partial index covers it (migration 11): a generic plan for a bound
        // status must serve any status, and none of those indexes holds them all.
        if let Some(status) = query.status {
            sql.push(format_args!(" AND status = {}", literal(status)));
        }
        if let Some(user_id) = &query.user_id {
            sql.push(" AND user_id = ").push_bind(user_id.clone());
        }
        if let Some(before) = query.before {
            sql.push(" AND id < ").push_bind(*before.as_uuid());
        }
        sql.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::try_from(query.limit).unwrap_or(i64::MAX));
        let rows = sql.build().fetch_all(&self.pool).await?;
        orders_from_rows(&rows)
    }
}

/// `columns` of the orders whose ids are bound as `$1`, one lookup of the primary key
/// per id. Not `WHERE id = ANY($1)`: on `orders` partitioned by id (SCALING.md), that
/// searches every partition (a prepared statement's generic plan cannot prune by an
/// array) for every id, where a lookup per id is pruned to the one partition that can
/// hold it while the statement runs. On the plain table both are one index search per
/// id.
fn by_ids(columns: &str) -> String {
    format!(
        "SELECT o.* FROM unnest($1::uuid[]) AS k (id) \
         CROSS JOIN LATERAL (SELECT {columns} FROM orders WHERE orders.id = k.id) AS o"
    )
}

/// The orders of one coalesced read (`coalesce`), by id.
pub(super) async fn read_orders(
    pool: PgPool,
    ids: Vec<OrderId>,
) -> Result<Vec<(OrderId, Order)>, StoreError> {
    static SQL: LazyLock<String> = LazyLock::new(|| by_ids(ORDER_COLUMNS));
    let rows = sqlx::query(SQL.as_str())
        .bind(ids.iter().map(|id| *id.as_uuid()).collect::<Vec<_>>())
        .fetch_all(&pool)
        .await?;
    Ok(orders_from_rows(&rows)?
        .into_iter()
        .map(|order| (order.id, order))
        .collect())
}

/// The statuses of one coalesced read, by id.
pub(super) async fn read_statuses(
    pool: PgPool,
    ids: Vec<OrderId>,
) -> Result<Vec<(OrderId, OrderStatus)>, StoreError> {
    static SQL: LazyLock<String> = LazyLock::new(|| by_ids("id, status"));
    let rows: Vec<(uuid::Uuid, String)> = sqlx::query_as(SQL.as_str())
        .bind(ids.iter().map(|id| *id.as_uuid()).collect::<Vec<_>>())
        .fetch_all(&pool)
        .await?;
    rows.into_iter()
        .map(|(id, status)| Ok((OrderId::from_uuid(id), status.parse().map_err(corrupt)?)))
        .collect()
}

/// A row of the overview's read: a status's totals (absent when there are none yet)
/// beside the oldest due time.
type OverviewRow = (Option<String>, Option<i64>, Option<i64>, Option<Timestamp>);

/// The overviews of concurrent callers, coalesced: one statement read at the latest of
/// their times answers each (see [`Overview::as_of`]). Triggers keep per-shard totals
/// in the transaction of every change; they are summed over the shards and the queue's
/// index probed once (`orders_pending`) in one statement, so one snapshot, whatever
/// other instances write. The left join keeps the probe's row when there are no
/// totals yet.
pub(super) async fn read_overviews(
    pool: PgPool,
    nows: Vec<Timestamp>,
) -> Result<Vec<(Timestamp, Overview)>, StoreError> {
    let Some(latest) = nows.iter().max().copied() else {
        return Ok(Vec::new());
    };
    let rows: Vec<OverviewRow> = sqlx::query_as(
        "SELECT s.status, s.n, s.processing_ms, d.oldest \
         FROM (SELECT min(available_at) AS oldest FROM orders \
               WHERE status = 'Pending' AND available_at <= $1) AS d \
         LEFT JOIN (SELECT status, sum(orders)::bigint AS n, \
                           sum(processing_ms)::bigint AS processing_ms \
                    FROM order_stats GROUP BY status) AS s ON true",
    )
    .bind(latest)
    .fetch_all(&pool)
    .await?;
    let oldest_due = rows.first().and_then(|row| row.3);
    // A status's sums are never NULL (its columns are NOT NULL): one that is is the
    // database's fault, as it was when the totals were read on their own.
    let totals = rows
        .into_iter()
        .filter_map(|(status, n, processing_ms, _)| Some((status?, n, processing_ms)))
        .map(|(status, n, processing_ms)| match (n, processing_ms) {
            (Some(n), Some(ms)) => Ok((status, n, ms)),
            _ => Err(corrupt(format!("the totals of {status} summed to NULL"))),
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let read = Overview {
        metrics: metrics_from_totals(totals)?,
        oldest_due,
    };
    Ok(nows.into_iter().map(|now| (now, read.as_of(now))).collect())
}
