//! The embedded SQLite backend: WAL mode, fsync on every commit, one writer
//! connection and a separate pool of read-only connections.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};
use tokio::sync::Notify;
use uuid::Uuid;

use super::batch::Batcher;
use super::rows::{
    Completion, LEASE_EXPIRED, StoredOrder, claim_outcome, completion_outcomes, corrupt, lease_end,
    metrics_from_totals, not_retried, rescued_from_statuses, schema_current,
};
use super::{
    Claim, ClaimOutcome, IdempotentResponse, KeyedInsert, ListQuery, OrderMetrics, Rescued,
    RetryOutcome, Store, StoreError,
};
use crate::domain::{AfterFailure, Order, OrderId, OrderStatus, Timestamp, from_millis};

/// How long a connection waits on SQLite's write lock before giving up; other
/// processes on the same file (a `seed` beside a running `serve`) take turns.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// This backend's migrations, embedded in the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

const ORDER_COLUMNS: &str = "id, user_id, item_ids, amount_cents, status, created_at, \
     completed_at, attempts, last_error, failed_at";

/// Orders in one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    /// The one connection that writes: SQLite has a single writer anyway, and one
    /// connection keeps writers queueing in the pool rather than spinning on the lock.
    writer: SqlitePool,
    /// Read-only connections (`query_only`), so reads never wait behind writes.
    reader: SqlitePool,
    new_work: Arc<Notify>,
    /// New orders, group-committed: one statement and one fsync per batch.
    inserts: Arc<Batcher<Order, ()>>,
    /// Completions, group-committed the same way.
    completions: Arc<Batcher<Completion, ClaimOutcome>>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file a `sqlite://PATH` URL names, with
    /// up to `read_connections` readers beside the one writer.
    pub async fn connect(url: &str, read_connections: u32) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: every commit is fsync'd before it returns, so a 201 means on disk.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT);
        // No ping before each use: an in-process database has no connection to lose.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(read_connections.max(1))
            .test_before_acquire(false)
            .connect_with(options.pragma("query_only", "ON"))
            .await?;
        let new_work = Arc::<Notify>::default();
        let inserts = Arc::new(Batcher::spawn({
            let (writer, new_work) = (writer.clone(), new_work.clone());
            move |orders: Arc<Vec<Order>>| {
                let (writer, new_work) = (writer.clone(), new_work.clone());
                async move {
                    let done = insert_orders(&orders).build().execute(&writer).await?;
                    if done.rows_affected() != orders.len() as u64 {
                        return Err(corrupt("an order id was already taken"));
                    }
                    new_work.notify_one();
                    Ok(vec![(); orders.len()])
                }
            }
        }));
        let completions = Arc::new(Batcher::spawn({
            let writer = writer.clone();
            move |batch: Arc<Vec<Completion>>| {
                let writer = writer.clone();
                async move { complete_batch(&writer, &batch).await }
            }
        }));
        Ok(Self {
            writer,
            reader,
            new_work,
            inserts,
            completions,
        })
    }
}

fn millis(at: Timestamp) -> i64 {
    at.timestamp_millis()
}

/// Reads a row of `ORDER_COLUMNS`.
fn order_from_row(row: &SqliteRow) -> Result<Order, StoreError> {
    let id: String = row.try_get("id")?;
    let item_ids: String = row.try_get("item_ids")?;
    let time = |column: &str| -> Result<Option<Timestamp>, sqlx::Error> {
        Ok(row.try_get::<Option<i64>, _>(column)?.map(from_millis))
    };
    StoredOrder {
        id: OrderId::from_str(&id).map_err(corrupt)?,
        user_id: row.try_get("user_id")?,
        item_ids: serde_json::from_str(&item_ids).map_err(corrupt)?,
        amount_cents: row.try_get("amount_cents")?,
        status: row.try_get("status")?,
        created_at: from_millis(row.try_get("created_at")?),
        completed_at: time("completed_at")?,
        attempts: row.try_get("attempts")?,
        last_error: row.try_get("last_error")?,
        failed_at: time("failed_at")?,
    }
    .into_order()
}

fn orders_from_rows(rows: &[SqliteRow]) -> Result<Vec<Order>, StoreError> {
    rows.iter().map(order_from_row).collect()
}

/// Completes a batch of claims in one guarded statement; only rows whose claim is
/// still current change, and `RETURNING` says which.
async fn complete_batch(
    writer: &SqlitePool,
    batch: &[Completion],
) -> Result<Vec<ClaimOutcome>, StoreError> {
    let mut sql: QueryBuilder<Sqlite> = QueryBuilder::new(
        "UPDATE orders SET status = 'Completed', completed_at = v.column3, \
                claim_token = NULL, lease_expires_at = NULL \
         FROM (",
    );
    sql.push_values(batch, |mut row, (id, token, at)| {
        row.push_bind(id.to_string())
            .push_bind(token.to_string())
            .push_bind(millis(*at));
    });
    sql.push(
        ") AS v WHERE orders.id = v.column1 AND orders.claim_token = v.column2 \
         AND orders.status = 'Processing' RETURNING orders.id",
    );
    let ids: Vec<String> = sql.build_query_scalar().fetch_all(writer).await?;
    let applied = ids
        .iter()
        .map(|id| OrderId::from_str(id).map_err(corrupt))
        .collect::<Result<_, _>>()?;
    Ok(completion_outcomes(batch, &applied))
}

