//! Cancelling an order: from `Pending` and `Failed` only, for good, idempotently, by its
//! owner or an admin; a bad body is refused and changes nothing.

use std::sync::Arc;
use std::time::Duration;

use order_processor::auth::AuthConfig;
use order_processor::domain::OrderStatus;
use order_processor::worker::SimulatedProcessor;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::auth::{SECRET, call, user_token};
use crate::events::event_types;
use crate::helpers::{
    Gate, Options, TestApp, TestDb, eventually, on_every_backend, spawn_app_with,
};

on_every_backend!(
    a_pending_order_is_cancelled_for_good_and_never_processed,
    a_dead_letter_can_be_cancelled,
    cancelling_twice_answers_the_cancelled_order_unchanged,
    an_order_being_processed_or_done_cannot_be_cancelled,
    a_bad_cancel_body_is_refused_and_changes_nothing,
    only_the_owner_or_an_admin_may_cancel,
);

async fn cancel(app: &TestApp, id: &str, body: Option<Value>) -> reqwest::Response {
    let mut request = app.client.post(app.url(&format!("/orders/{id}/cancel")));
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

/// The app with one worker held at a gate: the first order stays `Processing`, the
/// rest `Pending`, until the gate opens.
async fn gated_app(db: TestDb) -> (TestApp, Arc<Gate>) {
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
    (app, gate)
}

/// Creates an order and waits until the held worker has it.
async fn held_order(app: &TestApp) -> String {
    let id = app.new_order().await;
    eventually(Duration::from_secs(5), "the order processing", || async {
        app.status_of(&id).await == "Processing"
    })
    .await;
    id
}

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

async fn a_bad_cancel_body_is_refused_and_changes_nothing(db: TestDb) {
    let (app, _gate) = gated_app(db).await;
    held_order(&app).await;
    let id = app.new_order().await;
    let url = app.url(&format!("/orders/{id}/cancel"));
    let cases: [(&str, &str, u16, Option<&str>); 6] = [
        ("application/json", r#"{"reason": 5}"#, 422, Some("reason")),
        (
            "application/json",
            &format!(r#"{{"reason": "{}"}}"#, "x".repeat(501)),
            422,
            Some("reason"),
        ),
        (
            "application/json",
            r#"{"reason": "a\u0000b"}"#,
            422,
            Some("reason"),
        ),
        ("application/json", r#"["reason"]"#, 400, None),
        ("application/json", r#"{"reason": "#, 400, None),
        ("text/plain", "stop it", 415, None),
    ];
    for (content_type, body, status, field) in cases {
        let response = app
            .client
            .post(&url)
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{body}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem: Value = response.json().await.unwrap();
        if let Some(field) = field {
            assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        }
        assert_eq!(
            app.status_of(&id).await,
            "Pending",
            "{body} changed nothing"
        );
    }
    for missing in ["not-an-id", "0190b6a0-0000-7000-8000-000000000000"] {
        assert_eq!(cancel(&app, missing, None).await.status(), 404, "{missing}");
    }
    assert_eq!(event_types(&*app.store, &id).await, ["order.created"]);
}

async fn only_the_owner_or_an_admin_may_cancel(db: TestDb) {
    let gate = Arc::new(Gate::default());
    let app = spawn_app_with(
        db,
        Options {
            auth: AuthConfig {
                auth_jwt_secret: Some(SECRET.into()),
                ..AuthConfig::default()
            },
            concurrency: 1,
            processor: Some(gate.clone()),
            ..Options::default()
        },
    )
    .await;
    let (alice, bob, admin) = (
        user_token("alice", false),
        user_token("bob", false),
        user_token("root", true),
    );
    let mut ids = Vec::new();
    for _ in 0..3 {
        let body = json!({"item_ids": ["a"], "total_amount": 1});
        let created = call(&app, Method::POST, "/orders", Some(&alice), Some(body)).await;
        ids.push(
            created.json::<Value>().await.unwrap()["order_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // The one worker holds one of them; the other two wait.
    eventually(Duration::from_secs(5), "one order processing", || async {
        app.store
            .metrics()
            .await
            .unwrap()
            .counts
            .get(OrderStatus::Processing)
            == 1
    })
    .await;
    let mut pending = Vec::new();
    for id in &ids {
        if app.store.status(id.parse().unwrap()).await.unwrap() == Some(OrderStatus::Pending) {
            pending.push(id.clone());
        }
    }
    assert_eq!(pending.len(), 2);
    let path = |id: &str| format!("/orders/{id}/cancel");
    let stranger = call(&app, Method::POST, &path(&pending[0]), Some(&bob), None).await;
    assert_eq!(stranger.status(), 404, "someone else's order is not there");
    let stranger: Value = stranger.json().await.unwrap();
    let unknown: Value = call(
        &app,
        Method::POST,
        &path("0190b6a0-0000-7000-8000-000000000000"),
        Some(&bob),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(stranger["title"], unknown["title"]);
    assert_eq!(
        app.store.status(pending[0].parse().unwrap()).await.unwrap(),
        Some(OrderStatus::Pending)
    );
    assert_eq!(
        call(&app, Method::POST, &path(&pending[0]), None, None)
            .await
            .status(),
        401
    );
    for (id, token) in [(&pending[0], &alice), (&pending[1], &admin)] {
        let response = call(&app, Method::POST, &path(id), Some(token), None).await;
        assert_eq!(response.status(), 200, "the owner, then an admin");
        assert_eq!(
            response.json::<Value>().await.unwrap()["status"],
            "Cancelled"
        );
    }
}
