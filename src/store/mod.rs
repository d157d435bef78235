//! Persistence: the traits every backend implements (in `traits/`, a file per concern:
//! the backend itself, orders, the queue, idempotency keys, the event log and its
//! consumers, webhook endpoints and deliveries), and the types they speak. All SQL lives
//! below this module, one folder per backend with the same files in each.

mod claims;
mod decode;
mod deliveries;
mod error;
mod group_commit;
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
    KeyedInsert, ListQuery, NextStep, OrderMetrics, Owed, OwedPage, Pruned, Rescued, RetryOutcome,
};

/// Opens the store a database URL names: `sqlite://PATH` or `postgres://...`.
/// `max_connections` sizes the connection pool (for SQLite, the reader pool).
pub async fn connect(url: &str, max_connections: u32) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url, max_connections).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(
            PostgresStore::connect(url, max_connections).await?,
        ))
    } else {
        // Only the scheme: the rest of a URL may hold a password.
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        Err(StoreError::UnsupportedUrl(format!("{scheme}:")))
    }
}

/// Like [`connect`], but waits out a database that is not reachable yet (starting up,
/// restarting), retrying with capped exponential backoff and saying so in the log.
/// Errors that retrying cannot fix (a bad URL) are returned at once.
pub async fn connect_with_retry(
    url: &str,
    max_connections: u32,
) -> Result<Arc<dyn Store>, StoreError> {
    let mut delay = Duration::from_millis(250);
    loop {
        match connect(url, max_connections).await {
            Err(err) if err.is_unavailable() => {
                tracing::warn!(
                    error = %std::error::Error::source(&err).map_or(err.to_string(), ToString::to_string),
                    retry_in_ms = delay.as_millis() as u64,
                    "database unreachable; retrying"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
