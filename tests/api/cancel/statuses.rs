//! Which orders can be cancelled: a `Pending` one for good (never processed), a dead
//! letter (no longer retried), a cancelled one again (answered unchanged); not one
//! being processed or done.

use std::sync::Arc;
use std::time::Duration;

use order_processor::worker::SimulatedProcessor;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{cancel, gated_app, held_order};
use crate::events::event_types;
use crate::helpers::{Options, TestDb, eventually, on_every_backend, spawn_app_with};

on_every_backend!(
    a_pending_order_is_cancelled_for_good_and_never_processed,
    a_dead_letter_can_be_cancelled,
    cancelling_twice_answers_the_cancelled_order_unchanged,
    an_order_being_processed_or_done_cannot_be_cancelled,
);

async fn a_pending_order_is_cancelled_for_good_and_never_processed(db: TestDb) {
    let (app, gate) = gated_app(db).await;
    let held = held_order(&app).await;
    let id = app.new_order().await;
    let response = cancel(
        &app,
        &id,
        Some(json!({"reason": "customer changed their mind"})),
    )
    .await;
    assert_eq!(response.status(), 200);
    let order: Value = response.json().await.unwrap();
    assert_eq!(order["status"], "Cancelled");
    assert_eq!(order["cancel_reason"], "customer changed their mind");
    assert!(order["cancelled_at"].is_string(), "{order}");
    assert!(order["next_attempt_at"].is_null(), "{order}");
    assert_eq!(order["attempts"], 0);
    assert_eq!(app.get_json(&format!("/orders/{id}")).await, order);

    // The worker comes free and finishes the held order; the cancelled one stays so.
    gate.open();
    app.wait_until_completed(std::slice::from_ref(&held), Duration::from_secs(5))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.status_of(&id).await, "Cancelled");
    assert_eq!(
        event_types(&*app.store, &id).await,
        ["order.created", "order.cancelled"]
    );
    let metrics = app.metrics().await;
    assert_eq!(metrics["order_counts"]["Cancelled"], 1);
    assert_eq!(metrics["order_counts"]["Completed"], 1);
    assert_eq!(metrics["total_orders"], 2);
    let listed = app.get_json("/orders?status=Cancelled").await;
    let ids: Vec<&str> = listed["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str()]);
}

async fn a_dead_letter_can_be_cancelled(db: TestDb) {
    let app = spawn_app_with(
        db,
        Options {
            max_attempts: 1,
            processor: Some(Arc::new(SimulatedProcessor::new(Duration::ZERO, 1.0))),
            ..Options::default()
        },
    )
    .await;
    let id = app.new_order().await;
    eventually(Duration::from_secs(10), "dead-lettered", || async {
        app.status_of(&id).await == "Failed"
    })
    .await;
    let response = cancel(&app, &id, None).await;
    assert_eq!(response.status(), 200);
    let order: Value = response.json().await.unwrap();
    assert_eq!(order["status"], "Cancelled");
    assert!(order["cancel_reason"].is_null());
    assert!(order["failed_at"].is_null(), "no longer a dead letter");
    assert!(
        order["last_error"]
            .as_str()
            .unwrap()
            .contains("simulated transient failure"),
        "why it failed is kept: {order}"
    );
    assert_eq!(
        event_types(&*app.store, &id).await,
        [
            "order.created",
            "order.processing",
            "order.failed",
            "order.cancelled"
        ]
    );
    // An operator can no longer retry it.
    let retry = app
        .client
        .post(app.url(&format!("/orders/{id}/retry")))
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), StatusCode::CONFLICT);
}

async fn cancelling_twice_answers_the_cancelled_order_unchanged(db: TestDb) {
    let (app, _gate) = gated_app(db).await;
    held_order(&app).await;
    let id = app.new_order().await;
    let first: Value = cancel(&app, &id, Some(json!({"reason": "first"})))
        .await
        .json()
        .await
        .unwrap();
    let again = cancel(&app, &id, Some(json!({"reason": "second"}))).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    let bare = cancel(&app, &id, None).await;
    assert_eq!(bare.json::<Value>().await.unwrap(), first);
    assert_eq!(
        event_types(&*app.store, &id).await,
        ["order.created", "order.cancelled"],
        "only the first cancel changed anything"
    );
}

async fn an_order_being_processed_or_done_cannot_be_cancelled(db: TestDb) {
    let (app, gate) = gated_app(db).await;
    let id = held_order(&app).await;
    let response = cancel(&app, &id, None).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("Processing") && detail.contains("Pending or Failed"),
        "{detail}"
    );
    gate.open();
    app.wait_until_completed(std::slice::from_ref(&id), Duration::from_secs(5))
        .await;
    let response = cancel(&app, &id, None).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let problem: Value = response.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("Completed"));
    assert_eq!(app.status_of(&id).await, "Completed");
}
