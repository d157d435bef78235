//! `GET /metrics`: the reference's shape, every status present, counts and the mean
//! processing time from known data.

use std::sync::Arc;
use std::time::Duration;

use order_processor::domain::{ItemIds, Money, Order, OrderId, OrderStatus, UserId, from_millis};
use serde_json::json;

use crate::helpers::{
    Gate, Options, TestDb, eventually, on_every_backend, spawn_app, spawn_app_with,
};

on_every_backend!(
    metrics_of_an_empty_service_are_zero_with_every_status,
    metrics_match_known_data,
    average_processing_time_keeps_millisecond_precision,
    activity_counts_the_events_of_each_minute,
);

async fn metrics_of_an_empty_service_are_zero_with_every_status(db: TestDb) {
    let app = spawn_app(db).await;
    let metrics = app.metrics().await;
    assert_eq!(
        metrics,
        json!({
            "total_orders": 0,
            "average_processing_time": 0.0,
            "order_counts": {"Pending": 0, "Processing": 0, "Completed": 0, "Failed": 0,
                             "Cancelled": 0},
            "oldest_pending_age_seconds": null
        })
    );
    assert!(metrics["total_orders"].is_u64());
    assert!(metrics["average_processing_time"].is_number());
}

async fn metrics_match_known_data(db: TestDb) {
    let gate = Arc::new(Gate::default());
    let app = spawn_app_with(
        db,
        Options {
            processor: Some(gate.clone()),
            concurrency: 1,
            ..Options::default()
        },
    )
    .await;
    let completed = [1_000, 2_500, 4_001];
    let mut orders: Vec<Order> = completed
        .iter()
        .zip(0..)
        .map(|(ms, minute)| known_order(minute, OrderStatus::Completed, Some(*ms)))
        .collect();
    orders.push(known_order(10, OrderStatus::Pending, None));
    orders.push(known_order(11, OrderStatus::Pending, None));
    app.store.import(&orders).await.unwrap();

    // With one worker held at the gate, one order is Processing and one Pending.
    eventually(Duration::from_secs(5), "one order processing", || async {
        app.metrics().await["order_counts"]["Processing"] == 1
    })
    .await;
    let metrics = app.metrics().await;
    assert_eq!(metrics["total_orders"], 5);
    assert_eq!(
        metrics["order_counts"],
        json!({"Pending": 1, "Processing": 1, "Completed": 3, "Failed": 0, "Cancelled": 0})
    );
    // (1.000 + 2.500 + 4.001) / 3 = 2.500333... -> 2.5 s, millisecond precision.
    assert_eq!(metrics["average_processing_time"], json!(2.5));
    // The order of minute 11 has waited since it was created (the one of minute 10,
    // due longer, is the one being processed).
    let waited = (chrono::Utc::now() - known_order(11, OrderStatus::Pending, None).created_at)
        .num_milliseconds() as f64
        / 1000.0;
    let age = metrics["oldest_pending_age_seconds"].as_f64().unwrap();
    assert!(
        (waited - 5.0..=waited).contains(&age),
        "{age} against {waited}"
    );
    let prometheus = app.get("/metrics/prometheus").await.text().await.unwrap();
    let gauge: f64 = prometheus
        .lines()
        .find_map(|line| line.strip_prefix("orders_oldest_pending_age_seconds "))
        .expect("the gauge is exported")
        .parse()
        .unwrap();
    assert!((age..=age + 5.0).contains(&gauge), "{gauge} against {age}");
    gate.open();
}

async fn average_processing_time_keeps_millisecond_precision(db: TestDb) {
    let app = spawn_app_with(
        db,
        Options {
            concurrency: 1,
            ..Options::default()
        },
    )
    .await;
    let orders = [
        known_order(0, OrderStatus::Completed, Some(1_234)),
        known_order(1, OrderStatus::Completed, Some(2_000)),
    ];
    app.store.import(&orders).await.unwrap();
    assert_eq!(app.metrics().await["average_processing_time"], json!(1.617));
}

/// An order with known times, stored directly, so the expected figures are exact.
fn known_order(minute: i64, status: OrderStatus, processing_ms: Option<i64>) -> Order {
    let created = 1_768_471_200_000 + minute * 60_000;
    Order {
        id: OrderId::new_at(from_millis(created)),
        user_id: UserId::parse("known".into()).unwrap(),
        item_ids: ItemIds::parse(vec!["i".into()]).unwrap(),
        total_amount: Money::from_cents(100).unwrap(),
        status,
        created_at: from_millis(created),
        completed_at: processing_ms.map(|ms| from_millis(created + ms)),
        attempts: u32::from(processing_ms.is_some()),
        last_error: None,
        failed_at: None,
        next_attempt_at: (status == OrderStatus::Pending).then_some(from_millis(created)),
        cancelled_at: None,
        cancel_reason: None,
        result: None,
    }
}

async fn activity_counts_the_events_of_each_minute(db: TestDb) {
    let app = spawn_app(db).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(app.new_order().await);
    }
    app.wait_until_completed(&ids, Duration::from_secs(10))
        .await;
    let activity = app.get_json("/metrics/activity?minutes=5").await;
    let minutes = activity["minutes"].as_array().unwrap();
    assert_eq!(minutes.len(), 5);
    // A minute apart, oldest first, the current minute last.
    let starts: Vec<i64> = minutes
        .iter()
        .map(|m| {
            chrono::DateTime::parse_from_rfc3339(m["at"].as_str().unwrap())
                .unwrap()
                .timestamp()
        })
        .collect();
    assert!(starts.windows(2).all(|w| w[1] - w[0] == 60), "{starts:?}");
    let now = chrono::Utc::now().timestamp();
    assert!((now - 60..=now).contains(&starts[4]), "{starts:?} at {now}");
    let totals = &activity["totals"];
    assert_eq!(totals["order.created"], 3);
    assert_eq!(totals["order.processing"], 3);
    assert_eq!(totals["order.completed"], 3);
    assert_eq!(totals["order.failed"], 0);
    // In the minute they happened: this one, or the one before if it just turned.
    let recent: u64 = minutes[3..]
        .iter()
        .map(|m| m["counts"]["order.created"].as_u64().unwrap())
        .sum();
    assert_eq!(recent, 3);
    assert!(
        minutes[..3]
            .iter()
            .all(|m| m["counts"]["order.created"] == 0)
    );
    // Every type in every minute.
    for minute in minutes {
        assert_eq!(
            minute["counts"].as_object().unwrap().len(),
            totals.as_object().unwrap().len()
        );
    }
    let bad = app.get("/metrics/activity?minutes=0").await;
    assert_eq!(bad.status(), 400);
}
