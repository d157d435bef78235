//! Persistence: the traits every backend implements (in `traits/`, a file per concern:
//! the backend itself, orders, the queue, idempotency keys, the event log and its
//! consumers, webhook endpoints and deliveries), and the types they speak. All SQL lives
//! below this module, one folder per backend with the same files in each.

mod claims;
mod decode;
mod deliveries;
mod error;
mod group_commit;
mod literal;
mod postgres;
mod sqlite;
mod traits;
mod types;

use std::sync::Arc;
use std::time::Duration;

pub use error::{BoxError, SharedFailure, StoreError};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use traits::{Backend, Consumers, Deliveries, Events, Keys, Orders, Queue, Store, Webhooks};
pub use types::{
    ActivityCount, CancelOutcome, Claim, ClaimOutcome, DeliveryClaim, DeliveryGauges,
    DeliveryQuery, DeliveryRooms, Extended, FailedFilter, FinishedAttempt, IdempotentResponse,
    KeyedInsert, ListQuery, NextStep, OrderMetrics, Overview, Owed, OwedPage, Pruned, Rescued,
    RetryOutcome,
};

/// The database a URL names, by its scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// `sqlite:`
    Sqlite,
    /// `postgres:` or `postgresql:`
    Postgres,
}

impl Engine {
    pub fn of(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Self::Postgres)
        } else {
            // Only the scheme: the rest of a URL may hold a password.
            let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
            Err(StoreError::UnsupportedUrl(format!("{scheme}:")))
        }
    }
}

/// The waits between tries to reach a database that does not answer yet: 250 ms,
/// doubling up to 10 s, so a restart is noticed soon and an outage is not hammered.
#[derive(Debug)]
pub struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Self(Duration::from_millis(250))
    }
}

impl Backoff {
    /// The wait before the next try; the one after it is twice as long, up to the cap.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.0;
        self.0 = (wait * 2).min(Duration::from_secs(10));
        wait
    }
}

/// Opens the store a database URL names: `sqlite://PATH` or `postgres://...`.
/// `max_connections` sizes the connection pool (for SQLite, the reader pool).
pub async fn connect(url: &str, max_connections: u32) -> Result<Arc<dyn Store>, StoreError> {
    match Engine::of(url)? {
        Engine::Sqlite => Ok(Arc::new(SqliteStore::connect(url, max_connections).await?)),
        Engine::Postgres => Ok(Arc::new(
            PostgresStore::connect(url, max_connections).await?,
        )),
    }
}

/// Like [`connect`], but waits out a database that is not reachable yet (starting up,
/// restarting), retrying with capped exponential backoff and saying so in the log.
/// Errors that retrying cannot fix (a bad URL) are returned at once.
pub async fn connect_with_retry(
    url: &str,
    max_connections: u32,
) -> Result<Arc<dyn Store>, StoreError> {
    let mut backoff = Backoff::default();
    loop {
        match connect(url, max_connections).await {
            Err(err) if err.is_unavailable() => {
                let wait = backoff.next_wait();
                tracing::warn!(
                    error = %std::error::Error::source(&err).map_or(err.to_string(), ToString::to_string),
                    retry_in_ms = wait.as_millis() as u64,
                    "database unreachable; retrying"
                );
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_quarter_second_up_to_ten_seconds() {
        let mut backoff = Backoff::default();
        let waits: Vec<u64> = (0..9)
            .map(|_| backoff.next_wait().as_millis() as u64)
            .collect();
        assert_eq!(
            waits,
            [250, 500, 1_000, 2_000, 4_000, 8_000, 10_000, 10_000, 10_000]
        );
    }

    #[test]
    fn the_engine_is_read_from_the_scheme() {
        assert_eq!(Engine::of("sqlite://orders.db").ok(), Some(Engine::Sqlite));
        assert_eq!(
            Engine::of("postgres://db/orders").ok(),
            Some(Engine::Postgres)
        );
        assert_eq!(
            Engine::of("postgresql://db/orders").ok(),
            Some(Engine::Postgres)
        );
        assert!(matches!(
            Engine::of("mysql://root:secret@db/orders"),
            Err(StoreError::UnsupportedUrl(scheme)) if scheme == "mysql:"
        ));
    }

    #[test]
    fn urls_of_other_databases_are_refused_without_echoing_credentials() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let Err(err) = runtime.block_on(connect("mysql://root:secret@db/orders", 1)) else {
            panic!("mysql is not supported");
        };
        let message = err.to_string();
        assert!(
            message.contains("DATABASE_URL") && message.contains("mysql:"),
            "{message}"
        );
        assert!(!message.contains("secret"));
    }

    #[test]
    fn an_in_memory_sqlite_database_is_refused() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let Err(err) = runtime.block_on(connect("sqlite::memory:", 1)) else {
            panic!("an in-memory database would lose acknowledged orders");
        };
        assert!(err.to_string().contains("in-memory"), "{err}");
    }
}
