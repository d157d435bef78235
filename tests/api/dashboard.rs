//! The dashboard (`/ui`) in a real browser: each test starts the app, fills it through
//! the API, runs one scenario of `tests/browser/dashboard.mjs` (Debian's Chromium,
//! driven by playwright-core), then checks through the API what the page did.
//!
//! Needs `node`, `tests/browser/node_modules` (`npm ci --prefix tests/browser`) and
//! Chromium (`/usr/bin/chromium`, or `CHROMIUM`); `.ci/run` installs them. Without
//! them the tests say so and pass, unless `REQUIRE_BROWSER` is set, as in CI.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use order_processor::auth::AuthConfig;
use order_processor::domain::{Order, OrderId, OrderResult};
use order_processor::worker::{ProcessingError, Processor};
use serde_json::json;

use crate::auth::{SECRET, reader_token, user_token};
use crate::helpers::{Gate, Options, TestApp, TestDb, spawn_app_with};
use crate::receiver::{Receiver, Reply};

/// One browser at a time: two cores do not run several Chromiums and the app well.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const SCRIPT: &str = "tests/browser/dashboard.mjs";

fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// Whether the browser tests can run here; panics when they must and cannot.
fn browser_available() -> bool {
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    let driver = Path::new("tests/browser/node_modules/playwright-core").exists();
    let browser = Path::new(&chromium()).exists();
    if node && driver && browser {
        return true;
    }
    let missing = format!(
        "browser tests need node ({node}), `npm ci --prefix tests/browser` ({driver}) and \
         Chromium at {} ({browser})",
        chromium()
    );
    assert!(std::env::var_os("REQUIRE_BROWSER").is_none(), "{missing}");
    eprintln!("skipped: {missing}");
    false
}

/// Runs one scenario against `app`, with `env` besides the app's address; returns
/// what it printed.
async fn run(app: &TestApp, scenario: &str, env: &[(&str, &str)]) -> String {
    let _one = BROWSER.lock().await;
    let output = tokio::process::Command::new("node")
        .arg(SCRIPT)
        .arg(scenario)
        .env("BASE_URL", &app.address)
        .env("CHROMIUM", chromium())
        .env("SCREENSHOTS", "target/screenshots")
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), output)
        .await
        .expect("the scenario finishes within 2 minutes")
        .expect("node runs");
    assert!(
        output.status.success(),
        "scenario {scenario} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn place(app: &TestApp, user: &str) -> String {
    app.create_order(&json!({"user_id": user, "item_ids": ["sku-1"], "total_amount": 19.99}))
        .await["order_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_endpoints_are_added_switched_rotated_and_recovered_from_the_page() {
    if !browser_available() {
        return;
    }
    let options = Options {
        webhook_allow_private_networks: true,
        ..Options::default()
    };
    let options = Options {
        // The schedule's eight attempts in about 5 s.
        webhook_retry_scale: 0.00005,
        ..options
    };
    let app = spawn_app_with(TestDb::sqlite(), options).await;
    // Fails a delivery's eight attempts (one webhook-id throughout), takes the next.
    let seen: Mutex<HashMap<String, u32>> = Mutex::default();
    let receiver = Receiver::start(move |call| {
        let mut seen = seen.lock().unwrap();
        let calls = seen
            .entry(call.header("webhook-id").to_owned())
            .or_default();
        *calls += 1;
        Reply::status(if *calls <= 8 { 500 } else { 200 }, "")
    })
    .await;
    run(&app, "webhooks", &[("RECEIVER_URL", &receiver.url)]).await;
    let list = app.get_json("/webhooks").await;
    let endpoints = list["webhooks"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1);
    let endpoint = &endpoints[0];
    assert_eq!(endpoint["url"], receiver.url.as_str());
    assert_eq!(endpoint["description"], "the ERP");
    assert_eq!(endpoint["event_types"], json!(["order.completed"]));
    assert_eq!(endpoint["disabled"], false);
    assert!(
        endpoint["previous_secret_expires_at"].is_string(),
        "the secret was rotated"
    );
    // Only the completed event: eight failed attempts, then the recovered one.
    let calls = receiver.calls();
    assert_eq!(calls.len(), 9);
    assert!(calls.iter().all(|c| c.json()["type"] == "order.completed"));
    assert!(
        calls
            .iter()
            .all(|c| c.header("webhook-id") == calls[0].header("webhook-id"))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_authentication_the_page_asks_for_a_token_and_offers_actions_to_admins_only() {
    if !browser_available() {
        return;
    }
    let options = Options {
        auth: AuthConfig {
            auth_jwt_secret: Some(SECRET.into()),
            ..AuthConfig::default()
        },
        ..Options::default()
    };
    let app = spawn_app_with(TestDb::sqlite(), options).await;
    let admin = user_token("ops", true);
    let alice = user_token("alice", false);
    let mut id = String::new();
    for user in ["alice", "bob"] {
        let answer = app
            .client
            .post(app.url("/orders"))
            .bearer_auth(user_token(user, false))
            .json(&json!({"user_id": user, "item_ids": ["sku-1"], "total_amount": 5}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 201);
        if user == "alice" {
            id = answer.json::<serde_json::Value>().await.unwrap()["order_id"]
                .as_str()
                .unwrap()
                .to_owned();
        }
    }
    run(
        &app,
        "auth",
        &[
            ("ADMIN_TOKEN", &admin),
            ("USER_TOKEN", &alice),
            ("READER_TOKEN", &reader_token("ops")),
            ("ORDER_ID", &id),
        ],
    )
    .await;
    app.stop().await;
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
