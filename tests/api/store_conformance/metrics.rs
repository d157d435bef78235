//! The running totals behind `/metrics`, through every kind of change.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use order_processor::domain::OrderStatus;
use order_processor::store::Store;

use super::{LEASE, at, order};
use crate::helpers::{TestDb, count_rows, execute, on_every_backend};

on_every_backend!(
    every_status_has_its_running_totals_row_after_migration,
    a_status_without_its_totals_row_is_never_counted_into_nothing,
    metrics_count_statuses_and_sum_processing_time,
    metrics_follow_every_kind_of_change,
    concurrent_overviews_each_answer_at_their_own_time,
    an_overview_holds_every_order_committed_before_it_was_asked,
);

async fn metrics_count_statuses_and_sum_processing_time(db: TestDb) {
    let store = db.store().await;
    let empty = store.metrics().await.unwrap();
    assert_eq!(empty.counts.total(), 0);
    assert_eq!(empty.average_processing_seconds(), 0.0);
    let mut orders = Vec::new();
    for (n, processing_ms) in [(1, 1_000), (2, 2_000), (3, 4_500)] {
        let mut done = order(n, "u");
        done.status = OrderStatus::Completed;
        done.completed_at = Some(at(n + processing_ms));
        done.attempts = 1;
        orders.push(done);
    }
    orders.push(order(10, "u"));
    orders.push(order(11, "u"));
    orders.push(order(12, "u"));
    store.import(&orders).await.unwrap();
    store.claim(1, at(20), LEASE).await.unwrap();
    let metrics = store.metrics().await.unwrap();
    assert_eq!(metrics.counts.get(OrderStatus::Pending), 2);
    assert_eq!(metrics.counts.get(OrderStatus::Processing), 1);
    assert_eq!(metrics.counts.get(OrderStatus::Completed), 3);
    assert_eq!(metrics.total_processing_ms, 7_500);
    assert_eq!(metrics.average_processing_seconds(), 2.5);
}

async fn metrics_follow_every_kind_of_change(db: TestDb) {
    let store = db.store().await;
    for n in 0..6 {
        store.insert(&order(n, "u")).await.unwrap();
    }
    expect_metrics(store.as_ref(), 6, 0, 0, 0).await;
    let claims = store.claim(4, at(1_000), LEASE).await.unwrap();
    expect_metrics(store.as_ref(), 2, 4, 0, 0).await;
    store.complete(&claims[0], None, at(1_500)).await.unwrap();
    expect_metrics(store.as_ref(), 2, 3, 1, 1_500).await;
    store.complete(&claims[0], None, at(9_000)).await.unwrap();
    expect_metrics(store.as_ref(), 2, 3, 1, 1_500).await;
    store.release(&claims[1], at(0)).await.unwrap();
    expect_metrics(store.as_ref(), 3, 2, 1, 1_500).await;
    store.rescue_expired(at(1_000 + 30_001), 5).await.unwrap();
    expect_metrics(store.as_ref(), 5, 0, 1, 1_500).await;
    let again = store.claim(10, at(40_000), LEASE).await.unwrap();
    assert_eq!(again.len(), 5);
    for claim in &again {
        store.complete(claim, None, at(40_000)).await.unwrap();
    }
    // Orders 1..=5 were created at T0+1..T0+5 ms and completed at T0+40,000 ms.
    let total: i64 = 1_500
        + again
            .iter()
            .map(|c| 40_000 - (c.order.created_at - at(0)).num_milliseconds())
            .sum::<i64>();
    expect_metrics(store.as_ref(), 0, 0, 6, total).await;
}

/// Asserts (pending, processing, completed, total processing ms), and that the
/// overview's totals are the same.
async fn expect_metrics(store: &dyn Store, pending: u64, processing: u64, completed: u64, ms: i64) {
    let metrics = store.metrics().await.unwrap();
    assert_eq!(store.overview(at(0)).await.unwrap().metrics, metrics);
    let counts = metrics.counts;
    assert_eq!(
        (
            counts.get(OrderStatus::Pending),
            counts.get(OrderStatus::Processing),
            counts.get(OrderStatus::Completed),
            metrics.total_processing_ms
        ),
        (pending, processing, completed, ms)
    );
}

