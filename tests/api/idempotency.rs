//! `Idempotency-Key` on `POST /orders`: replay, reuse with another body, concurrency,
//! expiry, per-user keys, and bad keys.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{
    Options, TestApp, TestDb, count_rows, eventually, on_every_backend, order_body, spawn_app_with,
};

on_every_backend!(
    the_same_key_and_body_replay_the_first_answer_without_a_second_order,
    the_same_key_with_another_body_is_refused,
    an_amount_that_only_rounds_to_the_first_is_refused_not_replayed,
    concurrent_requests_with_one_key_create_exactly_one_order,
    keys_expire_after_their_time_to_live,
    expired_keys_are_deleted_from_the_database_by_the_running_service,
    bad_keys_answer_400,
);

async fn post(app: &TestApp, key: &str, body: &str) -> reqwest::Response {
    app.client
        .post(app.url("/orders"))
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

async fn the_same_key_and_body_replay_the_first_answer_without_a_second_order(db: TestDb) {
    let app = spawn_app_with(db, Options::default()).await;
    let body = r#"{"user_id":"u1","item_ids":["a","b"],"total_amount":100.5}"#;
    let first = post(&app, "key-1", body).await;
    assert_eq!(first.status(), 201);
    let location = first.headers()["location"].clone();
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_body: Value = first.json().await.unwrap();

    // Spelled differently, asking for the same thing.
    let same = r#"{ "total_amount": 100.50, "item_ids": ["a", "b"], "user_id": "u1" }"#;
    for body in [body, same] {
        let again = post(&app, "key-1", body).await;
        assert_eq!(again.status(), 201);
        assert_eq!(again.headers()["location"], location);
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        assert_eq!(again.json::<Value>().await.unwrap(), first_body);
    }
    assert_eq!(app.metrics().await["total_orders"], 1);
    // Another key is another order.
    assert_eq!(post(&app, "key-2", body).await.status(), 201);
    assert_eq!(app.metrics().await["total_orders"], 2);
}

async fn the_same_key_with_another_body_is_refused(db: TestDb) {
    let app = spawn_app_with(db, Options::default()).await;
    let body = r#"{"user_id":"u1","item_ids":["a"],"total_amount":1}"#;
    assert_eq!(post(&app, "k", body).await.status(), 201);
    let other = r#"{"user_id":"u1","item_ids":["a"],"total_amount":2}"#;
    let response = post(&app, "k", other).await;
    assert_eq!(response.status(), 422);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "/problems/idempotency-key-reused");
    assert_eq!(app.metrics().await["total_orders"], 1);
}

async fn an_amount_that_only_rounds_to_the_first_is_refused_not_replayed(db: TestDb) {
    let app = spawn_app_with(db, Options::default()).await;
    let body = r#"{"user_id":"u1","item_ids":["a"],"total_amount":100}"#;
    assert_eq!(post(&app, "k", body).await.status(), 201);
    let close =
        r#"{"user_id":"u1","item_ids":["a"],"total_amount":1.00000000000000000000000000001e2}"#;
    let response = post(&app, "k", close).await;
    assert_eq!(response.status(), 422);
    assert!(response.headers().get("idempotent-replayed").is_none());
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "total_amount");
    assert_eq!(app.metrics().await["total_orders"], 1);
}

async fn concurrent_requests_with_one_key_create_exactly_one_order(db: TestDb) {
    let app = spawn_app_with(db, Options::default()).await;
    let body = order_body().to_string();
    let requests = (0..12).map(|_| post(&app, "race", &body));
    let responses = futures::future::join_all(requests).await;
    let mut order_ids = std::collections::HashSet::new();
    let mut in_flight = 0;
    for response in responses {
        match response.status().as_u16() {
            201 => {
                let body: Value = response.json().await.unwrap();
                order_ids.insert(body["order_id"].as_str().unwrap().to_owned());
            }
            409 => {
                let problem: Value = response.json().await.unwrap();
                assert_eq!(problem["type"], "/problems/idempotency-key-in-flight");
                in_flight += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(order_ids.len(), 1, "every 201 names the same order");
    assert!(in_flight < 12);
    assert_eq!(app.metrics().await["total_orders"], 1);
}

async fn keys_expire_after_their_time_to_live(db: TestDb) {
    let app = spawn_app_with(
        db,
        Options {
            idempotency_ttl: Duration::from_secs(1),
            ..Options::default()
        },
    )
    .await;
    let body = order_body().to_string();
    let first: Value = post(&app, "short-lived", &body).await.json().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let response = post(&app, "short-lived", &body).await;
    assert_eq!(response.status(), 201);
    assert!(response.headers().get("idempotent-replayed").is_none());
    let second: Value = response.json().await.unwrap();
    assert_ne!(
        first["order_id"], second["order_id"],
        "a new order after expiry"
    );
    assert_eq!(app.metrics().await["total_orders"], 2);
}

async fn expired_keys_are_deleted_from_the_database_by_the_running_service(db: TestDb) {
    let url = db.url.clone();
    let app = spawn_app_with(
        db,
        Options {
            idempotency_ttl: Duration::from_secs(1),
            ..Options::default()
        },
    )
    .await;
    let stored = || {
        count_rows(
            &url,
            "SELECT COUNT(*) FROM idempotency_keys WHERE key = 'pruned'",
        )
    };
    let response = post(&app, "pruned", &order_body().to_string()).await;
    assert_eq!(response.status(), 201);
    assert_eq!(stored().await, 1, "the key is stored with its order");
    // No request touches the key again: only the background pruner can remove it,
    // which it does a few times per TTL (here, every second).
    eventually(
        Duration::from_secs(10),
        "the expired key's row deleted",
        || async { stored().await == 0 },
    )
    .await;
    assert_eq!(
        count_rows(&url, "SELECT COUNT(*) FROM orders").await,
        1,
        "the order outlives its key"
    );
}

async fn bad_keys_answer_400(db: TestDb) {
    let app = spawn_app_with(db, Options::default()).await;
    let body = order_body().to_string();
    for key in ["", "\"\"", &"k".repeat(256)] {
        let response = post(&app, key, &body).await;
        assert_eq!(response.status(), 400, "{key:?}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");
    }
    // A body that is not JSON is reported first, whatever the key.
    let response = post(&app, "", "{not json").await;
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "/problems/malformed-json");
    assert_eq!(app.metrics().await["total_orders"], 0);
}
