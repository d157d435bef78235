//! When a receiver does not take a delivery: retried on the schedule under one
//! `webhook-id`, `Retry-After` honoured, `410 Gone` disabling the endpoint, and the
//! delivery failed after its last attempt.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use super::{register, verified, wait_for_calls, webhook_app};
use crate::helpers::{TestDb, eventually, on_every_backend};
use crate::receiver::{Call, Receiver, Reply};

on_every_backend!(
    failed_attempts_are_retried_on_the_schedule_under_one_id,
    retry_after_is_honoured,
    gone_disables_the_endpoint,
    after_the_last_attempt_the_delivery_has_failed,
);

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
