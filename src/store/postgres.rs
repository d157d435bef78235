//! The PostgreSQL backend, for many instances on one database: claims with
//! `FOR UPDATE SKIP LOCKED`, cross-instance wake-ups with LISTEN/NOTIFY.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, QueryBuilder, Row};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::batch::Batcher;
use super::rows::{
    Completion, LEASE_EXPIRED, StoredOrder, claim_outcome, completion_outcomes, corrupt,
    failure_fields, lease_end, metrics_from_totals, not_retried, rescued_from_statuses,
    schema_current,
};
use super::{
    Claim, ClaimOutcome, IdempotentResponse, KeyedInsert, ListQuery, OrderMetrics, Rescued,
    RetryOutcome, Store, StoreError,
};
use crate::domain::{AfterFailure, Order, OrderId, OrderStatus, Timestamp};

/// The channel the migration's triggers notify when work appears.
const CHANNEL: &str = "order_processor_new_work";
/// How long a request waits for a pooled connection before answering 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// This backend's migrations, embedded in the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

const ORDER_COLUMNS: &str = "id, user_id, item_ids, amount_cents, status, created_at, \
     completed_at, attempts, last_error, failed_at";

/// Orders in a PostgreSQL database shared by any number of instances.
pub struct PostgresStore {
    pool: PgPool,
    new_work: Arc<Notify>,
    /// New orders, group-committed: one statement and one commit per batch.
    inserts: Batcher<Order, bool>,
    /// Completions, group-committed the same way.
    completions: Batcher<Completion, ClaimOutcome>,
    /// Forwards NOTIFYs from every instance into `new_work`; stopped on drop.
    listener: JoinHandle<()>,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl PostgresStore {
    /// Connects a pool of up to `max_connections`, plus one listening connection.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?.application_name("order-processor");
        let pool = PgPoolOptions::new()
            // The listener holds one pooled connection for good; the rest serve queries.
            .max_connections(max_connections.max(1) + 1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // No ping before each use: a dead connection fails its query, which is
            // handled like any outage, and a round trip per request is saved.
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(CHANNEL).await?;
        let new_work = Arc::new(Notify::new());
        let listener = tokio::spawn(forward_notifications(listener, new_work.clone()));
        let inserts = Batcher::spawn({
            let pool = pool.clone();
            move |orders: Arc<Vec<Order>>| {
                let pool = pool.clone();
                async move {
                    // Each caller learns whether its own row went in: a taken id fails
                    // that order alone, not the others committed with it.
                    let mut insert = insert_orders(&orders);
                    insert.push(" RETURNING id");
                    let added: HashSet<Uuid> = insert
                        .build_query_scalar()
                        .fetch_all(&pool)
                        .await?
                        .into_iter()
                        .collect();
                    Ok(orders
                        .iter()
                        .map(|order| added.contains(order.id.as_uuid()))
                        .collect())
                }
            }
        });
        let completions = Batcher::spawn({
            let pool = pool.clone();
            move |batch: Arc<Vec<Completion>>| {
                let pool = pool.clone();
                async move { complete_batch(&pool, &batch).await }
            }
        });
        Ok(Self {
            pool,
            new_work,
            listener,
            inserts,
            completions,
        })
    }
}

/// Wakes a worker for every notification. `PgListener` reconnects and re-subscribes
/// by itself; notifications sent while it was cut off are lost, so a reconnect wakes
/// a worker too, and the workers' poll covers anything else.
async fn forward_notifications(mut listener: PgListener, new_work: Arc<Notify>) {
    let mut delay = Duration::from_millis(100);
    loop {
        match listener.try_recv().await {
            Ok(Some(_)) => {
                delay = Duration::from_millis(100);
                new_work.notify_one();
            }
            Ok(None) => new_work.notify_one(),
            Err(err) => {
                tracing::warn!(error = %err, "LISTEN connection lost; reconnecting");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Reads a row of `ORDER_COLUMNS`.
fn order_from_row(row: &PgRow) -> Result<Order, StoreError> {
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

fn orders_from_rows(rows: &[PgRow]) -> Result<Vec<Order>, StoreError> {
    rows.iter().map(order_from_row).collect()
}

/// Completes a batch of claims in one guarded statement; only rows whose claim is
/// still current change, and `RETURNING` says which.
///
/// The batch goes in as three arrays, so every batch size is one statement text (one
/// prepared statement and plan per connection, where a `VALUES` list was a new one per
/// size), and each row is found by its primary key whatever else is `Processing`.
async fn complete_batch(
    pool: &PgPool,
    batch: &[Completion],
) -> Result<Vec<ClaimOutcome>, StoreError> {
    let ids: Vec<Uuid> = batch.iter().map(|(id, _, _)| *id.as_uuid()).collect();
    let tokens: Vec<Uuid> = batch.iter().map(|(_, token, _)| *token).collect();
    let times: Vec<Timestamp> = batch.iter().map(|(_, _, at)| *at).collect();
    let applied: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE orders SET status = 'Completed', completed_at = v.completed_at, \
                claim_token = NULL, lease_expires_at = NULL \
         FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[]) AS v (id, token, completed_at) \
         WHERE orders.id = v.id AND orders.claim_token = v.token \
         AND orders.status = 'Processing' RETURNING orders.id",
    )
    .bind(ids)
    .bind(tokens)
    .bind(times)
    .fetch_all(pool)
    .await?;
    let applied = applied.into_iter().map(OrderId::from_uuid).collect();
    Ok(completion_outcomes(batch, &applied))
}

/// `INSERT` of whole orders (any status), skipping ids already stored.
fn insert_orders(orders: &[Order]) -> QueryBuilder<'_, Postgres> {
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

#[async_trait]
impl Store for PostgresStore {
    fn new_work(&self) -> Arc<Notify> {
        self.new_work.clone()
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        // The migrator takes an advisory lock, so instances starting together are safe.
        MIGRATOR.run(&self.pool).await?;
        let present: Vec<String> = sqlx::query_scalar(super::STATUSES_WITH_TOTALS)
            .fetch_all(&self.pool)
            .await?;
        super::check_status_totals(&present)
    }

    async fn ready(&self) -> Result<(), StoreError> {
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success = true")
                .fetch_one(&self.pool)
                .await?;
        schema_current(&MIGRATOR, applied)
    }

    async fn insert(&self, order: &Order) -> Result<(), StoreError> {
        if !self.inserts.submit(order.clone()).await? {
            return Err(corrupt("an order id was already taken"));
        }
        // Wake a local worker without waiting for the NOTIFY round trip.
        self.new_work.notify_one();
        Ok(())
    }

    async fn import(&self, orders: &[Order]) -> Result<u64, StoreError> {
        if orders.is_empty() {
            return Ok(0);
        }
        let done = insert_orders(orders).build().execute(&self.pool).await?;
        Ok(done.rows_affected())
    }

    async fn insert_keyed(
        &self,
        order: &Order,
        response: &IdempotentResponse,
        live_since: Timestamp,
    ) -> Result<KeyedInsert, StoreError> {
        let mut tx = self.pool.begin().await?;
        // An expired key of the same name is replaced; a live one wins. A concurrent
        // insert of the same key waits here for the other transaction, then sees it.
        let key = sqlx::query(
            "INSERT INTO idempotency_keys \
                 (scope, key, fingerprint, order_id, status, body, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (scope, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, \
                 order_id = EXCLUDED.order_id, status = EXCLUDED.status, body = EXCLUDED.body, \
                 created_at = EXCLUDED.created_at \
             WHERE idempotency_keys.created_at < $8",
        )
        .bind(&response.scope)
        .bind(&response.key)
        .bind(&response.fingerprint)
        .bind(response.order_id.as_uuid())
        .bind(i16::try_from(response.status).unwrap_or(i16::MAX))
        .bind(&response.body)
        .bind(response.created_at)
        .bind(live_since)
        .execute(&mut *tx)
        .await?;
        if key.rows_affected() == 0 {
            return Ok(KeyedInsert::KeyTaken);
        }
        let added = insert_orders(std::slice::from_ref(order))
            .build()
            .execute(&mut *tx)
            .await?;
        if added.rows_affected() != 1 {
            // Dropping the transaction rolls the key back with it.
            return Err(corrupt("an order id was already taken"));
        }
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
             WHERE scope = $1 AND key = $2 AND created_at >= $3",
        )
        .bind(scope)
        .bind(key)
        .bind(live_since)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(IdempotentResponse {
                scope: scope.to_owned(),
                key: key.to_owned(),
                fingerprint: row.try_get("fingerprint")?,
                order_id: OrderId::from_uuid(row.try_get("order_id")?),
                status: u16::try_from(row.try_get::<i16, _>("status")?).map_err(corrupt)?,
                body: row.try_get("body")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .transpose()
    }

    async fn prune_keys(&self, before: Timestamp) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(order_from_row).transpose()
    }

    async fn status(&self, id: OrderId) -> Result<Option<OrderStatus>, StoreError> {
        let status: Option<String> = sqlx::query_scalar("SELECT status FROM orders WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await?;
        status.map(|s| s.parse().map_err(corrupt)).transpose()
    }

    async fn metrics(&self) -> Result<OrderMetrics, StoreError> {
        // Triggers keep per-shard totals in the transaction of every change; summing
        // the shards in one statement is one snapshot, whatever other instances write.
        let rows = sqlx::query(
            "SELECT status, sum(orders)::bigint AS n, sum(processing_ms)::bigint AS processing_ms \
             FROM order_stats GROUP BY status",
        )
        .fetch_all(&self.pool)
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
        // SKIP LOCKED: concurrent claimers in any instance pass over each other's rows
        // instead of waiting on them, and never take the same order. The picked ids go
        // to the update as an array, so each row is found by its primary key: joined
        // to a CTE instead, the planner hashed the whole table for every claim.
        let sql = format!(
            "UPDATE orders o SET status = 'Processing', claim_token = $1, \
                    lease_expires_at = $2, attempts = o.attempts + 1 \
             WHERE o.status = 'Pending' AND o.id = ANY(ARRAY( \
                 SELECT id FROM orders WHERE status = 'Pending' AND available_at <= $3 \
                 ORDER BY available_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)) \
             RETURNING {ORDER_COLUMNS}"
        );
        let rows = sqlx::query(&sql)
            .bind(token)
            .bind(lease_expires_at)
            .bind(now)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        let mut claims = orders_from_rows(&rows)?
            .into_iter()
            .map(|order| Claim {
                order,
                token,
                lease_expires_at,
            })
            .collect::<Vec<_>>();
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
        let (status, available_at, failed_at) = failure_fields(after, now);
        let done = sqlx::query(
            "UPDATE orders SET status = $1, available_at = $2, failed_at = $3, last_error = $4, \
                    claim_token = NULL, lease_expires_at = NULL \
             WHERE id = $5 AND status = 'Processing' AND claim_token = $6",
        )
        .bind(status)
        .bind(available_at)
        .bind(failed_at)
        .bind(error)
        .bind(claim.order.id.as_uuid())
        .bind(claim.token)
        .execute(&self.pool)
        .await?;
        Ok(claim_outcome(done.rows_affected()))
    }

    async fn release(&self, claim: &Claim) -> Result<ClaimOutcome, StoreError> {
        let done = sqlx::query(
            "UPDATE orders SET status = 'Pending', claim_token = NULL, lease_expires_at = NULL \
             WHERE id = $1 AND status = 'Processing' AND claim_token = $2",
        )
        .bind(claim.order.id.as_uuid())
        .bind(claim.token)
        .execute(&self.pool)
        .await?;
        Ok(claim_outcome(done.rows_affected()))
    }

    async fn rescue_expired(
        &self,
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<Rescued, StoreError> {
        let statuses: Vec<String> = sqlx::query_scalar(
            "UPDATE orders SET \
                 status = CASE WHEN attempts >= $1 THEN 'Failed' ELSE 'Pending' END, \
                 failed_at = CASE WHEN attempts >= $1 THEN $2 END, \
                 available_at = $2, last_error = $3, claim_token = NULL, lease_expires_at = NULL \
             WHERE status = 'Processing' AND lease_expires_at < $2 \
             RETURNING status",
        )
        .bind(i32::try_from(max_attempts).unwrap_or(i32::MAX))
        .bind(now)
        .bind(LEASE_EXPIRED)
        .fetch_all(&self.pool)
        .await?;
        Ok(rescued_from_statuses(&statuses))
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<Order>, StoreError> {
        let mut sql: QueryBuilder<Postgres> =
            QueryBuilder::new(format!("SELECT {ORDER_COLUMNS} FROM orders WHERE true"));
        if let Some(status) = query.status {
            sql.push(" AND status = ").push_bind(status.as_str());
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

    async fn retry_failed(&self, id: OrderId, now: Timestamp) -> Result<RetryOutcome, StoreError> {
        let sql = format!(
            "UPDATE orders SET status = 'Pending', attempts = 0, failed_at = NULL, \
                    available_at = $1 \
             WHERE id = $2 AND status = 'Failed' RETURNING {ORDER_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(now)
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
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
