//! Webhook deliveries to a real receiver: every event delivered and verified with the
//! `standardwebhooks` library (not the service's own code), each order's events in
//! `seq` order, event-type filtering, the retry schedule with a stable `webhook-id`,
//! `Retry-After`, `410 Gone`, the failed state, and both signatures during a secret
//! rotation's overlap. A file per concern (`delivered`, `retries`); the helpers they
//! share (and `delivery_ops`, `delivery_faults` use) are here.

mod delivered;
mod retries;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::auth::call;
use crate::helpers::{Options, TestApp, TestDb, eventually, spawn_app_with};
use crate::receiver::{Call, Receiver};

/// The app with deliveries to local receivers allowed, and the schedule scaled.
pub async fn webhook_app(db: TestDb, retry_scale: f64) -> TestApp {
    spawn_app_with(
        db,
        Options {
            webhook_allow_private_networks: true,
            webhook_retry_scale: retry_scale,
            webhook_timeout_ms: 2_000,
            ..Options::default()
        },
    )
    .await
}

/// Registers an endpoint; answers its id and secret.
pub async fn register(app: &TestApp, url: &str, event_types: Option<&[&str]>) -> (String, String) {
    let mut body = json!({ "url": url });
    if let Some(types) = event_types {
        body["event_types"] = json!(types);
    }
    let response = call(app, Method::POST, "/webhooks", None, Some(body)).await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    (
        created["id"].as_str().unwrap().to_owned(),
        created["secret"].as_str().unwrap().to_owned(),
    )
}

/// The delivered calls, each verified with `secret` by the `standardwebhooks` library.
pub fn verified(receiver: &Receiver, secret: &str) -> Vec<Call> {
    let verifier = standardwebhooks::Webhook::new(secret).unwrap();
    let calls = receiver.calls();
    for call in &calls {
        verifier
            .verify(&call.body, &call.headers)
            .unwrap_or_else(|err| panic!("{err:?}: {}", String::from_utf8_lossy(&call.body)));
    }
    calls
}

/// Waits until the receiver has had `n` calls.
pub async fn wait_for_calls(receiver: &Receiver, n: usize, timeout: Duration) {
    eventually(timeout, &format!("{n} calls"), || async {
        receiver.calls().len() >= n
    })
    .await;
}
