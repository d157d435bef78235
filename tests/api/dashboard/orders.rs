//! The orders pages: filters narrowing the listing and its pages, a dead letter's
//! attempts and its retry, a `Pending` order cancelled, and a bulk retry that confirms
//! its count.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use order_processor::domain::{Order, OrderId, OrderResult};
use order_processor::worker::{ProcessingError, Processor};
use serde_json::json;

use super::{browser_available, place, run};
use crate::helpers::{Gate, Options, TestDb, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_narrow_the_listing_and_pages_follow_the_cursor() {
    if !browser_available() {
        return;
    }
    let app = spawn_app_with(TestDb::sqlite(), Options::default()).await;
    for _ in 0..26 {
        place(&app, "alice").await;
    }
    for _ in 0..3 {
        place(&app, "bob").await;
    }
    // The newest, so first: its amount is shown with a thousands separator.
    app.create_order(&json!({"user_id": "alice", "item_ids": ["sku-1"], "total_amount": 1234.5}))
        .await;
    run(&app, "filters", &[]).await;
    app.stop().await;
}

/// Fails each order's first `times` attempts, then succeeds.
struct FailsFirst {
    times: u32,
    attempts: Mutex<HashMap<OrderId, u32>>,
}

impl FailsFirst {
    fn new(times: u32) -> Arc<Self> {
        Arc::new(Self {
            times,
            attempts: Mutex::default(),
        })
    }
}

#[async_trait]
impl Processor for FailsFirst {
    async fn process(&self, order: &Order) -> Result<Option<OrderResult>, ProcessingError> {
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            let attempt = attempts.entry(order.id).or_default();
            *attempt += 1;
            *attempt
        };
        if attempt <= self.times {
            return Err(ProcessingError::transient(format!(
                "card declined (attempt {attempt})"
            )));
        }
        Ok(None)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_shows_its_attempts_and_retried_from_the_page_completes() {
    if !browser_available() {
        return;
    }
    let options = Options {
        max_attempts: 2,
        retry_base_ms: 10,
        retry_max_ms: 10,
        processor: Some(FailsFirst::new(2)),
        ..Options::default()
    };
    let app = spawn_app_with(TestDb::sqlite(), options).await;
    let id = place(&app, "erin").await;
    app.wait_for_status(&id, "Failed").await;
    run(&app, "retry", &[("ORDER_ID", &id)]).await;
    assert_eq!(app.status_of(&id).await, "Completed");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_order_cancelled_from_the_page_ends_cancelled() {
    if !browser_available() {
        return;
    }
    let gate = Arc::new(Gate::default());
    let options = Options {
        concurrency: 1,
        processor: Some(gate.clone()),
        ..Options::default()
    };
    let app = spawn_app_with(TestDb::sqlite(), options).await;
    let busy = place(&app, "frank").await;
    app.wait_for_status(&busy, "Processing").await;
    let id = place(&app, "frank").await;
    run(&app, "cancel", &[("ORDER_ID", &id), ("BUSY_ID", &busy)]).await;
    let order = app.get_json(&format!("/orders/{id}")).await;
    assert_eq!(order["status"], "Cancelled");
    assert_eq!(order["cancel_reason"], "customer changed their mind");
    gate.open();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_retry_from_the_page_confirms_the_count_and_requeues_exactly_those() {
    if !browser_available() {
        return;
    }
    // One attempt each, which fails: every order is a dead letter, and completes once
    // retried.
    let options = Options {
        max_attempts: 1,
        processor: Some(FailsFirst::new(1)),
        ..Options::default()
    };
    let app = spawn_app_with(TestDb::sqlite(), options).await;
    let mut alice = Vec::new();
    let mut bob = Vec::new();
    for n in 0..5 {
        let id = place(&app, if n < 3 { "alice" } else { "bob" }).await;
        app.wait_for_status(&id, "Failed").await;
        if n < 3 { alice.push(id) } else { bob.push(id) }
    }
    let printed = run(&app, "bulk", &[]).await;
    for id in &alice {
        app.wait_for_status(id, "Completed").await;
    }
    // Bob's were not in the filter; alice's order that failed after the count was
    // not in what was confirmed.
    let late = printed
        .lines()
        .find_map(|line| line.strip_prefix("LATE="))
        .expect("the scenario names its late order");
    for id in bob.iter().map(String::as_str).chain([late]) {
        assert_eq!(app.status_of(id).await, "Failed", "{id}");
    }
    app.stop().await;
}