/// `INSERT` of whole orders (any status), skipping ids already stored.
fn insert_orders(orders: &[Order]) -> QueryBuilder<'_, Sqlite> {
    let mut query: QueryBuilder<Sqlite> = QueryBuilder::new(
        "INSERT INTO orders (id, user_id, item_ids, amount_cents, status, created_at, \
         completed_at, attempts, last_error, failed_at, available_at) ",
    );
    query.push_values(orders, |mut row, order| {
        row.push_bind(order.id.to_string())
            .push_bind(order.user_id.as_str())
            .push_bind(items_json(order))
            .push_bind(order.total_amount.cents())
            .push_bind(order.status.as_str())
            .push_bind(millis(order.created_at))
            .push_bind(order.completed_at.map(millis))
            .push_bind(i64::from(order.attempts))
            .push_bind(order.last_error.as_deref())
            .push_bind(order.failed_at.map(millis))
            .push_bind(millis(order.created_at));
    });
    query.push(" ON CONFLICT (id) DO NOTHING");
    query
}

fn items_json(order: &Order) -> String {
    serde_json::to_string(order.item_ids.as_slice()).expect("a list of strings serialises")
}

#[async_trait]
impl Store for SqliteStore {
    fn new_work(&self) -> Arc<Notify> {
        self.new_work.clone()
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.writer).await?;
        Ok(())
    }

    async fn ready(&self) -> Result<(), StoreError> {
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success = 1")
                .fetch_one(&self.reader)
                .await?;
        schema_current(&MIGRATOR, applied)
    }

    async fn insert(&self, order: &Order) -> Result<(), StoreError> {
        self.inserts.submit(order.clone()).await
    }

    async fn import(&self, orders: &[Order]) -> Result<u64, StoreError> {
        if orders.is_empty() {
            return Ok(0);
        }
        let done = insert_orders(orders).build().execute(&self.writer).await?;
        self.new_work.notify_one();
        Ok(done.rows_affected())
    }

    async fn insert_keyed(
        &self,
        order: &Order,
        response: &IdempotentResponse,
        live_since: Timestamp,
    ) -> Result<KeyedInsert, StoreError> {
        let mut tx = self.writer.begin().await?;
        // An expired key of the same name is replaced; a live one wins.
        let key = sqlx::query(
            "INSERT INTO idempotency_keys \
                 (scope, key, fingerprint, order_id, status, body, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (scope, key) DO UPDATE SET fingerprint = excluded.fingerprint, \
                 order_id = excluded.order_id, status = excluded.status, body = excluded.body, \
                 created_at = excluded.created_at \
             WHERE idempotency_keys.created_at < ?",
        )
        .bind(&response.scope)
        .bind(&response.key)
        .bind(&response.fingerprint)
        .bind(response.order_id.to_string())
        .bind(i64::from(response.status))
        .bind(&response.body)
        .bind(millis(response.created_at))
        .bind(millis(live_since))
        .execute(&mut *tx)
        .await?;
        if key.rows_affected() == 0 {
            return Ok(KeyedInsert::KeyTaken);
        }
        insert_orders(std::slice::from_ref(order))
            .build()
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.new_work.notify_one();
        Ok(KeyedInsert::Inserted)
    }

    async fn find_keyed(
        &self,
        scope: &str,
        key: &str,
        live_since: Timestamp,
    ) -> Result<Option<IdempotentResponse>, StoreError> {
        let row = sqlx::query(
            "SELECT fingerprint, order_id, status, body, created_at FROM idempotency_keys \
             WHERE scope = ? AND key = ? AND created_at >= ?",
        )
        .bind(scope)
        .bind(key)
        .bind(millis(live_since))
        .fetch_optional(&self.reader)
        .await?;
        row.map(|row| {
            let order_id: String = row.try_get("order_id")?;
            Ok(IdempotentResponse {
                scope: scope.to_owned(),
                key: key.to_owned(),
                fingerprint: row.try_get("fingerprint")?,
                order_id: OrderId::from_str(&order_id).map_err(corrupt)?,
                status: u16::try_from(row.try_get::<i64, _>("status")?).map_err(corrupt)?,
                body: row.try_get("body")?,
                created_at: from_millis(row.try_get("created_at")?),
            })
        })
        .transpose()
    }

    async fn prune_keys(&self, before: Timestamp) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < ?")
            .bind(millis(before))
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(order_from_row).transpose()
    }

    async fn status(&self, id: OrderId) -> Result<Option<OrderStatus>, StoreError> {
        let status: Option<String> = sqlx::query_scalar("SELECT status FROM orders WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?;
        status.map(|s| s.parse().map_err(corrupt)).transpose()
    }

    async fn metrics(&self) -> Result<OrderMetrics, StoreError> {
        // Triggers keep these totals in the transaction of every change, and one
        // statement is one snapshot: counts and sums agree with each other.
        let rows = sqlx::query("SELECT status, orders AS n, processing_ms FROM order_stats")
            .fetch_all(&self.reader)
            .await?;
        let totals = rows
            .iter()
            .map(|row| {
                Ok((
                    row.try_get("status")?,
                    row.try_get("n")?,
                    row.try_get("processing_ms")?,
                ))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
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
        let sql = format!(
            "UPDATE orders SET status = 'Processing', claim_token = ?, lease_expires_at = ?, \
                    attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM orders INDEXED BY orders_pending \
                          WHERE status = 'Pending' AND available_at <= ? \
                          ORDER BY available_at, id LIMIT ?) \
             RETURNING {ORDER_COLUMNS}"
        );
        let rows = sqlx::query(&sql)
            .bind(token.to_string())
            .bind(millis(lease_expires_at))
            .bind(millis(now))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.writer)
            .await?;
        let mut claims = orders_from_rows(&rows)?
            .into_iter()
            .map(|order| Claim {
                order,
                token,
                lease_expires_at,
            })
            .collect::<Vec<_>>();
        // RETURNING gives no order guarantee; hand work out oldest first.
        claims.sort_by_key(|claim| claim.order.id);
        Ok(claims)
    }

    async fn complete(&self, claim: &Claim, now: Timestamp) -> Result<ClaimOutcome, StoreError> {
        self.completions
            .submit((claim.order.id, claim.token, now))
            .await
    }

    async fn fail(
        &self,
        claim: &Claim,
        error: &str,
        after: AfterFailure,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        let (status, available_at, failed_at) = match after {
            AfterFailure::RetryAt(at) => ("Pending", at, None),
            AfterFailure::DeadLetter => ("Failed", now, Some(now)),
        };
        let done = sqlx::query(
            "UPDATE orders SET status = ?, available_at = ?, failed_at = ?, last_error = ?, \
                    claim_token = NULL, lease_expires_at = NULL \
             WHERE id = ? AND status = 'Processing' AND claim_token = ?",
        )
        .bind(status)
        .bind(millis(available_at))
        .bind(failed_at.map(millis))
        .bind(error)
        .bind(claim.order.id.to_string())
        .bind(claim.token.to_string())
        .execute(&self.writer)
        .await?;
        Ok(claim_outcome(done.rows_affected()))
    }

    async fn release(&self, claim: &Claim) -> Result<ClaimOutcome, StoreError> {
        let done = sqlx::query(
            "UPDATE orders SET status = 'Pending', claim_token = NULL, lease_expires_at = NULL \
             WHERE id = ? AND status = 'Processing' AND claim_token = ?",
        )
        .bind(claim.order.id.to_string())
        .bind(claim.token.to_string())
        .execute(&self.writer)
        .await?;
        self.new_work.notify_one();
        Ok(claim_outcome(done.rows_affected()))
    }

    async fn rescue_expired(
        &self,
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<Rescued, StoreError> {
        let statuses: Vec<String> = sqlx::query_scalar(
            "UPDATE orders INDEXED BY orders_processing_lease SET \
                 status = CASE WHEN attempts >= ?1 THEN 'Failed' ELSE 'Pending' END, \
                 failed_at = CASE WHEN attempts >= ?1 THEN ?2 END, \
                 available_at = ?2, last_error = ?3, claim_token = NULL, lease_expires_at = NULL \
             WHERE status = 'Processing' AND lease_expires_at < ?2 \
             RETURNING status",
        )
        .bind(i64::from(max_attempts))
        .bind(millis(now))
        .bind(LEASE_EXPIRED)
        .fetch_all(&self.writer)
        .await?;
        let rescued = rescued_from_statuses(&statuses);
        if rescued.requeued > 0 {
            self.new_work.notify_one();
        }
        Ok(rescued)
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<Order>, StoreError> {
        let mut sql: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("SELECT {ORDER_COLUMNS} FROM orders WHERE 1 = 1"));
        if let Some(status) = query.status {
            sql.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(user_id) = &query.user_id {
            sql.push(" AND user_id = ").push_bind(user_id.clone());
        }
        if let Some(before) = query.before {
            sql.push(" AND id < ").push_bind(before.to_string());
        }
        sql.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::try_from(query.limit).unwrap_or(i64::MAX));
        let rows = sql.build().fetch_all(&self.reader).await?;
        orders_from_rows(&rows)
    }

    async fn retry_failed(&self, id: OrderId, now: Timestamp) -> Result<RetryOutcome, StoreError> {
        let sql = format!(
            "UPDATE orders SET status = 'Pending', attempts = 0, failed_at = NULL, \
                    available_at = ? \
             WHERE id = ? AND status = 'Failed' RETURNING {ORDER_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(millis(now))
            .bind(id.to_string())
            .fetch_optional(&self.writer)
            .await?;
        match row {
            Some(row) => {
                self.new_work.notify_one();
                Ok(RetryOutcome::Retried(order_from_row(&row)?))
            }
            None => Ok(not_retried(self.status(id).await?)),
        }
    }
}
