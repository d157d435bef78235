//! The app for tests: the macro that runs a test once per backend
//! (`on_every_backend!`), the app spawned in-process on `127.0.0.1:0` with test
//! options (`app`), processors tests steer (`processors`), and small helpers (a sample
//! order, polling, the metrics checked against the table).

mod app;
mod processors;

use std::time::Duration;

use order_processor::store::Store;
use serde_json::Value;

pub use self::app::{Options, TestApp, spawn_app, spawn_app_with};
pub use self::processors::{Gate, Switch};
pub use crate::test_db::{TestDb, count_rows, execute};

/// Runs each named test, `async fn(TestDb)`, once per backend: in `mod sqlite` and
/// in `mod postgres` (which skips when PostgreSQL is not configured).
macro_rules! on_every_backend {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::helpers::TestDb::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    if let Some(db) = $crate::helpers::TestDb::postgres().await {
                        super::$case(db).await;
                    }
                }
            )*
        }
    };
}
pub(crate) use on_every_backend;

/// Keeps the tests that bound how fast something happens (an answer within 100 ms, a
/// pace, a backoff's gaps) from running beside the tests that flood the disk with
/// commits: the floods' fsyncs would be the timed tests' latency. Timed tests take it
/// to read (they may run together), floods to write (alone).
pub static DISK_QUIET: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// A sample valid order body.
pub fn order_body() -> Value {
    serde_json::json!({"user_id": "user1", "item_ids": ["item1", "item2"], "total_amount": 100.5})
}

/// Polls `check` until it is true, failing the test after `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts that the running totals behind `/metrics` agree with the orders table
/// itself, read status by status.
pub async fn assert_metrics_match_the_table(store: &dyn Store) {
    use order_processor::domain::OrderStatus;
    use order_processor::store::ListQuery;
    let counts = store.metrics().await.expect("metrics").counts;
    for status in OrderStatus::ALL {
        let listed = store
            .list(&ListQuery {
                status: Some(status),
                limit: 1_000_000,
                ..ListQuery::default()
            })
            .await
            .expect("list")
            .len() as u64;
        assert_eq!(
            counts.get(status),
            listed,
            "{status} in metrics and in the table"
        );
    }
}
