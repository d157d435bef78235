//! Upgrading an existing SQLite file: migration 0005 rebuilds `orders` and
//! `order_stats` (clustered by primary key, new orders counted by the store rather
//! than by a trigger), 0006 rebuilds `orders` again (its status check, its indexes),
//! and both must keep every order and every running total.

use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;

use order_processor::domain::{ItemIds, Money, Order, OrderId, OrderStatus, UserId, now};
use order_processor::store::{Backend, ListQuery, Orders, SqliteStore};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

/// Applies the SQLite migrations up to and including `version`.
async fn migrate_to(url: &str, version: i64) {
    let mut migrator = Migrator::new(Path::new("migrations/sqlite")).await.unwrap();
    migrator.migrations = Cow::Owned(
        migrator
            .iter()
            .filter(|m| m.version <= version)
            .cloned()
            .collect(),
    );
    let options = SqliteConnectOptions::from_str(url)
        .unwrap()
        .create_if_missing(true);
    let pool = SqlitePoolOptions::new()
        .connect_with(options)
        .await
        .unwrap();
    migrator.run(&pool).await.unwrap();
    pool.close().await;
}

#[tokio::test]
async fn orders_and_totals_written_before_migration_5_survive_it() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("orders.db").display());
    migrate_to(&url, 4).await;

    // Written as the previous release wrote them, at schema 4, where a trigger counted
    // each insert.
    // Processing time is measured from the order's own created_at: an instant taken
    // before it would be a millisecond early whenever the clock ticks in between.
    let mut completed = sample(OrderStatus::Completed, "alice");
    completed.completed_at = Some(completed.created_at + chrono::Duration::milliseconds(1_500));
    completed.attempts = 1;
    let mut failed = sample(OrderStatus::Failed, "bob");
    failed.failed_at = Some(failed.created_at);
    failed.attempts = 3;
    failed.last_error = Some("card declined".into());
    let pending = sample(OrderStatus::Pending, "carol");
    let before = [pending, completed, failed];
    insert_with_sqlx(&url, &before).await;

    let store = SqliteStore::connect(&url, 1).await.unwrap();
    store.migrate().await.unwrap();
    store.ready().await.unwrap();
    for order in &before {
        assert_eq!(store.get(order.id).await.unwrap().as_ref(), Some(order));
    }
    let metrics = store.metrics().await.unwrap();
    assert_eq!(metrics.counts.get(OrderStatus::Pending), 1);
    assert_eq!(metrics.counts.get(OrderStatus::Completed), 1);
    assert_eq!(metrics.counts.get(OrderStatus::Failed), 1);
    assert_eq!(metrics.total_processing_ms, 1_500);
    // The indexes that listings by status read were filled from the rows already there.
    for order in &before {
        let listed = store
            .list(&ListQuery {
                status: Some(order.status),
                limit: 10,
                ..ListQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(
            listed.as_slice(),
            std::slice::from_ref(order),
            "{}",
            order.status
        );
    }

    // After the upgrade, new orders are still counted, once each.
    store
        .insert(&sample(OrderStatus::Pending, "dave"))
        .await
        .unwrap();
    let metrics = store.metrics().await.unwrap();
    assert_eq!(metrics.counts.get(OrderStatus::Pending), 2);
    assert_eq!(metrics.counts.total(), 4);
}

/// Inserts orders with plain SQL, as schema 4's writers did.
async fn insert_with_sqlx(url: &str, orders: &[Order]) {
    let pool = SqlitePoolOptions::new().connect(url).await.unwrap();
    for order in orders {
        let millis =
            |t: Option<order_processor::domain::Timestamp>| t.map(|t| t.timestamp_millis());
        sqlx::query(
            "INSERT INTO orders (id, user_id, item_ids, amount_cents, status, created_at, \
             completed_at, attempts, last_error, failed_at, available_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(order.id.to_string())
        .bind(order.user_id.as_str())
        .bind(serde_json::to_string(order.item_ids.as_slice()).unwrap())
        .bind(order.total_amount.cents())
        .bind(order.status.as_str())
        .bind(order.created_at.timestamp_millis())
        .bind(millis(order.completed_at))
        .bind(i64::from(order.attempts))
        .bind(order.last_error.as_deref())
        .bind(millis(order.failed_at))
        .bind(order.created_at.timestamp_millis())
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;
}

fn sample(status: OrderStatus, user: &str) -> Order {
    let created_at = now();
    Order {
        id: OrderId::new_at(created_at),
        user_id: UserId::parse(user.into()).unwrap(),
        item_ids: ItemIds::parse(vec!["a".into(), "b".into()]).unwrap(),
        total_amount: Money::from_cents(1_050).unwrap(),
        status,
        created_at,
        completed_at: None,
        attempts: 0,
        last_error: None,
        failed_at: None,
        next_attempt_at: (status == OrderStatus::Pending).then_some(created_at),
        cancelled_at: None,
        cancel_reason: None,
        result: None,
    }
}
