//! `order-processor loadtest` against a running service: it measures, verifies, follows
//! the orders to the end, and fails loudly when anything goes wrong.

use std::time::Instant;

use order_processor::auth::AuthConfig;
use serde_json::Value;

use crate::binary::run;
use crate::helpers::{Options, TestDb, on_every_backend, spawn_app_with};

on_every_backend!(
    the_load_tool_sends_verifies_and_follows_every_order,
    the_load_tool_paces_requests_at_the_asked_rate,
    the_load_tool_exits_non_zero_when_requests_fail,
);

/// Runs `loadtest --json` with `args` (off the async runtime: it is a child process).
async fn loadtest(args: Vec<String>) -> (bool, Value) {
    let output = tokio::task::spawn_blocking(move || {
        let mut all = vec!["loadtest".to_owned(), "--json".to_owned()];
        all.extend(args);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        run(&refs, &[])
    })
    .await
    .unwrap();
    let summary = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "JSON summary, got {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.success(), summary)
}

async fn the_load_tool_sends_verifies_and_follows_every_order(db: TestDb) {
    let app = spawn_app_with(
        db,
        Options {
            processing_time_ms: 0,
            concurrency: 20,
            ..Options::default()
        },
    )
    .await;
    let args = [
        "--url",
        &app.address,
        "--orders",
        "300",
        "--concurrency",
        "16",
        "--wait-completed",
    ];
    let (ok, summary) = loadtest(args.iter().map(|s| s.to_string()).collect()).await;
    assert!(ok, "{summary}");
    assert_eq!(summary["requests"], 300);
    assert_eq!(summary["accepted"], 300);
    assert_eq!(summary["distinct_ids"], true);
    assert_eq!(summary["mismatched_answers"], 0);
    assert_eq!(summary["errors"], serde_json::json!({}));
    assert_eq!(summary["drain"]["completed"], 300);
    assert_eq!(summary["drain"]["metrics_agree"], true);
    let latency = &summary["latency_ms"];
    for (low, high) in [
        ("p50", "p90"),
        ("p90", "p99"),
        ("p99", "p999"),
        ("p999", "max"),
    ] {
        assert!(
            latency[low].as_f64() <= latency[high].as_f64(),
            "{low} <= {high}: {latency}"
        );
    }
    assert!(summary["processed_per_second"].as_f64().unwrap() > 0.0);
    assert_eq!(app.metrics().await["order_counts"]["Completed"], 300);
}

async fn the_load_tool_paces_requests_at_the_asked_rate(db: TestDb) {
    let _timed = crate::helpers::DISK_QUIET.read().await;
    let app = spawn_app_with(db, Options::default()).await;
    let started = Instant::now();
    let args = [
        "--url",
        &app.address,
        "--orders",
        "60",
        "--rate",
        "100",
        "--concurrency",
        "8",
    ];
    let (ok, summary) = loadtest(args.iter().map(|s| s.to_string()).collect()).await;
    assert!(ok, "{summary}");
    // The 60th order is due 0.59 s after the first.
    assert!(started.elapsed().as_secs_f64() >= 0.59);
    let rate = summary["requests_per_second"].as_f64().unwrap();
    assert!((80.0..=125.0).contains(&rate), "about 100/s, was {rate}");
}

async fn the_load_tool_exits_non_zero_when_requests_fail(db: TestDb) {
    let app = spawn_app_with(
        db,
        Options {
            auth: AuthConfig {
                auth_jwt_secret: Some("loadtest-secret-of-32-bytes-long".into()),
                ..AuthConfig::default()
            },
            ..Options::default()
        },
    )
    .await;
    let args = [
        "--url",
        &app.address,
        "--orders",
        "20",
        "--concurrency",
        "4",
    ];
    let (ok, summary) = loadtest(args.iter().map(|s| s.to_string()).collect()).await;
    assert!(!ok, "unauthenticated requests fail the run");
    assert_eq!(summary["errors"]["401"], 20);
    assert_eq!(summary["passed"], false);
}
