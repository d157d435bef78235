//! The event log over HTTP: every path writes exactly its events, numbered 1..n, and
//! an order's history shows them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use order_processor::store::Store;
use order_processor::worker::SimulatedProcessor;
use serde_json::Value;

use crate::helpers::{Options, TestDb, eventually, on_every_backend, spawn_app_with};

on_every_backend!(
    a_processed_order_logs_created_processing_completed_as_its_history,
    failed_attempts_a_dead_letter_and_an_operator_retry_are_each_logged,
);

/// An order's event types in `seq` order, after checking that the log numbers them 1..n
/// with positions rising and shows the order's status as each type implies.
pub async fn event_types(store: &dyn Store, id: &str) -> Vec<String> {
    let events = store.order_events(id.parse().unwrap(), 0).await.unwrap();
    for (n, event) in events.iter().enumerate() {
        assert_eq!(event.seq as usize, n + 1, "{id}: {events:?}");
        assert_eq!(event.order_id.to_string(), id);
        if n > 0 {
            assert!(event.position > events[n - 1].position, "{events:?}");
        }
    }
    events
        .iter()
        .map(|event| event.event_type.as_str().to_owned())
        .collect()
}

fn types(events: &Value) -> Vec<&str> {
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect()
}

async fn a_processed_order_logs_created_processing_completed_as_its_history(db: TestDb) {
    let app = spawn_app_with(db, Options::default()).await;
    let id = app.new_order().await;
    app.wait_until_completed(std::slice::from_ref(&id), Duration::from_secs(10))
        .await;
    let history = app.get_json(&format!("/orders/{id}/events")).await;
    let events = history["events"].as_array().unwrap();
    assert_eq!(
        types(&history["events"]),
        ["order.created", "order.processing", "order.completed"]
    );
    let statuses: Vec<&str> = events
        .iter()
        .map(|e| e["data"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["Pending", "Processing", "Completed"]);
    let mut event_ids = HashSet::new();
    for (n, event) in events.iter().enumerate() {
        assert_eq!(event["seq"], n + 1);
        assert_eq!(event["order_id"], id.as_str());
        let event_id: uuid::Uuid = event["event_id"].as_str().unwrap().parse().unwrap();
        assert_eq!(event_id.get_version_num(), 7);
        assert!(event_ids.insert(event_id));
        let at = event["occurred_at"].as_str().unwrap();
        assert!(at.ends_with('Z') && at.len() == 24, "RFC 3339 in ms: {at}");
        assert!(event["position"].as_i64().unwrap() > 0);
    }
    assert_eq!(events[1]["data"]["attempts"], 1, "the attempt's number");
    assert_eq!(
        events[2]["data"],
        app.get_json(&format!("/orders/{id}")).await,
        "the last event shows the order as it is"
    );
    assert_eq!(events[2]["occurred_at"], events[2]["data"]["completed_at"]);
    assert_eq!(events[0]["occurred_at"], events[0]["data"]["created_at"]);
    let missing = app
        .get("/orders/0190b6a0-0000-7000-8000-000000000000/events")
        .await;
    assert_eq!(missing.status(), 404);
}

async fn failed_attempts_a_dead_letter_and_an_operator_retry_are_each_logged(db: TestDb) {
    let app = spawn_app_with(
        db,
        Options {
            max_attempts: 2,
            retry_base_ms: 50,
            retry_max_ms: 100,
            processor: Some(Arc::new(SimulatedProcessor::new(Duration::ZERO, 1.0))),
            ..Options::default()
        },
    )
    .await;
    let id = app.new_order().await;
    let failed = ["order.created", "order.processing", "order.attempt_failed"]
        .into_iter()
        .chain(["order.processing", "order.failed"]);
    let once: Vec<&str> = failed.collect();
    eventually(Duration::from_secs(10), "dead-lettered", || async {
        event_types(&*app.store, &id).await == once
    })
    .await;
    let history = app.get_json(&format!("/orders/{id}/events")).await;
    let attempt_failed = &history["events"][2];
    assert_eq!(attempt_failed["data"]["status"], "Pending");
    assert_eq!(attempt_failed["data"]["attempts"], 1);
    assert!(
        attempt_failed["data"]["last_error"]
            .as_str()
            .unwrap()
            .contains("simulated transient failure")
    );
    let next = attempt_failed["data"]["next_attempt_at"].as_str().unwrap();
    assert!(
        next > attempt_failed["occurred_at"].as_str().unwrap(),
        "the next attempt is after a backoff: {attempt_failed}"
    );
    let dead = &history["events"][4];
    assert_eq!(dead["data"]["status"], "Failed");
    assert_eq!(dead["data"]["attempts"], 2);
    assert_eq!(dead["data"]["failed_at"], dead["occurred_at"]);

    let retry = app
        .client
        .post(app.url(&format!("/orders/{id}/retry")))
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), 200);
    let mut twice = once.clone();
    twice.push("order.retried");
    twice.extend(&once[1..]);
    eventually(Duration::from_secs(10), "dead-lettered again", || async {
        event_types(&*app.store, &id).await == twice
    })
    .await;
    let history = app.get_json(&format!("/orders/{id}/events")).await;
    assert_eq!(
        history["events"][5]["data"]["attempts"], 0,
        "a fresh budget"
    );
}
