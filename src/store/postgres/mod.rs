//! The PostgreSQL backend, for many instances on one database: claims with
//! `FOR UPDATE SKIP LOCKED`, cross-instance wake-ups with LISTEN/NOTIFY.
//!
//! One file per concern, as in every backend: `connect` (pool, listener, migrations,
//! readiness), `orders`, `queue`, `keys`, `events`, and `sql` (columns, row decoding
//! and the clause that logs events);
//! `batcher` is this backend's group commit, and `coalesce` its coalesced reads.

mod batcher;
mod coalesce;
mod connect;
mod consumers;
mod deliveries;
mod events;
mod keys;
mod orders;
mod queue;
mod sql;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgPool;
use sqlx::{Postgres, Transaction};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::claims::Completion;
use super::group_commit::{KeyedOrder, KeyedOutcome};
use super::{ClaimOutcome, Overview, StoreError};
use crate::domain::{Order, OrderId, OrderStatus, Timestamp};
use batcher::Batcher;
use coalesce::Coalescer;

/// The channel the migration's triggers notify when work appears.
const CHANNEL: &str = "order_processor_new_work";
/// The channel the event log's trigger notifies when events commit.
const EVENTS_CHANNEL: &str = "order_processor_events";
/// Most events one statement may write: an event's position is its transaction's id
/// shifted left 12 bits plus its place in the statement (migration 0005). Every batch
/// this backend writes is bounded below it.
const MAX_EVENTS_PER_STATEMENT: usize = 4_095;

const _: () = assert!(
    batcher::MAX_BATCH <= MAX_EVENTS_PER_STATEMENT
        && orders::IMPORT_CHUNK <= MAX_EVENTS_PER_STATEMENT
        && queue::RESCUE_BATCH as usize <= MAX_EVENTS_PER_STATEMENT
);

/// The background thread's pool (the log's consumers and retention; it shares the
/// API's listening connection): the fanout, the claimers, the recorder and the relay
/// each hold one connection at a time; retention, now and then, waits for one of them.
const BACKGROUND_CONNECTIONS: u32 = 4;

/// How long a request waits for a pooled connection before answering 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// This backend's migrations, embedded in the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Begins a transaction on a task of its own. sqlx 0.8 cannot be cancelled inside
/// `begin`: a caller dropped there (its client hung up) leaves the connection inside a
/// transaction sqlx does not know of, and the pool hands it on; the next users'
/// statements then fail, or are answered and never committed. On a task of its own
/// `BEGIN` always finishes, and a transaction nobody waits for any more is rolled back
/// when dropped, like any other.
async fn begin(pool: &PgPool) -> Result<Transaction<'static, Postgres>, StoreError> {
    let pool = pool.clone();
    match tokio::spawn(async move { pool.begin().await }).await {
        Ok(begun) => Ok(begun?),
        Err(failed) => Err(StoreError::Database(Box::new(failed))),
    }
}

/// Orders in a PostgreSQL database shared by any number of instances.
pub struct PostgresStore {
    pool: PgPool,
    new_work: Arc<Notify>,
    new_events: Arc<watch::Sender<()>>,
    /// New orders, group-committed: one statement and one commit per batch.
    inserts: Batcher<Order, bool>,
    /// New orders with idempotency keys, group-committed the same way.
    keyed_inserts: Batcher<KeyedOrder, KeyedOutcome>,
    /// Completions, group-committed the same way.
    completions: Batcher<Completion, ClaimOutcome>,
    /// Reads of an order and of its status by id, coalesced: one statement for many.
    orders: Coalescer<OrderId, Order>,
    statuses: Coalescer<OrderId, OrderStatus>,
    /// What `GET /metrics` reads, coalesced the same way: one statement for every
    /// caller that asked while the one before it ran.
    overviews: Coalescer<Timestamp, Overview>,
    /// Forwards NOTIFYs from every instance into `new_work` and `new_events`; stopped
    /// on drop. None in the background thread's store, which shares the API's.
    listener: Option<JoinHandle<()>>,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        if let Some(listener) = &self.listener {
            listener.abort();
        }
    }
}
