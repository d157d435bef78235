//! The overview page: its counts and charts changing live as orders come, its stream
//! resumed after the tab was hidden, and polling when streams are refused.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use order_processor::domain::{Order, OrderResult};
use order_processor::worker::{ProcessingError, Processor};
use serde_json::json;

use super::{browser_available, place, run};
use crate::helpers::{Options, TestDb, spawn_app_with};
use crate::receiver::{Receiver, Reply};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_counts_orders_live_and_resumes_after_being_hidden() {
    if !browser_available() {
        return;
    }
    // A shop's morning: orders completed, two dead letters of a customer whose card
    // always fails (one retry each), and an endpoint that receives it all.
    let options = Options {
        max_attempts: 2,
        retry_base_ms: 10,
        retry_max_ms: 10,
        processor: Some(Arc::new(FailsFor("declined-card"))),
        webhook_allow_private_networks: true,
        ..Options::default()
    };
    let app = spawn_app_with(TestDb::sqlite(), options).await;
    let receiver = Receiver::start(|_| Reply::status(200, "")).await;
    let registered = app
        .client
        .post(app.url("/webhooks"))
        .json(&json!({"url": receiver.url, "description": "ERP"}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let mut ids = Vec::new();
    for user in ["ann", "ben", "cat", "dan", "eve", "fay", "gus", "hal"] {
        ids.push(place(&app, user).await);
    }
    for _ in 0..2 {
        let id = place(&app, "declined-card").await;
        app.wait_for_status(&id, "Failed").await;
    }
    app.wait_until_completed(&ids, Duration::from_secs(10))
        .await;
    run(&app, "overview", &[]).await;
    assert_eq!(app.metrics().await["total_orders"], 14);
    app.stop().await;
}

/// Fails every attempt of one user's orders; completes the rest.
struct FailsFor(&'static str);

#[async_trait]
impl Processor for FailsFor {
    async fn process(&self, order: &Order) -> Result<Option<OrderResult>, ProcessingError> {
        if order.user_id.as_str() == self.0 {
            return Err(ProcessingError::transient("card declined by the issuer"));
        }
        Ok(None)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_streams_are_refused_the_overview_polls() {
    if !browser_available() {
        return;
    }
    let options = Options {
        max_streams: 0,
        ..Options::default()
    };
    let app = spawn_app_with(TestDb::sqlite(), options).await;
    run(&app, "fallback", &[]).await;
    app.stop().await;
}
