//! The embedded SQLite backend: WAL mode, fsync on every commit, one writer
//! connection on a thread of its own (group-committing new orders and completions),
//! and read-only connections used in place.
//!
//! It speaks to SQLite through rusqlite rather than sqlx: prepared statements are
//! reused, a group of writes is one transaction of single-row statements, and a read
//! is a direct call. sqlx still applies the migrations, so both backends keep one
//! migration history format.

mod readers;
mod sql;
mod writer;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params, params_from_iter};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use tokio::sync::Notify;
use uuid::Uuid;

use super::rows::{
    LEASE_EXPIRED, claim_outcome, corrupt, failure_fields, lease_end, metrics_from_totals,
    not_retried, rescued_from_statuses, schema_current,
};
use super::{
    Claim, ClaimOutcome, IdempotentResponse, KeyedInsert, ListQuery, OrderMetrics, Rescued,
    RetryOutcome, Store, StoreError,
};
use crate::domain::{AfterFailure, Order, OrderId, OrderStatus, Timestamp, from_millis};
use readers::Readers;
use sql::{ORDER_COLUMNS, insert_new_orders, list_statement, millis, orders_from, status_of};
use writer::Writer;

/// The writer's page cache, in KiB (see `connect`).
const WRITER_CACHE_KIB: i64 = 1024;

/// How long a connection waits on SQLite's write lock before giving up; other
/// processes on the same file (a `seed` beside a running `serve`) take turns.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// This backend's migrations, embedded in the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Orders in one SQLite file.
pub struct SqliteStore {
    path: PathBuf,
    writer: Writer,
    readers: Arc<Readers>,
    new_work: Arc<Notify>,
}

