//! The dashboard (`/ui`) in a real browser: each test starts the app, fills it through
//! the API, runs one scenario of `tests/browser/dashboard.mjs` (Debian's Chromium,
//! driven by playwright-core), then checks through the API what the page did.
//!
//! Needs `node`, `tests/browser/node_modules` (`npm ci --prefix tests/browser`) and
//! Chromium (`/usr/bin/chromium`, or `CHROMIUM`); `.ci/run` installs them. Without
//! them the tests say so and pass, unless `REQUIRE_BROWSER` is set, as in CI.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use order_processor::auth::AuthConfig;
use order_processor::domain::{Order, OrderId, OrderResult};
use order_processor::worker::{ProcessingError, Processor};
use serde_json::json;

use crate::auth::{SECRET, user_token};
use crate::helpers::{Gate, Options, Switch, TestApp, TestDb, eventually, spawn_app_with};

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

/// Runs one scenario against `app`, with `env` besides the app's address.
async fn run(app: &TestApp, scenario: &str, env: &[(&str, &str)]) {
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
    let app = spawn_app_with(TestDb::sqlite(), Options::default()).await;
    run(&app, "overview", &[]).await;
    assert_eq!(app.metrics().await["total_orders"], 4);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_narrow_the_listing_and_pages_follow_the_cursor() {
    if !browser_available() {
        return;
    }
    let app = spawn_app_with(TestDb::sqlite(), Options::default()).await;
    for _ in 0..27 {
        place(&app, "alice").await;
    }
    for _ in 0..3 {
        place(&app, "bob").await;
    }
    run(&app, "filters", &[]).await;
    app.stop().await;
}

/// Fails each order's first two attempts, then succeeds.
#[derive(Default)]
struct FailTwice {
    attempts: Mutex<HashMap<OrderId, u32>>,
}

#[async_trait]
impl Processor for FailTwice {
    async fn process(&self, order: &Order) -> Result<Option<OrderResult>, ProcessingError> {
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            let attempt = attempts.entry(order.id).or_default();
            *attempt += 1;
            *attempt
        };
        if attempt <= 2 {
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
        processor: Some(Arc::new(FailTwice::default())),
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
    let switch = Arc::new(Switch::default());
    switch.failing.store(true, Ordering::SeqCst);
    let options = Options {
        max_attempts: 1,
        processor: Some(switch.clone()),
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
    switch.failing.store(false, Ordering::SeqCst);
    run(&app, "bulk", &[]).await;
    for id in &alice {
        app.wait_for_status(id, "Completed").await;
    }
    for id in &bob {
        assert_eq!(app.status_of(id).await, "Failed");
    }
    eventually(Duration::from_secs(5), "counts", || async {
        app.metrics().await["order_counts"]["Completed"] == 3
    })
    .await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_authentication_the_page_asks_for_a_token_and_hides_actions_from_users() {
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
