//! The benchmark's processing endpoint: answers every call with `200` and a small JSON
//! object at once, so the HTTP processor's drain measures the service's side of the
//! calls (signing, the client, keeping the result), not the endpoint's work.
//! Run: `cargo run --release --example receiver -- 127.0.0.1:4100`.

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

async fn done(_body: Bytes) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"ok":true}"#,
    )
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4100".into());
    let app = Router::new()
        .route("/", post(done))
        .route("/orders", post(done));
    let listener = tokio::net::TcpListener::bind(&address).await?;
    order_processor::http::serve(
        listener,
        app,
        order_processor::config::ServeLimits::default(),
        std::future::pending(),
    )
    .await
}
