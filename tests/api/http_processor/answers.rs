//! What each answer does to the order (completed with its result kept, refused,
//! retried, a long error cut, a large answer not kept, a result over several lines
//! streamed whole), the signed headers of every call, and `Retry-After` setting the
//! earliest next attempt.

use std::time::Duration;

use serde_json::{Value, json};

use super::{SECRET, attempt, events_of, options, order_for, user};
use crate::helpers::{Options, TestDb, on_every_backend, spawn_app_with};
use crate::receiver::{Call, Receiver, Reply};
use crate::streams;

on_every_backend!(
    each_answer_decides_the_order_and_every_call_is_signed,
    retry_after_sets_the_earliest_next_attempt,
);

/// Checks one call's headers against its body: signed with the secret (verified by the
/// reference library), and naming the order and the attempt.
fn assert_signed(call: &Call) {
    let verifier = standardwebhooks::Webhook::new(SECRET).unwrap();
    verifier
        .verify(&call.body, &call.headers)
        .unwrap_or_else(|err| panic!("signature: {err}"));
    assert!(
        verifier
            .verify(b"{\"tampered\":true}", &call.headers)
            .is_err(),
        "a signature holds only for its own body"
    );
    let body = call.json();
    let order_id = body["order_id"].as_str().unwrap();
    assert_eq!(call.header("idempotency-key"), order_id);
    assert_eq!(call.header("x-order-attempt"), attempt(call).to_string());
    assert_eq!(
        call.header("webhook-id"),
        format!("{order_id}_{}", attempt(call))
    );
    assert_eq!(call.header("content-type"), "application/json");
    assert_eq!(body["status"], "Processing");
    assert_eq!(body["attempts"], body["attempt"]);
}

async fn each_answer_decides_the_order_and_every_call_is_signed(db: TestDb) {
    let receiver = Receiver::start(|call| match (user(call).as_str(), attempt(call)) {
        ("ok", _) => Reply::status(200, r#"{"charge_id": "ch_1", "amount": 10.10}"#),
        // Printed over several lines, with both kinds of line end.
        ("pretty", _) => Reply::status(200, "{\r\n  \"lines\": [1,\n 2],\n\n  \"crlf\": true\n}\n"),
        ("refused", _) => Reply::status(422, r#"{"error": "card declined"}"#),
        ("busy", 1) => Reply::status(429, ""),
        ("flaky", 1) => Reply::status(500, "x".repeat(5_000)),
        ("flaky", _) => Reply::status(200, "OK"),
        ("big", _) => Reply::status(200, format!(r#"{{"blob": "{}"}}"#, "b".repeat(20_000))),
        _ => Reply::status(204, ""),
    })
    .await;
    let app = spawn_app_with(db, options(&receiver)).await;
    let mut ids = Vec::new();
    for name in ["ok", "refused", "busy", "flaky", "big", "pretty"] {
        ids.push((name, order_for(&app, name).await));
    }
    let id = |name: &str| ids.iter().find(|(n, _)| *n == name).unwrap().1.clone();

    // 200 with a JSON object: completed, and the object kept as it was sent.
    let ok = app.wait_for_status(&id("ok"), "Completed").await;
    assert_eq!(ok["result"], json!({"charge_id": "ch_1", "amount": 10.10}));
    assert_eq!(ok["attempts"], 1);
    let text = app
        .get(&format!("/orders/{}", id("ok")))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#""result":{"charge_id": "ch_1", "amount": 10.10}"#),
        "{text}"
    );
    let completed = events_of(&app, &id("ok")).await.pop().unwrap();
    assert_eq!(completed["type"], "order.completed");
    assert_eq!(completed["data"]["result"], ok["result"]);

    // 422: a refusal. Failed after one attempt, with the status and the answer.
    let refused = app.wait_for_status(&id("refused"), "Failed").await;
    assert_eq!(refused["attempts"], 1);
    let error = refused["last_error"].as_str().unwrap();
    assert!(
        error.contains("422") && error.contains("card declined"),
        "{error}"
    );
    assert_eq!(receiver.calls_for(&id("refused")).len(), 1);
    assert_eq!(
        events_of(&app, &id("refused")).await.pop().unwrap()["type"],
        "order.failed"
    );

    // 429, then 204: tried again, completed with no result.
    let busy = app.wait_for_status(&id("busy"), "Completed").await;
    assert_eq!(busy["attempts"], 2);
    assert_eq!(busy["result"], Value::Null);

    // 500 with a long body: the error keeps its first 1 KB; then "OK" (not JSON).
    let flaky = app.wait_for_status(&id("flaky"), "Completed").await;
    assert_eq!(flaky["attempts"], 2);
    assert_eq!(flaky["result"], Value::Null);
    let failed_attempt = events_of(&app, &id("flaky"))
        .await
        .into_iter()
        .find(|event| event["type"] == "order.attempt_failed")
        .expect("the first attempt failed");
    let error = failed_attempt["data"]["last_error"].as_str().unwrap();
    assert!(error.contains("500"), "{error}");
    assert_eq!(error.matches('x').count(), 1024, "{error}");

    // Over 16 KB: completed (the work is done), the answer not kept.
    let big = app.wait_for_status(&id("big"), "Completed").await;
    assert_eq!(big["result"], Value::Null);

    // A result over several lines reaches a real SSE client whole.
    let pretty = app.wait_for_status(&id("pretty"), "Completed").await;
    let expected = json!({"lines": [1, 2], "crlf": true});
    assert_eq!(pretty["result"], expected);
    let path = format!("/orders/{}/events", id("pretty"));
    let mut stream = streams::open(&app, &path, None).await;
    let history = streams::take(&mut stream, 3).await;
    assert_eq!(history[2].event, "order.completed");
    assert_eq!(streams::data(&history[2])["data"]["result"], expected);

    let calls = receiver.calls();
    assert_eq!(calls.len(), 8, "one call per attempt");
    let mut request_ids = std::collections::HashSet::new();
    for call in &calls {
        assert_signed(call);
        assert!(request_ids.insert(call.header("x-request-id").to_owned()));
        let body = call.json();
        let shown = app
            .get_json(&format!("/orders/{}", body["order_id"].as_str().unwrap()))
            .await;
        for field in [
            "order_id",
            "user_id",
            "item_ids",
            "total_amount",
            "created_at",
        ] {
            assert_eq!(body[field], shown[field], "{field}");
        }
    }
    // The amount goes as the exact decimal it is.
    assert!(String::from_utf8_lossy(&calls[0].body).contains(r#""total_amount":10.25"#));
    app.stop().await;
}

async fn retry_after_sets_the_earliest_next_attempt(db: TestDb) {
    let receiver = Receiver::start(|call| match attempt(call) {
        1 => Reply::status(503, "down for maintenance").with_header("retry-after", "2"),
        _ => Reply::status(200, "{}"),
    })
    .await;
    let app = spawn_app_with(
        db,
        Options {
            retry_max_ms: 10_000,
            ..options(&receiver)
        },
    )
    .await;
    let id = order_for(&app, "later").await;
    let done = app.wait_for_status(&id, "Completed").await;
    assert_eq!(done["attempts"], 2);
    let calls = receiver.calls_for(&id);
    assert_eq!(calls.len(), 2);
    let gap = calls[1].at - calls[0].at;
    // The backoff alone would be at most 50 ms.
    assert!(gap >= Duration::from_secs(2), "next attempt after {gap:?}");
    assert!(gap < Duration::from_secs(5), "next attempt after {gap:?}");
    app.stop().await;
}
