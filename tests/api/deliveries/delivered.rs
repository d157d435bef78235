//! What a receiver gets: every event once, signed (verified by the `standardwebhooks`
//! library) and in each order's `seq` order, only the event types it asked for, and
//! both signatures during a secret rotation's overlap, then only the new one, and the new
//! one on everything that happens after the rotation.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::{register, verified, wait_for_calls, webhook_app};
use crate::auth::call;
use crate::helpers::{TestApp, TestDb, on_every_backend, order_body};
use crate::receiver::{Call, Receiver, Reply};

on_every_backend!(
    every_event_is_delivered_signed_and_in_each_orders_order,
    only_the_event_types_asked_for_are_delivered,
    a_rotated_secret_signs_beside_the_new_one_until_the_overlap_ends,
    an_order_created_after_a_rotation_is_signed_with_the_new_secret,
    a_disabled_endpoint_is_owed_nothing_and_a_new_one_only_what_follows_it,
);

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

async fn a_rotated_secret_signs_beside_the_new_one_until_the_overlap_ends(db: TestDb) {
    let app = webhook_app(db, 1.0).await;
    let receiver = Receiver::start(|_| Reply::status(200, "")).await;
    let (hook, old) = register(&app, &receiver.url, Some(&["order.created"])).await;
    let new = rotate(&app, &hook).await;
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

/// Rotations while the log is busy (orders created all along wake the sender again and
/// again): the first delivery of an order created after a rotation answered
/// carries that rotation's secret, however the sender's reads fell around it.
async fn an_order_created_after_a_rotation_is_signed_with_the_new_secret(db: TestDb) {
    // A steady stream of commits: not beside the tests that time things.
    let _flood = crate::helpers::DISK_QUIET.write().await;
    let app = webhook_app(db, 1.0).await;
    let receiver = Receiver::start(|_| Reply::status(200, "")).await;
    let (hook, _) = register(&app, &receiver.url, Some(&["order.created"])).await;
    // Orders created all along (about 200 a second) keep the sender reading endpoints
    // and the log. Their answers do not matter here.
    let busy = tokio_util::sync::CancellationToken::new();
    let background = tokio::spawn({
        let (client, url, busy) = (app.client.clone(), app.url("/orders"), busy.clone());
        async move {
            while !busy.is_cancelled() {
                let _ = client.post(&url).json(&order_body()).send().await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    for round in 0..30 {
        let secret = rotate(&app, &hook).await;
        let id = app.new_order().await;
        let created = |calls: Vec<Call>| {
            calls
                .into_iter()
                .find(|c| c.json()["data"]["order_id"] == id.as_str())
        };
        crate::helpers::eventually(
            Duration::from_secs(20),
            "the order's creation delivered",
            || async { created(receiver.calls()).is_some() },
        )
        .await;
        let delivery = created(receiver.calls()).unwrap();
        standardwebhooks::Webhook::new(&secret)
            .unwrap()
            .verify(&delivery.body, &delivery.headers)
            .unwrap_or_else(|err| panic!("round {round}: {err:?}"));
    }
    busy.cancel();
    background.await.unwrap();
}

/// Rotates the endpoint's secret; answers the new one.
async fn rotate(app: &crate::helpers::TestApp, hook: &str) -> String {
    let rotated = call(
        app,
        Method::POST,
        &format!("/webhooks/{hook}/rotate-secret"),
        None,
        None,
    )
    .await;
    assert_eq!(rotated.status(), 200);
    rotated.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// An order, once it has completed.
async fn completed_order(app: &TestApp) -> String {
    let id = app.new_order().await;
    app.wait_until_completed(std::slice::from_ref(&id), Duration::from_secs(20))
        .await;
    id
}

/// Disables or enables the endpoint at `path`.
async fn set_disabled(app: &TestApp, path: &str, disabled: bool) {
    let change = Some(json!({ "disabled": disabled }));
    let response = call(app, Method::PATCH, path, None, change).await;
    assert_eq!(response.status(), 200);
}

/// The consumer of the log reads it at once while an endpoint is enabled, and moves past
/// it unread while none is: through both, a disabled endpoint is owed nothing, a new
/// one only what happens once it exists, and one enabled again what follows.
async fn a_disabled_endpoint_is_owed_nothing_and_a_new_one_only_what_follows_it(db: TestDb) {
    let app = webhook_app(db, 1.0).await;
    let first = Receiver::start(|_| Reply::status(200, "ok")).await;
    let (first_id, first_secret) = register(&app, &first.url, None).await;
    let path = format!("/webhooks/{first_id}");
    let one = completed_order(&app).await;
    wait_for_calls(&first, 3, Duration::from_secs(20)).await;

    // No endpoint enabled: the next order's events are owed to nobody.
    set_disabled(&app, &path, true).await;
    completed_order(&app).await;
    // Time for the consumer to move past them (it moves at most every 250 ms then).
    tokio::time::sleep(Duration::from_millis(800)).await;

    // A new endpoint gets what follows it, not the order before it.
    let second = Receiver::start(|_| Reply::status(200, "ok")).await;
    let (_, second_secret) = register(&app, &second.url, None).await;
    let three = completed_order(&app).await;
    wait_for_calls(&second, 3, Duration::from_secs(20)).await;

    // Enabled again, the first gets what follows, and nothing of the time between.
    set_disabled(&app, &path, false).await;
    let four = completed_order(&app).await;
    wait_for_calls(&first, 6, Duration::from_secs(20)).await;
    wait_for_calls(&second, 6, Duration::from_secs(20)).await;
    // Time for a call that should not come to arrive, if one were sent.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let orders_of = |calls: Vec<Call>| -> Vec<String> {
        calls
            .iter()
            .map(|c| c.json()["data"]["order_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let first_orders = orders_of(verified(&first, &first_secret));
    let second_orders = orders_of(verified(&second, &second_secret));
    let times = |id: &str, n: usize| vec![id.to_owned(); n];
    assert_eq!(first_orders, [times(&one, 3), times(&four, 3)].concat());
    assert_eq!(second_orders, [times(&three, 3), times(&four, 3)].concat());
}
