//! When no answer comes: one past the processing deadline, or a refused connection,
//! is a failed attempt.

use super::{SECRET, attempt, events_of, options, order_for};
use crate::helpers::{Options, TestDb, on_every_backend, spawn_app_with};
use crate::receiver::{Receiver, Reply};

on_every_backend!(
    an_answer_past_the_deadline_is_a_failed_attempt,
    a_refused_connection_is_a_failed_attempt,
);

async fn an_answer_past_the_deadline_is_a_failed_attempt(db: TestDb) {
    let receiver = Receiver::start(|call| match attempt(call) {
        1 => Reply::Hang,
        _ => Reply::status(200, "{}"),
    })
    .await;
    let app = spawn_app_with(
        db,
        Options {
            processing_timeout_ms: 300,
            ..options(&receiver)
        },
    )
    .await;
    let id = order_for(&app, "slow").await;
    let done = app.wait_for_status(&id, "Completed").await;
    assert_eq!(done["attempts"], 2);
    let failed = events_of(&app, &id)
        .await
        .into_iter()
        .find(|event| event["type"] == "order.attempt_failed")
        .expect("the first attempt failed");
    assert_eq!(
        failed["data"]["last_error"],
        "processing timed out after 300 ms"
    );
    app.stop().await;
}

async fn a_refused_connection_is_a_failed_attempt(db: TestDb) {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/orders", closed.local_addr().unwrap());
    drop(closed);
    let app = spawn_app_with(
        db,
        Options {
            processor_url: Some(url),
            processor_secret: Some(SECRET.into()),
            retry_base_ms: 50,
            max_attempts: 2,
            poll_ms: 100,
            ..Options::default()
        },
    )
    .await;
    let id = order_for(&app, "nobody").await;
    let failed = app.wait_for_status(&id, "Failed").await;
    assert_eq!(failed["attempts"], 2, "retried, then dead-lettered");
    let error = failed["last_error"].as_str().unwrap();
    assert!(error.starts_with("calling the processor failed"), "{error}");
    app.stop().await;
}
