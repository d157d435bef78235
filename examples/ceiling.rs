//! The benchmark's ceiling: a minimal axum program that answers `POST /orders` with
//! the same JSON as the service, and `GET /orders/{id}/status`, touching no database.
//! Measured in the same run as the service, it turns noisy absolute numbers into
//! ratios. It uses the service's allocator and HTTP serving, and nothing else of it.
//! Run: `cargo run --release --example ceiling -- 127.0.0.1:4000`.

use axum::Json;
use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Value, json};

/// The service's allocator, so the ratio measures the database and our code, not a
/// difference in allocators.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

async fn create(Json(body): Json<Value>) -> impl IntoResponse {
    let id = uuid::Uuid::now_v7().to_string();
    let answer = json!({
        "order_id": id,
        "user_id": body["user_id"],
        "item_ids": body["item_ids"],
        "total_amount": body["total_amount"],
        "status": "Pending",
        "created_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    (
        StatusCode::CREATED,
        [(header::LOCATION, format!("/orders/{id}"))],
        Json(answer),
    )
}

async fn status(Path(_id): Path<String>) -> Json<Value> {
    Json(json!({"status": "Pending"}))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4000".into());
    let app = Router::new()
        .route("/orders", post(create))
        .route("/orders/{id}/status", get(status));
    let listener = tokio::net::TcpListener::bind(&address).await?;
    // The service's own HTTP serving (hyper, HTTP/1.1, capped read buffer), so the
    // ratio measures the database and our code, not a difference in serving.
    order_processor::http::serve(
        listener,
        app,
        order_processor::config::ServeLimits::default(),
        std::future::pending(),
    )
    .await
}