async fn every_status_has_its_running_totals_row_after_migration(db: TestDb) {
    db.store().await;
    for status in OrderStatus::ALL {
        let sql = format!("SELECT COUNT(*) FROM order_stats WHERE status = '{status}'");
        assert!(count_rows(&db.url, &sql).await >= 1, "{status} has its row");
    }
}

/// SQLite updates its totals in place, so a missing row refuses the start; PostgreSQL
/// upserts them and writes the row again. Neither runs without it.
async fn a_status_without_its_totals_row_is_never_counted_into_nothing(db: TestDb) {
    let store = db.store().await;
    let sql = "DELETE FROM order_stats WHERE status = 'Failed'";
    execute(&db.url, sql).await;
    let migrated = store.migrate().await;
    let rows = "SELECT COUNT(*) FROM order_stats WHERE status = 'Failed'";
    if db.url.starts_with("sqlite:") {
        let err = migrated.expect_err("a status without its row");
        assert!(err.to_string().contains("no row for Failed"), "{err}");
    } else {
        migrated.expect("the row is written again");
        assert_eq!(count_rows(&db.url, rows).await, 1);
    }
}

/// Many callers at once, each asking about its own time: however a backend groups
/// them, each gets the oldest order due at its time, and the same totals. (PostgreSQL
/// coalesces them: all are queued before its reading task runs, so they share
/// statements, read at the latest time asked; answering every caller with that read
/// as it is fails this test.)
async fn concurrent_overviews_each_answer_at_their_own_time(db: TestDb) {
    let store = db.store().await;
    store.insert(&order(200, "u")).await.unwrap();
    store.insert(&order(100, "u")).await.unwrap();
    let times = [250, 50, 150, 99, 100, 199, 0, 1_000, 100, 60];
    let asked = times.iter().map(|&t| store.overview(at(t)));
    let answers = futures::future::join_all(asked).await;
    for (t, answer) in times.iter().zip(answers) {
        let answer = answer.unwrap();
        let expected = (*t >= 100).then(|| at(100));
        assert_eq!(answer.oldest_due, expected, "asked at {t}");
        assert_eq!(answer.metrics.counts.get(OrderStatus::Pending), 2);
    }
}

/// An order committed before an overview was asked is in it, however many callers
/// ask at once: a backend that answers callers from one read starts that read after
/// the last of them asked. Each caller counts the inserts acknowledged before it asks,
/// its own among them, and its overview must count at least as many.
async fn an_overview_holds_every_order_committed_before_it_was_asked(db: TestDb) {
    let store = db.store().await;
    let acknowledged = Arc::new(AtomicU64::new(0));
    let callers = (1..=40).map(|n| {
        let (store, acknowledged) = (store.clone(), acknowledged.clone());
        async move {
            store
                .insert(&order(n * 10, &format!("u{n}")))
                .await
                .unwrap();
            acknowledged.fetch_add(1, Ordering::SeqCst);
            let seen = acknowledged.load(Ordering::SeqCst);
            let overview = store.overview(at(n * 10)).await.unwrap();
            let counted = overview.metrics.counts.get(OrderStatus::Pending);
            assert!(
                counted >= seen,
                "caller {n}: {counted} counted, {seen} acknowledged"
            );
            let oldest = overview.oldest_due.expect("my order is due");
            assert!(oldest <= at(n * 10), "caller {n}: {oldest:?}");
        }
    });
    futures::future::join_all(callers).await;
    let last = store.overview(at(0)).await.unwrap();
    assert_eq!(last.metrics.counts.get(OrderStatus::Pending), 40);
    assert_eq!(last.oldest_due, None, "nothing is due at 0");
}
