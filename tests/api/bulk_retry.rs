//! `POST /orders/retry`: a dry run counts the dead letters a filter matches; the retry
//! then requeues exactly those (bounded by the dry run's `failed_by`), for admins only;
//! a bad body is refused, naming each member, and changes nothing.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use order_processor::auth::AuthConfig;
use order_processor::domain::OrderStatus;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::auth::{SECRET, call, user_token};
use crate::helpers::{
    Options, Switch, TestApp, TestDb, eventually, on_every_backend, spawn_app_with,
};

on_every_backend!(
    a_dry_run_counts_and_the_retry_requeues_exactly_the_matching_dead_letters,
    a_bad_bulk_retry_is_refused_naming_each_member_and_changes_nothing,
    only_admins_may_retry_in_bulk,
);

async fn failing_app(db: TestDb, auth: AuthConfig) -> (TestApp, Arc<Switch>) {
    let switch = Arc::new(Switch::default());
    switch.failing.store(true, Ordering::SeqCst);
    let options = Options {
        max_attempts: 1,
        processor: Some(switch.clone()),
        auth,
        ..Options::default()
    };
    (spawn_app_with(db, options).await, switch)
}

/// A new order of `user`, once it is a dead letter.
async fn dead_letter(app: &TestApp, user: &str, token: Option<&str>) -> String {
    let body = json!({"user_id": user, "item_ids": ["sku"], "total_amount": 3});
    let answer: Value = call(app, Method::POST, "/orders", token, Some(body))
        .await
        .json()
        .await
        .unwrap();
    let id = answer["order_id"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(20), "a dead letter", || async {
        stored(app, &id).await == OrderStatus::Failed
    })
    .await;
    id
}

/// The order's status, read from the store (with authentication on, too).
async fn stored(app: &TestApp, id: &str) -> OrderStatus {
    let order = app.store.get(id.parse().unwrap()).await.unwrap();
    order.expect("the order exists").status
}

async fn bulk(app: &TestApp, body: Value) -> reqwest::Response {
    call(app, Method::POST, "/orders/retry", None, Some(body)).await
}

async fn a_dry_run_counts_and_the_retry_requeues_exactly_the_matching_dead_letters(db: TestDb) {
    let (app, switch) = failing_app(db, AuthConfig::default()).await;
    let mut alice = Vec::new();
    for _ in 0..3 {
        alice.push(dead_letter(&app, "alice", None).await);
    }
    let bob = [
        dead_letter(&app, "bob", None).await,
        dead_letter(&app, "bob", None).await,
    ];

    let dry = bulk(
        &app,
        json!({"user_id": "alice", "status": "Failed", "dry_run": true}),
    )
    .await;
    assert_eq!(dry.status(), StatusCode::OK);
    let dry: Value = dry.json().await.unwrap();
    assert_eq!(
        (
            dry["dry_run"].clone(),
            dry["matched"].clone(),
            dry["requeued"].clone()
        ),
        (json!(true), json!(3), json!(0))
    );
    for id in &alice {
        assert_eq!(
            app.status_of(id).await,
            "Failed",
            "a dry run changes nothing"
        );
    }

    // Failed after the count: not in what was confirmed, so not retried.
    let late = dead_letter(&app, "alice", None).await;
    switch.failing.store(false, Ordering::SeqCst);
    let done = bulk(
        &app,
        json!({"user_id": "alice", "failed_by": dry["failed_by"]}),
    )
    .await;
    assert_eq!(done.status(), StatusCode::OK);
    let done: Value = done.json().await.unwrap();
    assert_eq!(
        (done["matched"].clone(), done["requeued"].clone()),
        (json!(3), json!(3))
    );
    assert_eq!(done["failed_by"], dry["failed_by"]);
    for id in &alice {
        app.wait_for_status(id, "Completed").await;
        let history = app.get_json(&format!("/orders/{id}/events")).await;
        let types: Vec<&str> = history["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert!(types.contains(&"order.retried"), "{types:?}");
    }
    assert_eq!(app.status_of(&late).await, "Failed");
    for id in &bob {
        assert_eq!(app.status_of(id).await, "Failed");
    }
    // Nothing left to match: a second retry is a no-op, not an error.
    let again: Value = bulk(
        &app,
        json!({"user_id": "alice", "failed_by": dry["failed_by"]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(again["requeued"], 0);
}

async fn a_bad_bulk_retry_is_refused_naming_each_member_and_changes_nothing(db: TestDb) {
    let (app, _switch) = failing_app(db, AuthConfig::default()).await;
    let id = dead_letter(&app, "alice", None).await;
    let bad = bulk(
        &app,
        json!({"user_id": "", "status": "Pending", "failed_by": 5, "dry_run": "yes"}),
    )
    .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = bad.json().await.unwrap();
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["user_id", "status", "failed_by", "dry_run"]);
    for (body, status) in [
        ("[]", StatusCode::BAD_REQUEST),
        ("{", StatusCode::BAD_REQUEST),
        (
            r#"{"failed_by": "last tuesday"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let answer = app
            .client
            .post(app.url("/orders/retry"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), status, "{body}");
    }
    assert_eq!(app.status_of(&id).await, "Failed", "nothing was retried");
}

async fn only_admins_may_retry_in_bulk(db: TestDb) {
    let auth = AuthConfig {
        auth_jwt_secret: Some(SECRET.into()),
        ..AuthConfig::default()
    };
    let (app, switch) = failing_app(db, auth).await;
    let user = user_token("alice", false);
    let admin = user_token("ops", true);
    let id = dead_letter(&app, "alice", Some(&user)).await;
    let refused = call(
        &app,
        Method::POST,
        "/orders/retry",
        Some(&user),
        Some(json!({})),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let anonymous = call(&app, Method::POST, "/orders/retry", None, Some(json!({}))).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(stored(&app, &id).await, OrderStatus::Failed);
    switch.failing.store(false, Ordering::SeqCst);
    let done: Value = call(
        &app,
        Method::POST,
        "/orders/retry",
        Some(&admin),
        Some(json!({})),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(done["requeued"], 1);
}
