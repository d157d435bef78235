//! Request ids, health and readiness, the Prometheus exposition, and the request
//! header limit.

use std::time::Duration;

use serde_json::Value;

use crate::binary::Server;
use crate::helpers::{
    Options, TestDb, eventually, execute, on_every_backend, order_body, spawn_app_with,
};
use crate::proxy::Proxy;

on_every_backend!(
    every_answer_carries_a_request_id_and_keeps_the_clients,
    headers_up_to_8_kb_are_read_and_larger_ones_refused_with_431,
    request_ids_appear_in_the_request_log_lines,
    health_and_readiness_answer,
    readiness_fails_when_the_schema_is_behind,
    prometheus_exposes_requests_orders_attempts_retries_dead_letters_and_queue_depth,
);

async fn every_answer_carries_a_request_id_and_keeps_the_clients(db: TestDb) {
    let app = spawn_app_with(db, Options::default()).await;
    let response = app.get("/metrics").await;
    let made = response.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(made).is_ok(), "a fresh id: {made}");
    // Every kind of answer: a route, an unknown path, a wrong method, the document, the
    // docs, a rejected body.
    let requests = [
        app.client.get(app.url("/metrics")),
        app.client.get(app.url("/nowhere")),
        app.client.delete(app.url("/orders")),
        app.client.get(app.url("/openapi.json")),
        app.client.get(app.url("/docs/")),
        app.client
            .post(app.url("/orders"))
            .header("content-type", "application/json")
            .body("{not json"),
    ];
    for request in requests {
        let response = request
            .header("x-request-id", "client-chosen-42")
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["x-request-id"],
            "client-chosen-42",
            "{} {}",
            response.url(),
            response.status()
        );
    }
    // An id that logs could not carry as text is replaced by a fresh one.
    let response = app
        .client
        .get(app.url("/metrics"))
        .header(
            "x-request-id",
            reqwest::header::HeaderValue::from_bytes(b"caf\xe9").unwrap(),
        )
        .send()
        .await
        .unwrap();
    let replaced = response.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(replaced).is_ok(), "{replaced}");
}

async fn request_ids_appear_in_the_request_log_lines(db: TestDb) {
    let server = Server::start(&db.url, &[]);
    let client = reqwest::Client::new();
    client
        .post(format!("{}/orders", server.address))
        .header("x-request-id", "trace-me-7")
        .json(&order_body())
        .send()
        .await
        .unwrap();
    eventually(Duration::from_secs(5), "the request's log line", || async {
        server.logs().iter().any(|line| {
            line["message"] == "request"
                && line["status"] == 201
                && line["span"]["request_id"] == "trace-me-7"
        })
    })
    .await;
}

async fn health_and_readiness_answer(db: TestDb) {
    let app = spawn_app_with(db, Options::default()).await;
    assert_eq!(app.get_json("/healthz").await["status"], "ok");
    assert_eq!(app.get_json("/readyz").await["status"], "ready");
}

async fn readiness_fails_when_the_schema_is_behind(db: TestDb) {
    let url = db.url.clone();
    let app = spawn_app_with(db, Options::default()).await;
    // Forget the newest migration, as if this build were newer than the database.
    let forget =
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)";
    execute(&url, forget).await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("schema"),
        "{problem}"
    );
    assert_eq!(
        app.get_json("/healthz").await["status"],
        "ok",
        "alive all the same"
    );
}

/// PostgreSQL only: the proxy that cuts the database off for one app is TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_the_database_is_unreachable_and_returns_with_it() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let (proxy, db) = Proxy::in_front_of(db).await;
    let app = spawn_app_with(db, Options::default()).await;
    assert_eq!(app.get("/readyz").await.status(), 200);

    proxy.cut();
    let response = app.get("/readyz").await;
    assert_eq!(
        response.status(),
        503,
        "not ready while the database is away"
    );
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert!(response.headers().contains_key("retry-after"));
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "/problems/not-ready");
    assert_eq!(
        app.get("/healthz").await.status(),
        200,
        "alive all the same"
    );

    proxy.restore();
    eventually(Duration::from_secs(20), "ready again", || async {
        app.get("/readyz").await.status() == 200
    })
    .await;
    assert_eq!(app.get_json("/readyz").await["status"], "ready");
}

/// The value of one sample line, `name{labels} value`.
pub fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

async fn prometheus_exposes_requests_orders_attempts_retries_dead_letters_and_queue_depth(
    db: TestDb,
) {
    // Its own process, so the counts are this test's alone.
    let server = Server::start(
        &db.url,
        &[
            ("PROCESSING_TIME_MS", "0"),
            ("PROCESSING_FAILURE_RATE", "1"),
            ("MAX_ATTEMPTS", "2"),
            ("RETRY_BASE_MS", "10"),
        ],
    );
    for _ in 0..3 {
        server.create_order(&order_body()).await;
    }
    eventually(Duration::from_secs(10), "three dead letters", || async {
        server.get_json("/metrics").await["order_counts"]["Failed"] == 3
    })
    .await;
    let response = reqwest::get(format!("{}/metrics/prometheus", server.address))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = response.text().await.unwrap();
    let expect = [
        (
            r#"http_requests_total{method="POST",route="/orders",status="201"}"#,
            3.0,
        ),
        (
            r#"http_request_duration_seconds_count{method="POST",route="/orders",status="201"}"#,
            3.0,
        ),
        ("orders_created_total", 3.0),
        ("order_attempts_total", 6.0),
        ("order_retries_total", 3.0),
        ("order_dead_letters_total", 3.0),
        (
            r#"order_processing_duration_seconds_count{outcome="failed"}"#,
            6.0,
        ),
        (r#"orders_by_status{status="Failed"}"#, 3.0),
        (r#"orders_by_status{status="Pending"}"#, 0.0),
    ];
    for (series, value) in expect {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
    assert!(
        text.contains("http_request_duration_seconds_bucket{"),
        "a histogram"
    );
}

async fn headers_up_to_8_kb_are_read_and_larger_ones_refused_with_431(db: TestDb) {
    let app = spawn_app_with(db, Options::default()).await;
    let header = |len: usize| "x".repeat(len);
    let fits = app
        .client
        .get(app.url("/healthz"))
        .header("x-padding", header(6 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(fits.status(), 200);
    let too_big = app
        .client
        .get(app.url("/healthz"))
        .header("x-padding", header(9 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(too_big.status(), 431);
}