/// Opens a connection with the settings every connection of this backend shares.
fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if missing) the database file a `sqlite://PATH` URL names,
    /// keeping up to `read_connections` idle readers beside the one writer.
    pub async fn connect(url: &str, read_connections: u32) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?;
        let path = options.get_filename().to_path_buf();
        // Each connection to an in-memory database would get one of its own, and an
        // acknowledged order must outlive the process anyway.
        if url.contains(":memory:") || url.contains("mode=memory") {
            return Err(StoreError::InMemory);
        }
        let conn = open(&path)?;
        // WAL: readers never wait for the writer. FULL: every commit is fsync'd before
        // it returns, so a 201 means on disk.
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(corrupt(format!("SQLite refused WAL mode (kept {mode})")));
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        // The writer's page cache: what it touches are the right-hand edges of the table
        // and its indexes (ids and queue keys grow with time), and a full group commit
        // of 1,024 orders writes far fewer pages than it holds (measured by the log's
        // growth), so it never spills. 1 MiB rather than SQLite's 2 MiB default lowered
        // the peak resident memory under 1,000 connections with no change in CPU per
        // insert (BENCHMARKS.md has the figures).
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
        // Start from an empty log: a large one left by a bulk load or an unclean stop
        // makes every read search a large WAL index until the next write resets it.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        let new_work = Arc::<Notify>::default();
        let writer = Writer::start(conn, new_work.clone())
            .map_err(|err| StoreError::Unavailable(Box::new(err)))?;
        Ok(Self {
            readers: Readers::open(path.clone(), read_connections as usize)?,
            path,
            writer,
            new_work,
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn new_work(&self) -> Arc<Notify> {
        self.new_work.clone()
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        // sqlx's migrator, on a connection of its own for the duration.
        let options = SqliteConnectOptions::new()
            .filename(&self.path)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        let migrated = match MIGRATOR.run(&pool).await {
            Ok(()) => sqlx::query_scalar(super::STATUSES_WITH_TOTALS)
                .fetch_all(&pool)
                .await
                .map_err(StoreError::from),
            Err(err) => Err(err.into()),
        };
        pool.close().await;
        super::check_status_totals(&migrated?)
    }

    async fn ready(&self) -> Result<(), StoreError> {
        // Not ready if nothing can be written, however well reads go.
        if !self.writer.is_running() {
            return Err(StoreError::Batch(super::BatchError::Failed(
                "the SQLite writer has stopped".into(),
            )));
        }
        let applied = self.readers.read(|conn| {
            Ok(conn
                .prepare_cached("SELECT max(version) FROM _sqlx_migrations WHERE success = 1")?
                .query_row([], |row| row.get::<_, Option<i64>>(0))?)
        })?;
        schema_current(&MIGRATOR, applied)
    }

    async fn insert(&self, order: &Order) -> Result<(), StoreError> {
        self.writer.insert(order.clone()).await
    }

    async fn import(&self, orders: &[Order]) -> Result<u64, StoreError> {
        if orders.is_empty() {
            return Ok(0);
        }
        let orders = orders.to_vec();
        let added = self
            .writer
            .run(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let added = insert_new_orders(&tx, &orders)?;
                tx.commit()?;
                Ok(added.iter().filter(|new| **new).count() as u64)
            })
            .await?;
        self.new_work.notify_one();
        Ok(added)
    }

    async fn insert_keyed(
        &self,
        order: &Order,
        response: &IdempotentResponse,
        live_since: Timestamp,
    ) -> Result<KeyedInsert, StoreError> {
        let (order, response) = (order.clone(), response.clone());
        let outcome = self
            .writer
            .run(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                // An expired key of the same name is replaced; a live one wins.
                let stored = tx
                    .prepare_cached(
                        "INSERT INTO idempotency_keys \
                             (scope, key, fingerprint, order_id, status, body, created_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                         ON CONFLICT (scope, key) DO UPDATE SET \
                             fingerprint = excluded.fingerprint, order_id = excluded.order_id, \
                             status = excluded.status, body = excluded.body, \
                             created_at = excluded.created_at \
                         WHERE idempotency_keys.created_at < ?8",
                    )?
                    .execute(params![
                        response.scope,
                        response.key,
                        response.fingerprint,
                        response.order_id.to_string(),
                        i64::from(response.status),
                        response.body,
                        millis(response.created_at),
                        millis(live_since),
                    ])?;
                if stored == 0 {
                    return Ok(KeyedInsert::KeyTaken);
                }
                if insert_new_orders(&tx, [&order])? != [true] {
                    return Err(corrupt("an order id was already taken"));
                }
                tx.commit()?;
                Ok(KeyedInsert::Inserted)
            })
            .await?;
        if outcome == KeyedInsert::Inserted {
            self.new_work.notify_one();
        }
        Ok(outcome)
    }

    async fn find_keyed(
        &self,
        scope: &str,
        key: &str,
        live_since: Timestamp,
    ) -> Result<Option<IdempotentResponse>, StoreError> {
        let row = self.readers.read(|conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT fingerprint, order_id, status, body, created_at \
                     FROM idempotency_keys WHERE scope = ?1 AND key = ?2 AND created_at >= ?3",
                )?
                .query_row(params![scope, key, millis(live_since)], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, i64>(4)?,
                    ))
                })
                .optional()?)
        })?;
        row.map(|(fingerprint, order_id, status, body, created_at)| {
            Ok(IdempotentResponse {
                scope: scope.to_owned(),
                key: key.to_owned(),
                fingerprint,
                order_id: OrderId::from_str(&order_id).map_err(corrupt)?,
                status: u16::try_from(status).map_err(corrupt)?,
                body,
                created_at: from_millis(created_at),
            })
        })
        .transpose()
    }

    async fn prune_keys(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.writer
            .run(move |conn| {
                Ok(conn
                    .prepare_cached("DELETE FROM idempotency_keys WHERE created_at < ?1")?
                    .execute([millis(before)])? as u64)
            })
            .await
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        self.readers.read(|conn| {
            let mut stmt =
                conn.prepare_cached(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?1"))?;
            Ok(orders_from(&mut stmt, [id.to_string()])?.pop())
        })
    }

    async fn status(&self, id: OrderId) -> Result<Option<OrderStatus>, StoreError> {
        self.readers.read(|conn| status_of(conn, id))
    }

    async fn metrics(&self) -> Result<OrderMetrics, StoreError> {
        // Kept in the transaction of every change (triggers for changes, the store for
        // new orders), and one statement is one snapshot: counts and sums agree.
        let totals = self.readers.read(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT status, orders, processing_ms FROM order_stats")?;
            let totals = stmt
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(totals)
        })?;
        metrics_from_totals(totals)
    }

    async fn claim(
        &self,
        limit: usize,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Vec<Claim>, StoreError> {
        let token = Uuid::new_v4();
        let lease_expires_at = lease_end(now, lease);
        let mut orders = self
            .writer
            .run(move |conn| {
                // The partial index is named: without statistics the planner once
                // walked every Pending order through another index and sorted them.
                let mut stmt = conn.prepare_cached(&format!(
                    "UPDATE orders SET status = 'Processing', claim_token = ?1, \
                            lease_expires_at = ?2, attempts = attempts + 1 \
                     WHERE id IN (SELECT id FROM orders INDEXED BY orders_pending \
                                  WHERE status = 'Pending' AND available_at <= ?3 \
                                  ORDER BY available_at, id LIMIT ?4) \
                     RETURNING {ORDER_COLUMNS}"
                ))?;
                orders_from(
                    &mut stmt,
                    params![
                        token.to_string(),
                        millis(lease_expires_at),
                        millis(now),
                        i64::try_from(limit).unwrap_or(i64::MAX),
                    ],
                )
            })
            .await?;
        // RETURNING gives no order guarantee; hand work out oldest first.
        orders.sort_by_key(|order| order.id);
        Ok(orders
            .into_iter()
            .map(|order| Claim {
                order,
                token,
                lease_expires_at,
            })
            .collect())
    }

    async fn complete(&self, claim: &Claim, now: Timestamp) -> Result<ClaimOutcome, StoreError> {
        self.writer
            .complete((claim.order.id, claim.token, now))
            .await
    }

    async fn fail(
        &self,
        claim: &Claim,
        error: &str,
        after: AfterFailure,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        let (status, available_at, failed_at) = failure_fields(after, now);
        let (id, token, error) = (claim.order.id, claim.token, error.to_owned());
        self.writer
            .run(move |conn| {
                let changed = conn
                    .prepare_cached(
                        "UPDATE orders SET status = ?1, available_at = ?2, failed_at = ?3, \
                                last_error = ?4, claim_token = NULL, lease_expires_at = NULL \
                         WHERE id = ?5 AND status = 'Processing' AND claim_token = ?6",
                    )?
                    .execute(params![
                        status,
                        millis(available_at),
                        failed_at.map(millis),
                        error,
                        id.to_string(),
                        token.to_string(),
                    ])?;
                Ok(claim_outcome(changed as u64))
            })
            .await
    }

    async fn release(&self, claim: &Claim) -> Result<ClaimOutcome, StoreError> {
        let (id, token) = (claim.order.id, claim.token);
        let outcome = self
            .writer
            .run(move |conn| {
                let changed = conn
                    .prepare_cached(
                        "UPDATE orders SET status = 'Pending', claim_token = NULL, \
                                lease_expires_at = NULL \
                         WHERE id = ?1 AND status = 'Processing' AND claim_token = ?2",
                    )?
                    .execute([id.to_string(), token.to_string()])?;
                Ok(claim_outcome(changed as u64))
            })
            .await?;
        self.new_work.notify_one();
        Ok(outcome)
    }

    async fn rescue_expired(
        &self,
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<Rescued, StoreError> {
        let statuses = self
            .writer
            .run(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "UPDATE orders INDEXED BY orders_processing_lease SET \
                         status = CASE WHEN attempts >= ?1 THEN 'Failed' ELSE 'Pending' END, \
                         failed_at = CASE WHEN attempts >= ?1 THEN ?2 END, \
                         available_at = ?2, last_error = ?3, claim_token = NULL, \
                         lease_expires_at = NULL \
                     WHERE status = 'Processing' AND lease_expires_at < ?2 \
                     RETURNING status",
                )?;
                let statuses = stmt
                    .query_map(
                        params![i64::from(max_attempts), millis(now), LEASE_EXPIRED],
                        |row| row.get::<_, String>(0),
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(statuses)
            })
            .await?;
        let rescued = rescued_from_statuses(&statuses);
        if rescued.requeued > 0 {
            self.new_work.notify_one();
        }
        Ok(rescued)
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<Order>, StoreError> {
        let (sql, values) = list_statement(query);
        self.readers
            .read_blocking(move |conn| {
                orders_from(&mut conn.prepare_cached(&sql)?, params_from_iter(values))
            })
            .await
    }

    async fn retry_failed(&self, id: OrderId, now: Timestamp) -> Result<RetryOutcome, StoreError> {
        let retried = self
            .writer
            .run(move |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "UPDATE orders SET status = 'Pending', attempts = 0, failed_at = NULL, \
                            available_at = ?1 \
                     WHERE id = ?2 AND status = 'Failed' RETURNING {ORDER_COLUMNS}"
                ))?;
                orders_from(&mut stmt, params![millis(now), id.to_string()])
            })
            .await?;
        match retried.into_iter().next() {
            Some(order) => {
                self.new_work.notify_one();
                Ok(RetryOutcome::Retried(order))
            }
            None => Ok(not_retried(self.readers.read(|conn| status_of(conn, id))?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_writer_logs_ahead_syncs_every_commit_and_bounds_its_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("orders.db").display());
        let store = SqliteStore::connect(&url, 1).await.unwrap();
        let (mode, synchronous, cache) = store
            .writer
            .run(|conn| {
                let mode: String =
                    conn.pragma_query_value(None, "journal_mode", |row| row.get(0))?;
                let synchronous: i64 =
                    conn.pragma_query_value(None, "synchronous", |row| row.get(0))?;
                let cache: i64 = conn.pragma_query_value(None, "cache_size", |row| row.get(0))?;
                Ok((mode, synchronous, cache))
            })
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        // 2 is FULL: the log is fsync'd at every commit, before an order is acknowledged.
        assert_eq!(synchronous, 2);
        assert_eq!(cache, -WRITER_CACHE_KIB);
    }

    /// A store on a fresh file with every migration applied; the file lives as long as
    /// the directory returned with it.
    async fn migrated_store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("orders.db").display());
        let store = SqliteStore::connect(&url, 1).await.unwrap();
        store.migrate().await.unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn every_listing_by_status_or_user_reads_an_index_of_its_own() {
        let (_dir, store) = migrated_store().await;
        let cases = [
            (Some(OrderStatus::Pending), false, "orders_pending"),
            (Some(OrderStatus::Pending), true, "orders_user_id"),
            (
                Some(OrderStatus::Processing),
                false,
                "orders_processing_lease",
            ),
            (
                Some(OrderStatus::Processing),
                true,
                "orders_processing_lease",
            ),
            (Some(OrderStatus::Completed), false, "orders_completed"),
            (Some(OrderStatus::Completed), true, "orders_user_id"),
            (Some(OrderStatus::Failed), false, "orders_failed"),
            (Some(OrderStatus::Failed), true, "orders_user_id"),
            (None, true, "orders_user_id"),
        ];
        for (status, by_user, index) in cases {
            for before in [None, Some(OrderId::new_at(crate::domain::now()))] {
                let query = ListQuery {
                    status,
                    user_id: by_user.then(|| "alice".to_owned()),
                    before,
                    limit: 10,
                };
                let (sql, values) = list_statement(&query);
                let plan = store
                    .readers
                    .read(move |conn| {
                        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                        let details = stmt
                            .query_map(params_from_iter(values), |row| row.get::<_, String>(3))?
                            .collect::<rusqlite::Result<Vec<_>>>()?;
                        Ok(details.join("; "))
                    })
                    .unwrap();
                assert!(
                    plan.contains(&format!("INDEX {index}")),
                    "{query:?} reads {index}, but its plan is: {plan}"
                );
            }
        }
    }

    #[tokio::test]
    async fn writing_an_order_builds_no_temporary_table_and_still_checks_its_status() {
        let (_dir, store) = migrated_store().await;
        store
            .writer
            .run(|conn| {
                // A status check written `status IN (...)` built a b-tree of its values
                // for every row (migration 0006).
                for statement in [sql::INSERT_ORDER, writer::COMPLETE] {
                    let mut explain = conn.prepare(&format!("EXPLAIN {statement}"))?;
                    let unbound = vec![rusqlite::types::Null; explain.parameter_count()];
                    let opcodes = explain
                        .query_map(params_from_iter(unbound), |row| row.get::<_, String>(1))?
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    assert!(
                        !opcodes.iter().any(|op| op == "OpenEphemeral"),
                        "{statement} builds a temporary table: {opcodes:?}"
                    );
                }
                let refused = conn.execute(
                    "INSERT INTO orders (id, user_id, item_ids, amount_cents, status, \
                     created_at, available_at) VALUES ('x', 'u', '[]', 1, 'Shipped', 0, 0)",
                    [],
                );
                assert!(
                    refused.is_err_and(|err| err.to_string().contains("CHECK")),
                    "an unknown status is refused"
                );
                Ok(())
            })
            .await
            .unwrap();
    }
}
