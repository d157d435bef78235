//! Leases kept alive by heartbeats while the HTTP processor's call runs: a long
//! attempt keeps its order, a lost lease is abandoned, and a SIGKILLed instance's
//! order is taken back after one short lease, not after the attempt's deadline.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::binary::Server;
use crate::helpers::{
    DISK_QUIET, Options, TestDb, eventually, execute, on_every_backend, spawn_app_with,
};
use crate::http_processor::{SECRET, attempt, events_of, options, order_for};
use crate::receiver::{Receiver, Reply};

on_every_backend!(
    an_attempt_five_leases_long_keeps_its_order_and_completes_once,
    a_worker_that_lost_its_lease_does_not_apply_its_answer,
    a_killed_instance_s_order_is_rescued_after_one_lease_not_the_timeout,
);

async fn an_attempt_five_leases_long_keeps_its_order_and_completes_once(db: TestDb) {
    let _timed = DISK_QUIET.read().await;
    // Two seconds: a heartbeat every 667 ms, so a machine busy with the other tests
    // would have to hold one back by 1.3 s to lose the lease.
    let lease = Duration::from_millis(2_000);
    let receiver =
        Receiver::start(move |_| Reply::status(200, r#"{"slow": true}"#).after(lease * 5)).await;
    let app = spawn_app_with(
        db,
        Options {
            lease_ms: 2_000,
            processing_timeout_ms: 60_000,
            ..options(&receiver)
        },
    )
    .await;
    let id = order_for(&app, "patient").await;
    let done = app.wait_for_status(&id, "Completed").await;
    assert_eq!(
        done["attempts"],
        1,
        "{:#}",
        json!(events_of(&app, &id).await)
    );
    assert_eq!(done["result"], json!({"slow": true}));
    assert_eq!(receiver.calls_for(&id).len(), 1, "called once");
    let types: Vec<Value> = events_of(&app, &id)
        .await
        .into_iter()
        .map(|event| event["type"].clone())
        .collect();
    assert_eq!(
        types,
        ["order.created", "order.processing", "order.completed"],
        "never taken back"
    );
    app.stop().await;
}

async fn a_worker_that_lost_its_lease_does_not_apply_its_answer(db: TestDb) {
    let receiver = Receiver::start(|call| match attempt(call) {
        1 => Reply::status(200, r#"{"from": 1}"#).after(Duration::from_secs(3)),
        _ => Reply::status(200, r#"{"from": 2}"#),
    })
    .await;
    let server = Server::start(&db.url, &settings(&receiver, "60000"));
    let id = server
        .create_order(&json!({"user_id": "u", "item_ids": ["a"], "total_amount": 5}))
        .await;
    eventually(Duration::from_secs(10), "the first attempt", || async {
        !receiver.calls_for(&id).is_empty()
    })
    .await;
    // Another worker holds the order now (as after a rescue and a new claim): the
    // next heartbeat finds the lease lost, and the attempt is abandoned; the order is
    // taken back when that other claim's lease runs out, and tried again.
    execute(
        &db.url,
        &format!(
            "UPDATE orders SET claim_token = '{}' WHERE id = '{id}'",
            uuid::Uuid::new_v4()
        ),
    )
    .await;
    let path = format!("/orders/{id}");
    eventually(Duration::from_secs(20), "completed", || async {
        server.get_json(&path).await["status"] == "Completed"
    })
    .await;
    let done = server.get_json(&path).await;
    assert_eq!(done["result"], json!({"from": 2}));
    assert_eq!(done["attempts"], 2);
    // The first attempt was dropped before its answer came (3 s after its call), and
    // only the second completed the order.
    let logs = server.logs();
    let of_order = |message: &str| -> Vec<Value> {
        logs.iter()
            .filter(|line| line["order_id"] == id.as_str())
            .filter(|line| {
                line["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(message))
            })
            .cloned()
            .collect()
    };
    let abandoned = of_order("lease lost during the attempt");
    assert_eq!(abandoned.len(), 1, "{logs:#?}");
    assert_eq!(abandoned[0]["attempt"], 1);
    let completed = of_order("order completed");
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0]["attempt"], 2);
    let events = server.get_json(&format!("/orders/{id}/events")).await;
    let completions = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["type"] == "order.completed")
        .count();
    assert_eq!(completions, 1);
}

/// The binary on the HTTP processor with a 1 s lease and a processing timeout.
fn settings<'a>(receiver: &'a Receiver, timeout_ms: &'a str) -> [(&'a str, &'a str); 5] {
    [
        ("PROCESSOR_URL", receiver.url.as_str()),
        ("PROCESSOR_SECRET", SECRET),
        ("LEASE_TIMEOUT_MS", "1000"),
        ("PROCESSING_TIMEOUT_MS", timeout_ms),
        ("POLL_INTERVAL_MS", "100"),
    ]
}

async fn a_killed_instance_s_order_is_rescued_after_one_lease_not_the_timeout(db: TestDb) {
    let receiver = Receiver::start(|call| match attempt(call) {
        1 => Reply::Hang,
        _ => Reply::status(200, "{}"),
    })
    .await;
    let settings = settings(&receiver, "120000");
    let first = Server::start(&db.url, &settings);
    let id = first
        .create_order(&json!({"user_id": "u", "item_ids": ["a"], "total_amount": 5}))
        .await;
    eventually(Duration::from_secs(10), "the first attempt", || async {
        !receiver.calls_for(&id).is_empty()
    })
    .await;
    let killed = Instant::now();
    first.kill();
    let second = Server::start(&db.url, &settings);
    eventually(Duration::from_secs(30), "a second attempt", || async {
        receiver.calls_for(&id).len() >= 2
    })
    .await;
    let waited = receiver.calls_for(&id)[1].at - killed;
    // One lease (1 s), the rescuer's check and the restart; nowhere near the 120 s
    // deadline of an attempt.
    assert!(waited < Duration::from_secs(10), "rescued after {waited:?}");
    eventually(Duration::from_secs(10), "completed", || async {
        second.get_json(&format!("/orders/{id}")).await["status"] == "Completed"
    })
    .await;
}
