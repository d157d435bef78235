//! Webhook deliveries to a real receiver: every event delivered and verified with the
//! `standardwebhooks` library (not the service's own code), each order's events in
//! `seq` order, event-type filtering, the retry schedule with a stable `webhook-id`,
//! `Retry-After`, `410 Gone`, the failed state, and both signatures during a secret
//! rotation's overlap.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::auth::call;
use crate::helpers::{Options, TestApp, TestDb, eventually, on_every_backend, spawn_app_with};
use crate::receiver::{Call, Receiver, Reply};

on_every_backend!(
    every_event_is_delivered_signed_and_in_each_orders_order,
    only_the_event_types_asked_for_are_delivered,
    failed_attempts_are_retried_on_the_schedule_under_one_id,
    retry_after_is_honoured,
    gone_disables_the_endpoint,
    after_the_last_attempt_the_delivery_has_failed,
    a_rotated_secret_signs_beside_the_new_one_until_the_overlap_ends,
);

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

async fn every_event_is_delivered_signed_and_in_each_orders_order(db: TestDb) {
    let app = webhook_app(db, 1.0).await;
    let receiver = Receiver::start(|_| Reply::status(200, "ok")).await;
    let (_, secret) = register(&app, &receiver.url, None).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(app.new_order().await);
    }
    app.wait_until_completed(&ids, Duration::from_secs(20))
        .await;
    // created, processing, completed for each.
    wait_for_calls(&receiver, 15, Duration::from_secs(20)).await;
    // Time for a second copy of any of them to arrive, if one were sent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let calls = verified(&receiver, &secret);
    assert_eq!(calls.len(), 15, "each event once");
    let mut seen: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for call in &calls {
        let body = call.json();
        let keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["data", "timestamp", "type"], "{body}");
        let order_id = body["data"]["order_id"].as_str().unwrap().to_owned();
        seen.entry(order_id).or_default().push((
            call.header("webhook-id").to_owned(),
            body["type"].as_str().unwrap().to_owned(),
        ));
        assert_eq!(call.header("content-type"), "application/json");
    }
    for id in &ids {
        // The receiver saw the order's events as its history lists them: same ids,
        // same order, and `timestamp` is the event's `occurred_at`.
        let history = app.get_json(&format!("/orders/{id}/events")).await;
        let expected: Vec<(String, String)> = history["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["event_id"].as_str().unwrap().to_owned(),
                    e["type"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(seen[id], expected, "{id}");
        let completed = calls
            .iter()
            .map(Call::json)
            .find(|b| b["data"]["order_id"] == json!(id) && b["type"] == "order.completed")
            .unwrap();
        let logged = &history["events"][2];
        assert_eq!(completed["timestamp"], logged["occurred_at"]);
        assert_eq!(completed["data"], logged["data"]);
    }
}

async fn only_the_event_types_asked_for_are_delivered(db: TestDb) {
    let app = webhook_app(db, 1.0).await;
    let completed = Receiver::start(|_| Reply::status(204, "")).await;
    let everything = Receiver::start(|_| Reply::status(200, "")).await;
    let (_, secret) = register(&app, &completed.url, Some(&["order.completed"])).await;
    register(&app, &everything.url, None).await;
    let ids = vec![app.new_order().await, app.new_order().await];
    app.wait_until_completed(&ids, Duration::from_secs(20))
        .await;
    wait_for_calls(&everything, 6, Duration::from_secs(20)).await;
    wait_for_calls(&completed, 2, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let calls = verified(&completed, &secret);
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().all(|c| c.json()["type"] == "order.completed"));
}

async fn failed_attempts_are_retried_on_the_schedule_under_one_id(db: TestDb) {
    let _timed = crate::helpers::DISK_QUIET.read().await;
    // Scaled to a thousandth: 5 ms, 300 ms, 1.8 s, each with a fifth of jitter.
    let app = webhook_app(db, 0.001).await;
    let receiver = Receiver::start(|call| {
        let body = call.json();
        if body["type"] == "order.created" && call_count(call) < 4 {
            Reply::status(500, "not now")
        } else {
            Reply::status(200, "")
        }
    })
    .await;
    let (hook, secret) = register(&app, &receiver.url, Some(&["order.created"])).await;
    app.new_order().await;
    wait_for_calls(&receiver, 4, Duration::from_secs(20)).await;
    let calls = verified(&receiver, &secret);
    let ids: Vec<&str> = calls.iter().map(|c| c.header("webhook-id")).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1].at - w[0].at).collect();
    for (gap, step) in gaps.iter().zip([5, 300, 1_800]) {
        assert!(
            *gap >= Duration::from_millis(step * 8 / 10),
            "{gaps:?} against 5 ms, 300 ms, 1.8 s"
        );
    }
    assert!(gaps[2] < Duration::from_secs(5), "{gaps:?}");
    assert!(gaps[1] < gaps[2], "the waits grow: {gaps:?}");
    // Recorded as delivered once the answer is in.
    let delivered = format!("/webhooks/{hook}/deliveries?status=delivered");
    eventually(Duration::from_secs(10), "delivered", || async {
        app.get_json(&delivered).await["deliveries"][0].is_object()
    })
    .await;
    let listed = app.get_json(&delivered).await;
    let delivery = &listed["deliveries"][0];
    assert_eq!(delivery["attempts"], 4);
    assert_eq!(delivery["event_id"], ids[0]);
}

