//! What the scopes allow: only an admin retries a dead letter (and it is then `Pending`
//! again and completes), and a reader (`orders:read`) sees everything but changes only
//! its own orders.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use order_processor::auth::AuthConfig;
use order_processor::domain::{Order, OrderResult};
use order_processor::worker::{ProcessingError, Processor};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::create_as;
use crate::auth::{SECRET, call, reader_token, secured_app, user_token};
use crate::helpers::{Options, TestDb, eventually, on_every_backend, spawn_app_with};

on_every_backend!(
    only_an_admin_may_retry_a_dead_letter_and_it_is_pending_again,
    a_reader_sees_everything_and_changes_only_its_own_orders,
);

/// Fails every attempt until mended, then succeeds.
#[derive(Default)]
struct FailsUntilMended {
    mended: AtomicBool,
}

#[async_trait]
impl Processor for FailsUntilMended {
    async fn process(&self, _order: &Order) -> Result<Option<OrderResult>, ProcessingError> {
        if self.mended.load(Ordering::SeqCst) {
            Ok(None)
        } else {
            Err(ProcessingError::transient("the payment gateway is down"))
        }
    }
}

async fn only_an_admin_may_retry_a_dead_letter_and_it_is_pending_again(db: TestDb) {
    let processor = Arc::new(FailsUntilMended::default());
    let app = spawn_app_with(
        db,
        Options {
            auth: AuthConfig {
                auth_jwt_secret: Some(SECRET.into()),
                ..AuthConfig::default()
            },
            max_attempts: 1,
            poll_ms: 50,
            processor: Some(processor.clone()),
            ..Options::default()
        },
    )
    .await;
    let (alice, admin) = (user_token("alice", false), user_token("root", true));
    let id = create_as(&app, &alice).await;
    let order = format!("/orders/{id}");
    let status_of = || async {
        let response = call(&app, Method::GET, &order, Some(&alice), None).await;
        response.json::<Value>().await.unwrap()["status"].clone()
    };
    eventually(Duration::from_secs(10), "a dead letter", || async {
        status_of().await == "Failed"
    })
    .await;
    processor.mended.store(true, Ordering::SeqCst);

    let retry = format!("/orders/{id}/retry");
    let response = call(&app, Method::POST, &retry, Some(&alice), None).await;
    assert_eq!(response.status(), 403, "the owner is not an admin");
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "/problems/forbidden");
    assert_eq!(
        status_of().await,
        "Failed",
        "a refused retry changes nothing"
    );

    let response = call(&app, Method::POST, &retry, Some(&admin), None).await;
    assert_eq!(response.status(), 200);
    let retried: Value = response.json().await.unwrap();
    assert_eq!(retried["order_id"], id.as_str());
    assert_eq!(retried["status"], "Pending");
    assert_eq!(retried["attempts"], 0);
    assert!(retried["failed_at"].is_null());
    // Back in the queue for real: a worker picks it up and, mended, completes it.
    eventually(
        Duration::from_secs(10),
        "the retried order done",
        || async { status_of().await == "Completed" },
    )
    .await;
}

async fn a_reader_sees_everything_and_changes_only_its_own_orders(db: TestDb) {
    let app = secured_app(db).await;
    let (alice, ops, admin) = (
        user_token("alice", false),
        reader_token("ops"),
        user_token("root", true),
    );
    let id = create_as(&app, &alice).await;
    let mine = create_as(&app, &ops).await;
    let status = |method: Method, path: String, token: &'static str, body: Option<Value>| {
        let app = &app;
        let token = match token {
            "ops" => ops.clone(),
            _ => admin.clone(),
        };
        async move { call(app, method, &path, Some(&token), body).await.status() }
    };
    // Everything an admin reads.
    for path in [
        format!("/orders/{id}"),
        format!("/orders/{id}/status"),
        format!("/orders/{id}/events"),
        "/orders?user_id=alice".to_owned(),
        "/events".to_owned(),
        "/metrics".to_owned(),
        "/metrics/prometheus".to_owned(),
        "/metrics/activity".to_owned(),
        "/webhooks".to_owned(),
    ] {
        assert_eq!(
            status(Method::GET, path.clone(), "ops", None).await,
            200,
            "{path}"
        );
    }
    let listed = call(&app, Method::GET, "/orders", Some(&ops), None).await;
    let page: Value = listed.json().await.unwrap();
    assert_eq!(page["orders"].as_array().unwrap().len(), 2, "everyone's");
    // Nothing it may change but its own order.
    let endpoint = json!({"url": "https://erp.example/hooks"});
    for (method, path, body) in [
        (Method::POST, format!("/orders/{id}/retry"), None),
        (Method::POST, "/orders/retry".to_owned(), Some(json!({}))),
        (Method::POST, format!("/orders/{id}/cancel"), None),
        (Method::POST, "/webhooks".to_owned(), Some(endpoint.clone())),
    ] {
        assert_eq!(
            status(method.clone(), path.clone(), "ops", body.clone()).await,
            403,
            "{method} {path}"
        );
    }
    assert_eq!(
        call(
            &app,
            Method::GET,
            &format!("/orders/{id}/status"),
            Some(&alice),
            None
        )
        .await
        .json::<Value>()
        .await
        .unwrap()["status"]
            .as_str()
            .map(|s| s != "Cancelled"),
        Some(true),
        "the refused cancel changed nothing"
    );
    let cancel = status(Method::POST, format!("/orders/{mine}/cancel"), "ops", None).await;
    assert!(
        cancel == StatusCode::OK || cancel == StatusCode::CONFLICT,
        "its own order: {cancel}"
    );
    // An admin's same request passes the scope check (this URL does not resolve here:
    // refused as a field, not for who sent it).
    assert_eq!(
        status(Method::POST, "/webhooks".to_owned(), "root", Some(endpoint)).await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}
