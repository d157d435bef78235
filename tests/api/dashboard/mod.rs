//! The dashboard (`/ui`) in a real browser: each test starts the app, fills it through
//! the API, runs one scenario of `tests/browser/dashboard.mjs` (Debian's Chromium,
//! driven by playwright-core), then checks through the API what the page did. A file
//! per part of the page (`overview`, `orders`, `webhooks`, `authentication`); running
//! a scenario is here.
//!
//! Needs `node`, `tests/browser/node_modules` (`npm ci --prefix tests/browser`) and
//! Chromium (`/usr/bin/chromium`, or `CHROMIUM`); `.ci/run` installs them. Without
//! them the tests say so and pass, unless `REQUIRE_BROWSER` is set, as in CI.

mod authentication;
mod orders;
mod overview;
mod webhooks;

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::helpers::TestApp;

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
