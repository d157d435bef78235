//! Failing processing: retries with growing backoff, dead letters, timeouts, panics,
//! and the operator's retry.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use order_processor::domain::{Order, OrderResult};
use order_processor::worker::{ProcessingError, Processor, SimulatedProcessor};
use serde_json::Value;

use crate::helpers::{
    Options, TestApp, TestDb, eventually, on_every_backend, order_body, spawn_app_with,
};

on_every_backend!(
    an_always_failing_order_backs_off_then_is_dead_lettered_and_retried,
    with_half_the_attempts_failing_every_order_ends_completed_or_failed,
    a_panicking_processor_fails_the_attempt_not_the_worker,
    a_hanging_processor_is_timed_out_and_retried,
    retrying_an_order_that_has_not_failed_is_a_conflict,
);

/// Wraps a processor and notes when each attempt started.
struct Recording<P> {
    inner: P,
    starts: Mutex<Vec<Instant>>,
}

#[async_trait]
impl<P: Processor> Processor for Recording<P> {
    async fn process(&self, order: &Order) -> Result<Option<OrderResult>, ProcessingError> {
        self.starts.lock().unwrap().push(Instant::now());
        self.inner.process(order).await
    }
}

/// Misbehaves on each order's first attempt (as `first` says), then succeeds.
struct FirstAttempt {
    calls: AtomicU32,
    panics: bool,
}

#[async_trait]
impl Processor for FirstAttempt {
    async fn process(&self, order: &Order) -> Result<Option<OrderResult>, ProcessingError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if order.attempts == 1 {
            if self.panics {
                panic!("the payment gateway client panicked");
            }
            std::future::pending::<()>().await;
        }
        Ok(None)
    }
}

