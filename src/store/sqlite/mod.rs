//! The embedded SQLite backend: WAL mode, fsync on every commit, one writer
//! connection on a thread of its own (group-committing new orders and completions),
//! and read-only connections used in place.
//!
//! It speaks to SQLite through rusqlite rather than sqlx: prepared statements are
//! reused, a group of writes is one transaction of single-row statements, and a read
//! is a direct call. sqlx still applies the migrations, so both backends keep one
//! migration history format.
//!
//! One file per concern, as in every backend: `connect` (settings, migrations,
//! readiness), `orders`, `queue`, `keys`, `events`, and `sql` (statements and row
//! decoding);
//! `writer` (the one writing connection's thread, with its group commit) and `readers`
//! are this backend's own.

mod connect;
mod consumers;
mod deliveries;
mod events;
mod keys;
mod orders;
mod queue;
mod readers;
mod sql;
mod webhooks;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{Notify, watch};

use super::StoreError;
use readers::Readers;
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
    new_events: Arc<watch::Sender<()>>,
}

/// Opens a connection with the settings every connection of this backend shares.
fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use rusqlite::params_from_iter;

    use super::sql::list_statement;
    use super::*;
    use crate::domain::{OrderId, OrderStatus};
    use crate::store::{Backend, ListQuery};

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
