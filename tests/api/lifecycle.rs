//! An order's trip through the queue: Pending, Processing, Completed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::helpers::{
    Gate, Options, TestDb, eventually, on_every_backend, order_body, spawn_app_with,
};

on_every_backend!(
    an_order_is_seen_pending_then_processing_then_completed,
    processing_takes_the_configured_time_and_metrics_report_it,
    a_new_order_wakes_an_idle_worker_without_waiting_for_the_poll,
    no_more_than_the_configured_number_of_orders_process_at_once,
);

async fn an_order_is_seen_pending_then_processing_then_completed(db: TestDb) {
    let gate = Arc::new(Gate::default());
    let app = spawn_app_with(
        db,
        Options {
            concurrency: 1,
            processor: Some(gate.clone()),
            ..Options::default()
        },
    )
    .await;
    let first = app.create_order(&order_body()).await;
    let first = first["order_id"].as_str().unwrap().to_owned();
    eventually(
        Duration::from_secs(5),
        "the first order processing",
        || async { app.status_of(&first).await == "Processing" },
    )
    .await;
    // The only worker is busy, so the second order waits in the queue.
    let second = app.create_order(&order_body()).await;
    let second = second["order_id"].as_str().unwrap().to_owned();
    assert_eq!(app.status_of(&second).await, "Pending");
    let metrics = app.metrics().await;
    assert_eq!(metrics["order_counts"]["Processing"], 1);
    assert_eq!(metrics["order_counts"]["Pending"], 1);

    gate.open();
    app.wait_until_completed(&[first.clone(), second.clone()], Duration::from_secs(5))
        .await;
    for id in [&first, &second] {
        let order = app.get_json(&format!("/orders/{id}")).await;
        assert_eq!(order["status"], "Completed");
        assert_eq!(order["attempts"], 1);
        let created: DateTime<Utc> = order["created_at"].as_str().unwrap().parse().unwrap();
        let completed: DateTime<Utc> = order["completed_at"].as_str().unwrap().parse().unwrap();
        assert!(completed >= created);
    }
    let metrics = app.metrics().await;
    assert_eq!(metrics["order_counts"]["Completed"], 2);
    assert_eq!(metrics["total_orders"], 2);
    assert!(metrics["average_processing_time"].as_f64().unwrap() > 0.0);
}

async fn processing_takes_the_configured_time_and_metrics_report_it(db: TestDb) {
    let _timed = crate::helpers::DISK_QUIET.read().await;
    let app = spawn_app_with(
        db,
        Options {
            processing_time_ms: 300,
            ..Options::default()
        },
    )
    .await;
    let created = app.create_order(&order_body()).await;
    let id = created["order_id"].as_str().unwrap().to_owned();
    app.wait_until_completed(std::slice::from_ref(&id), Duration::from_secs(5))
        .await;
    let order = app.get_json(&format!("/orders/{id}")).await;
    let created: DateTime<Utc> = order["created_at"].as_str().unwrap().parse().unwrap();
    let completed: DateTime<Utc> = order["completed_at"].as_str().unwrap().parse().unwrap();
    let took = (completed - created).num_milliseconds();
    assert!(took >= 300, "processing took {took} ms");
    let average = app.metrics().await["average_processing_time"]
        .as_f64()
        .unwrap();
    assert!(
        (average - took as f64 / 1000.0).abs() < 1e-9,
        "{average} vs {took} ms"
    );
}

async fn a_new_order_wakes_an_idle_worker_without_waiting_for_the_poll(db: TestDb) {
    let _timed = crate::helpers::DISK_QUIET.read().await;
    // The fallback poll is a minute: only the wake-up can explain a prompt start.
    let app = spawn_app_with(
        db,
        Options {
            processing_time_ms: 0,
            poll_ms: 60_000,
            ..Options::default()
        },
    )
    .await;
    // Let the pool go idle on its first empty claim.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..3 {
        let started = Instant::now();
        let created = app.create_order(&order_body()).await;
        let id = created["order_id"].as_str().unwrap().to_owned();
        app.wait_until_completed(&[id], Duration::from_secs(5))
            .await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "completed after {:?}",
            started.elapsed()
        );
    }
}

async fn no_more_than_the_configured_number_of_orders_process_at_once(db: TestDb) {
    let gate = Arc::new(Gate::default());
    let app = spawn_app_with(
        db,
        Options {
            concurrency: 3,
            processor: Some(gate.clone()),
            ..Options::default()
        },
    )
    .await;
    for _ in 0..8 {
        app.create_order(&order_body()).await;
    }
    eventually(
        Duration::from_secs(5),
        "three orders processing",
        || async { app.metrics().await["order_counts"]["Processing"] == 3 },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let metrics = app.metrics().await;
    assert_eq!(metrics["order_counts"]["Processing"], 3);
    assert_eq!(metrics["order_counts"]["Pending"], 5);
    gate.open();
    eventually(Duration::from_secs(5), "all completed", || async {
        app.metrics().await["order_counts"]["Completed"] == 8
    })
    .await;
}