/// How many calls carried this call's `webhook-id` before it (0 for the first): the
/// receiver's scripts answer by attempt.
fn call_count(call: &Call) -> usize {
    ATTEMPTS
        .lock()
        .unwrap()
        .entry(call.header("webhook-id").to_owned())
        .and_modify(|n| *n += 1)
        .or_insert(1)
        .to_owned()
}

static ATTEMPTS: std::sync::LazyLock<std::sync::Mutex<HashMap<String, usize>>> =
    std::sync::LazyLock::new(Default::default);

async fn retry_after_is_honoured(db: TestDb) {
    let _timed = crate::helpers::DISK_QUIET.read().await;
    let app = webhook_app(db, 0.001).await;
    let receiver = Receiver::start(|call| {
        if call_count(call) == 1 {
            Reply::status(429, "slow down").with_header("retry-after", "2")
        } else {
            Reply::status(200, "")
        }
    })
    .await;
    register(&app, &receiver.url, Some(&["order.created"])).await;
    app.new_order().await;
    wait_for_calls(&receiver, 2, Duration::from_secs(20)).await;
    let calls = receiver.calls();
    let gap = calls[1].at - calls[0].at;
    assert!(
        gap >= Duration::from_millis(1_900) && gap < Duration::from_secs(6),
        "waited {gap:?} where Retry-After said 2 s (and the schedule 5 ms)"
    );
}

async fn gone_disables_the_endpoint(db: TestDb) {
    let app = webhook_app(db, 0.001).await;
    let receiver = Receiver::start(|_| Reply::status(410, "gone")).await;
    let (hook, _) = register(&app, &receiver.url, None).await;
    app.new_order().await;
    eventually(Duration::from_secs(20), "the endpoint disabled", || async {
        app.get_json(&format!("/webhooks/{hook}")).await["disabled"] == true
    })
    .await;
    let endpoint = app.get_json(&format!("/webhooks/{hook}")).await;
    assert!(
        endpoint["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("410"),
        "{endpoint}"
    );
    // Nothing more is sent to it, though the order goes on changing.
    let id = app.new_order().await;
    app.wait_for_status(&id, "Completed").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.calls().len(), 1);
}

async fn after_the_last_attempt_the_delivery_has_failed(db: TestDb) {
    // Scaled to a ten-thousandth, the eight attempts take about ten seconds.
    let app = webhook_app(db, 0.0001).await;
    let receiver = Receiver::start(|_| Reply::status(500, "down")).await;
    let (hook, _) = register(&app, &receiver.url, Some(&["order.created"])).await;
    app.new_order().await;
    eventually(Duration::from_secs(40), "the delivery failed", || async {
        let failed = app
            .get_json(&format!("/webhooks/{hook}/deliveries?status=failed"))
            .await;
        failed["deliveries"]
            .as_array()
            .is_some_and(|d| d.len() == 1)
    })
    .await;
    assert_eq!(receiver.calls().len(), 8, "eight attempts in all");
    let failed = app
        .get_json(&format!("/webhooks/{hook}/deliveries?status=failed"))
        .await;
    let delivery = &failed["deliveries"][0];
    assert_eq!(delivery["attempts"], 8);
    assert_eq!(delivery["last_status_code"], 500);
    assert_eq!(delivery["last_error"], "answered 500: down");
    assert_eq!(delivery["next_attempt_at"], Value::Null);
    let endpoint = app.get_json(&format!("/webhooks/{hook}")).await;
    assert!(endpoint["failing_since"].is_string(), "{endpoint}");
    assert_eq!(endpoint["disabled"], false, "five days are not up");
}

async fn a_rotated_secret_signs_beside_the_new_one_until_the_overlap_ends(db: TestDb) {
    let app = webhook_app(db, 1.0).await;
    let receiver = Receiver::start(|_| Reply::status(200, "")).await;
    let (hook, old) = register(&app, &receiver.url, Some(&["order.created"])).await;
    let rotated = call(
        &app,
        Method::POST,
        &format!("/webhooks/{hook}/rotate-secret"),
        None,
        None,
    )
    .await;
    assert_eq!(rotated.status(), 200);
    let new = rotated.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    app.new_order().await;
    wait_for_calls(&receiver, 1, Duration::from_secs(20)).await;
    // Receivers on either secret accept it: two signatures, space-separated.
    verified(&receiver, &old);
    verified(&receiver, &new);
    let call = &receiver.calls()[0];
    assert_eq!(call.header("webhook-signature").split(' ').count(), 2);

    // Once the overlap has ended, only the new secret signs.
    crate::helpers::execute(
        &app.db.url,
        "UPDATE webhook_endpoints SET previous_secret_until = created_at",
    )
    .await;
    app.new_order().await;
    wait_for_calls(&receiver, 2, Duration::from_secs(20)).await;
    let last = receiver.calls().pop().unwrap();
    assert_eq!(last.header("webhook-signature").split(' ').count(), 1);
    standardwebhooks::Webhook::new(&new)
        .unwrap()
        .verify(&last.body, &last.headers)
        .unwrap();
    assert!(
        standardwebhooks::Webhook::new(&old)
            .unwrap()
            .verify(&last.body, &last.headers)
            .is_err()
    );
}
