//! Connecting: the file's settings (WAL, fsync on commit), the writer and the
//! readers, migrations and readiness.

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use tokio::sync::{Notify, watch};

use super::readers::Readers;
use super::writer::Writer;
use super::{BUSY_TIMEOUT, MIGRATOR, SqliteStore, WRITER_CACHE_KIB, open};
use crate::store::decode::{STATUSES_WITH_TOTALS, check_status_totals, corrupt, schema_current};
use crate::store::{Backend, Store, StoreError};

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
        let new_events = Arc::new(watch::Sender::new(()));
        let writer = Writer::start(conn, new_work.clone(), new_events.clone())
            .map_err(|err| StoreError::Unavailable(Box::new(err)))?;
        Ok(Self {
            readers: Readers::open(path.clone(), read_connections as usize)?,
            path,
            writer,
            new_work,
            new_events,
        })
    }
}

#[async_trait]
impl Backend for SqliteStore {
    fn new_work(&self) -> Arc<Notify> {
        self.new_work.clone()
    }

    fn new_events(&self) -> watch::Receiver<()> {
        self.new_events.subscribe()
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
            Ok(()) => sqlx::query_scalar(STATUSES_WITH_TOTALS)
                .fetch_all(&pool)
                .await
                .map_err(StoreError::from),
            Err(err) => Err(err.into()),
        };
        pool.close().await;
        check_status_totals(&migrated?)
    }

    async fn for_background(self: Arc<Self>) -> Result<Arc<dyn Store>, StoreError> {
        Ok(self)
    }

    async fn ready(&self) -> Result<(), StoreError> {
        // Not ready if nothing can be written, however well reads go.
        if !self.writer.is_running() {
            return Err(StoreError::WriterStopped);
        }
        let applied = self.readers.read(|conn| {
            Ok(conn
                .prepare_cached("SELECT max(version) FROM _sqlx_migrations WHERE success = 1")?
                .query_row([], |row| row.get::<_, Option<i64>>(0))?)
        })?;
        schema_current(&MIGRATOR, applied)
    }
}