async fn an_always_failing_order_backs_off_then_is_dead_lettered_and_retried(db: TestDb) {
    let _timed = crate::helpers::DISK_QUIET.read().await;
    let recording = Arc::new(Recording {
        inner: SimulatedProcessor::new(Duration::ZERO, 1.0),
        starts: Mutex::default(),
    });
    let app = spawn_app_with(
        db,
        Options {
            max_attempts: 4,
            retry_base_ms: 200,
            retry_max_ms: 10_000,
            processor: Some(recording.clone()),
            ..Options::default()
        },
    )
    .await;
    let id = app.create_order(&order_body()).await["order_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let failed = app.wait_for_status(&id, "Failed").await;
    assert_eq!(failed["attempts"], 4);
    assert!(
        failed["last_error"]
            .as_str()
            .unwrap()
            .contains("simulated transient failure")
    );
    assert!(failed["failed_at"].is_string());
    assert!(failed["completed_at"].is_null());
    let starts = recording.starts.lock().unwrap().clone();
    assert_eq!(starts.len(), 4, "exactly MAX_ATTEMPTS attempts");
    // Gap n follows failure n: at least half its ceiling of 200 ms * 2^(n-1), at most
    // the ceiling plus scheduling slack; so the gaps grow.
    for (n, pair) in starts.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        let ceiling = Duration::from_millis(200 << n);
        assert!(
            gap >= ceiling / 2,
            "gap {n} was {gap:?}, under half of {ceiling:?}"
        );
        assert!(
            gap <= ceiling + Duration::from_millis(400),
            "gap {n} was {gap:?}"
        );
    }
    let metrics = app.metrics().await;
    assert_eq!(metrics["order_counts"]["Failed"], 1);

    // The operator's retry gives it a fresh budget; it fails the same way again.
    let response = app
        .client
        .post(app.url(&format!("/orders/{id}/retry")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let retried: Value = response.json().await.unwrap();
    assert_eq!(retried["status"], "Pending");
    assert_eq!(retried["attempts"], 0);
    assert!(retried["failed_at"].is_null());
    let failed_again = app.wait_for_status(&id, "Failed").await;
    assert_eq!(failed_again["attempts"], 4);
    assert_eq!(recording.starts.lock().unwrap().len(), 8);
}

async fn with_half_the_attempts_failing_every_order_ends_completed_or_failed(db: TestDb) {
    let app = spawn_app_with(
        db,
        Options {
            processing_time_ms: 0,
            failure_rate: 0.5,
            concurrency: 50,
            max_attempts: 3,
            retry_base_ms: 5,
            retry_max_ms: 40,
            poll_ms: 50,
            ..Options::default()
        },
    )
    .await;
    let body = order_body();
    let creates = (0..500).map(|_| app.create_order(&body));
    futures::future::join_all(creates).await;

    eventually(Duration::from_secs(60), "every order settled", || async {
        let counts = &app.metrics().await["order_counts"];
        counts["Completed"].as_u64().unwrap() + counts["Failed"].as_u64().unwrap() == 500
    })
    .await;
    let metrics = app.metrics().await;
    assert_eq!(metrics["total_orders"], 500);
    assert_eq!(metrics["order_counts"]["Pending"], 0);
    assert_eq!(metrics["order_counts"]["Processing"], 0);
    // With 3 attempts at 50%, about 1 in 8 orders fails for good: both outcomes occur.
    let failed = metrics["order_counts"]["Failed"].as_u64().unwrap();
    assert!(failed > 0 && failed < 500, "{failed} failed");

    let mut listed = 0;
    for status in ["Completed", "Failed"] {
        let orders = list_all(&app, &format!("status={status}")).await;
        for order in &orders {
            let attempts = order["attempts"].as_u64().unwrap();
            assert!((1..=3).contains(&attempts), "attempts {attempts}");
            if status == "Failed" {
                assert_eq!(attempts, 3);
                assert!(order["last_error"].is_string());
            }
        }
        assert_eq!(
            orders.len() as u64,
            metrics["order_counts"][status].as_u64().unwrap()
        );
        listed += orders.len();
    }
    assert_eq!(listed, 500);
}

/// Every order a listing returns, following `next_cursor` to the end.
pub async fn list_all(app: &TestApp, filter: &str) -> Vec<Value> {
    let mut orders = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/orders?{filter}&limit=100");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let page = app.get_json(&path).await;
        orders.extend(page["orders"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return orders,
        }
    }
}

async fn misbehaving_first_attempt(db: TestDb, panics: bool) -> (TestApp, Arc<FirstAttempt>) {
    let processor = Arc::new(FirstAttempt {
        calls: AtomicU32::new(0),
        panics,
    });
    let app = spawn_app_with(
        db,
        Options {
            concurrency: 2,
            processing_timeout_ms: 300,
            retry_base_ms: 20,
            processor: Some(processor.clone()),
            ..Options::default()
        },
    )
    .await;
    (app, processor)
}

async fn a_panicking_processor_fails_the_attempt_not_the_worker(db: TestDb) {
    let (app, processor) = misbehaving_first_attempt(db, true).await;
    let mut ids = Vec::new();
    // More orders than workers: the same workers must survive to finish them all.
    for _ in 0..6 {
        ids.push(
            app.create_order(&order_body()).await["order_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    app.wait_until_completed(&ids, Duration::from_secs(10))
        .await;
    for id in &ids {
        let order = app.get_json(&format!("/orders/{id}")).await;
        assert_eq!(order["attempts"], 2, "the panicking attempt was counted");
        let error = order["last_error"].as_str().unwrap();
        assert!(
            error.contains("panicked") && error.contains("payment gateway"),
            "{error}"
        );
    }
    assert_eq!(processor.calls.load(Ordering::SeqCst), 12);
}

async fn a_hanging_processor_is_timed_out_and_retried(db: TestDb) {
    let (app, _) = misbehaving_first_attempt(db, false).await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(
            app.create_order(&order_body()).await["order_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    app.wait_until_completed(&ids, Duration::from_secs(10))
        .await;
    for id in &ids {
        let order = app.get_json(&format!("/orders/{id}")).await;
        assert_eq!(order["attempts"], 2);
        assert_eq!(order["last_error"], "processing timed out after 300 ms");
    }
}

async fn retrying_an_order_that_has_not_failed_is_a_conflict(db: TestDb) {
    let app = spawn_app_with(db, Options::default()).await;
    let id = app.create_order(&order_body()).await["order_id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_until_completed(std::slice::from_ref(&id), Duration::from_secs(5))
        .await;
    let response = app
        .client
        .post(app.url(&format!("/orders/{id}/retry")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "/problems/conflict");
    assert!(problem["detail"].as_str().unwrap().contains("Completed"));

    let unknown = order_processor::domain::OrderId::new_at(order_processor::domain::now());
    let response = app
        .client
        .post(app.url(&format!("/orders/{unknown}/retry")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}
