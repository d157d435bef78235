//! Connecting: the pool, the LISTEN connection that wakes workers, migrations and
//! readiness.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use super::batcher::Batcher;
use super::coalesce::Coalescer;
use super::keys::insert_keyed_batch;
use super::orders::{read_orders, read_overviews, read_statuses};
use super::queue::complete_batch;
use super::sql::insert_orders;
use super::{
    ACQUIRE_TIMEOUT, BACKGROUND_CONNECTIONS, CHANNEL, EVENTS_CHANNEL, MIGRATOR, PostgresStore,
};
use crate::domain::{Order, OrderStatus};
use crate::store::claims::Completion;
use crate::store::decode::{STATUSES_WITH_TOTALS, check_status_totals, schema_current};
use crate::store::group_commit::KeyedOrder;
use crate::store::{Backend, Store, StoreError};

impl PostgresStore {
    /// Connects a pool of up to `max_connections`, plus one listening connection.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?.application_name("order-processor");
        Self::connect_with(options, max_connections, None).await
    }

    /// Connects as [`connect`](Self::connect) does, with parsed options; given the
    /// wake-ups of another store of this process, it shares them and opens no
    /// listening connection of its own.
    async fn connect_with(
        options: PgConnectOptions,
        max_connections: u32,
        wakeups: Option<(Arc<Notify>, Arc<watch::Sender<()>>)>,
    ) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            // A listener holds one pooled connection for good; the rest serve queries.
            .max_connections(max_connections.max(1) + u32::from(wakeups.is_none()))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // No ping before each use: a dead connection fails its query, which is
            // handled like any outage, and a round trip per request is saved.
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        let (new_work, new_events, listener) = match wakeups {
            Some((new_work, new_events)) => (new_work, new_events, None),
            None => {
                let mut listener = PgListener::connect_with(&pool).await?;
                listener.listen_all([CHANNEL, EVENTS_CHANNEL]).await?;
                let new_work = Arc::new(Notify::new());
                let new_events = Arc::new(watch::Sender::new(()));
                let listener = tokio::spawn(forward_notifications(
                    listener,
                    new_work.clone(),
                    new_events.clone(),
                ));
                (new_work, new_events, Some(listener))
            }
        };
        let inserts = Batcher::spawn({
            let pool = pool.clone();
            move |orders: Arc<Vec<Order>>| {
                let pool = pool.clone();
                async move {
                    // Each caller learns whether its own row went in: a taken id fails
                    // that order alone, not the others committed with it.
                    let added: HashSet<Uuid> = insert_orders(&orders)
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
        let keyed_inserts = Batcher::spawn({
            let pool = pool.clone();
            move |batch: Arc<Vec<KeyedOrder>>| {
                let pool = pool.clone();
                async move { insert_keyed_batch(&pool, &batch).await }
            }
        });
        let completions = Batcher::spawn({
            let pool = pool.clone();
            move |batch: Arc<Vec<Completion>>| {
                let pool = pool.clone();
                async move { complete_batch(&pool, &batch).await }
            }
        });
        // Each kind of lookup by id holds at most a quarter of the pool (one connection
        // in a pool under eight), and the overviews of `/metrics` one connection, so
        // that reads under load leave writes and claims three of a pool of eight, and
        // more of a larger one.
        let reads_in_flight = (max_connections as usize / 4).clamp(1, 4);
        let orders = Coalescer::spawn(reads_in_flight, ACQUIRE_TIMEOUT, {
            let pool = pool.clone();
            move |ids| read_orders(pool.clone(), ids)
        });
        let statuses = Coalescer::spawn(reads_in_flight, ACQUIRE_TIMEOUT, {
            let pool = pool.clone();
            move |ids| read_statuses(pool.clone(), ids)
        });
        // One statement at a time: every caller's overview is the same read, so the
        // more callers each holds, the less each costs. Up to four in flight, as for
        // the lookups, took more of PostgreSQL's CPU per request in the two runs
        // measured (SCALING.md, section 5).
        let overviews = Coalescer::spawn(1, ACQUIRE_TIMEOUT, {
            let pool = pool.clone();
            move |nows| read_overviews(pool.clone(), nows)
        });
        Ok(Self {
            pool,
            new_work,
            new_events,
            listener,
            inserts,
            keyed_inserts,
            completions,
            orders,
            statuses,
            overviews,
        })
    }
}

/// Wakes a worker for every notification of new work, and the log's readers for every
/// one of new events. `PgListener` reconnects and re-subscribes by itself;
/// notifications sent while it was cut off are lost, so a reconnect wakes both, and
/// the polls of workers and readers cover anything else.
async fn forward_notifications(
    mut listener: PgListener,
    new_work: Arc<Notify>,
    new_events: Arc<watch::Sender<()>>,
) {
    let mut delay = Duration::from_millis(100);
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                delay = Duration::from_millis(100);
                if notification.channel() == EVENTS_CHANNEL {
                    new_events.send_replace(());
                } else {
                    new_work.notify_one();
                }
            }
            Ok(None) => {
                new_work.notify_one();
                new_events.send_replace(());
            }
            Err(err) => {
                tracing::warn!(error = %err, "LISTEN connection lost; reconnecting");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                // Whatever was notified while it was down is lost: look now.
                new_work.notify_one();
                new_events.send_replace(());
            }
        }
    }
}

#[async_trait]
impl Backend for PostgresStore {
    fn new_work(&self) -> Arc<Notify> {
        self.new_work.clone()
    }

    fn new_events(&self) -> watch::Receiver<()> {
        self.new_events.subscribe()
    }

    async fn for_background(self: Arc<Self>) -> Result<Arc<dyn Store>, StoreError> {
        let options = (*self.pool.connect_options()).clone();
        let wakeups = (self.new_work.clone(), self.new_events.clone());
        Ok(Arc::new(
            Self::connect_with(options, BACKGROUND_CONNECTIONS, Some(wakeups)).await?,
        ))
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        // The migrator takes an advisory lock, so instances starting together are safe.
        MIGRATOR.run(&self.pool).await?;
        // A zero row for every status, so none is missing (the triggers upsert per shard
        // anyway). In status order, the order the triggers lock rows in, so this cannot
        // deadlock with instances already writing.
        let mut statuses = OrderStatus::ALL.map(OrderStatus::as_str);
        statuses.sort_unstable();
        sqlx::query(
            "INSERT INTO order_stats (status, shard, orders, processing_ms) \
             SELECT status, 0, 0, 0 FROM unnest($1::text[]) AS s (status) ORDER BY status \
             ON CONFLICT (status, shard) DO NOTHING",
        )
        .bind(&statuses[..])
        .execute(&self.pool)
        .await?;
        let present: Vec<String> = sqlx::query_scalar(STATUSES_WITH_TOTALS)
            .fetch_all(&self.pool)
            .await?;
        check_status_totals(&present)
    }

    async fn ready(&self) -> Result<(), StoreError> {
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success = true")
                .fetch_one(&self.pool)
                .await?;
        schema_current(&MIGRATOR, applied)
    }
}
