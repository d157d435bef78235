//! Restart: orders and their fields survive; Pending ones complete afterwards.

use std::sync::Arc;
use std::time::Duration;

use order_processor::domain::OrderStatus;
use serde_json::json;

use crate::helpers::{Gate, Options, TestDb, on_every_backend, spawn_app_with};

on_every_backend!(orders_survive_a_restart_and_pending_ones_complete_after_it,);

async fn orders_survive_a_restart_and_pending_ones_complete_after_it(db: TestDb) {
    // First run: the worker holds every order, so nothing completes.
    let gate = Arc::new(Gate::default());
    let app = spawn_app_with(
        db,
        Options {
            concurrency: 2,
            grace_ms: 100,
            processor: Some(gate),
            ..Options::default()
        },
    )
    .await;
    let mut before = Vec::new();
    for n in 0..6 {
        let body = json!({"user_id": format!("user{n}"), "item_ids": ["x", format!("item{n}")], "total_amount": 12.34});
        let created = app.create_order(&body).await;
        let id = created["order_id"].as_str().unwrap().to_owned();
        before.push(app.get_json(&format!("/orders/{id}")).await);
    }
    let db = app.stop().await;

    // After a graceful stop, claims held at the gate went back to the queue.
    let store = db.store().await;
    let counts = store.metrics().await.unwrap().counts;
    assert_eq!(
        (
            counts.get(OrderStatus::Pending),
            counts.get(OrderStatus::Processing)
        ),
        (6, 0)
    );
    drop(store);

    let app = spawn_app_with(db, Options::default()).await;
    let ids: Vec<String> = before
        .iter()
        .map(|o| o["order_id"].as_str().unwrap().to_owned())
        .collect();
    app.wait_until_completed(&ids, Duration::from_secs(10))
        .await;
    for old in &before {
        let id = old["order_id"].as_str().unwrap();
        let now = app.get_json(&format!("/orders/{id}")).await;
        for field in [
            "order_id",
            "user_id",
            "item_ids",
            "total_amount",
            "created_at",
        ] {
            assert_eq!(
                now[field], old[field],
                "{field} of {id} survived the restart"
            );
        }
        assert_eq!(now["status"], "Completed");
    }
    assert_eq!(app.metrics().await["total_orders"], 6);
}
