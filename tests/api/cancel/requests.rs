//! The cancel request itself: a bad body (or an unknown order) is refused and changes
//! nothing, and only the order's owner or an admin may cancel it.

use std::sync::Arc;
use std::time::Duration;

use order_processor::auth::AuthConfig;
use order_processor::domain::OrderStatus;
use reqwest::Method;
use serde_json::{Value, json};

use super::{cancel, gated_app, held_order};
use crate::auth::{SECRET, call, user_token};
use crate::events::event_types;
use crate::helpers::{Gate, Options, TestDb, eventually, on_every_backend, spawn_app_with};

on_every_backend!(
    a_bad_cancel_body_is_refused_and_changes_nothing,
    only_the_owner_or_an_admin_may_cancel,
);

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
