//! The benchmark's endpoint: answers every call with `200` and a small JSON object at
//! once, so the HTTP processor's drain and the webhook deliveries measure the service's
//! side of the calls (signing, the client), not the endpoint's work. For a webhook
//! delivery (a body with a `timestamp`, the event's commit time) it also notes the delay
//! to its arrival; `GET /stats` answers their count and percentiles in milliseconds.
//! Run: `cargo run --release --example receiver -- 127.0.0.1:4100`.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Value, json};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Each delivery's delay from its event's commit to its arrival, in milliseconds.
type Delays = Arc<Mutex<Vec<i64>>>;

async fn done(State(delays): State<Delays>, body: Bytes) -> impl IntoResponse {
    if let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body)
        && let Some(stamp) = fields.get("timestamp").and_then(Value::as_str)
        && let Ok(at) = chrono::DateTime::parse_from_rfc3339(stamp)
    {
        let delay = chrono::Utc::now().timestamp_millis() - at.timestamp_millis();
        delays.lock().unwrap().push(delay);
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"ok":true}"#,
    )
}

async fn stats(State(delays): State<Delays>) -> impl IntoResponse {
    let mut delays = delays.lock().unwrap().clone();
    delays.sort_unstable();
    let at = |q: f64| {
        delays
            .get(((delays.len().max(1) - 1) as f64 * q).round() as usize)
            .copied()
    };
    axum::Json(json!({
        "count": delays.len(),
        "p50": at(0.5),
        "p99": at(0.99),
        "max": delays.last(),
    }))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4100".into());
    let app = Router::new()
        .route("/", post(done))
        .route("/orders", post(done))
        .route("/stats", get(stats))
        .with_state(Delays::default());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    order_processor::http::serve(
        listener,
        app,
        order_processor::config::ServeLimits::default(),
        std::future::pending(),
    )
    .await
}
