//! The HTTP edge: routes, shared state, the request log, and the one error shape.

mod error;
mod extract;
mod listing;
mod metrics;
mod orders;
mod state;

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

pub use error::ApiError;
pub use state::AppState;

/// All routes, with unknown paths (404) and wrong methods (405) answered in the
/// problem shape like every other error.
pub fn router(state: AppState) -> Router {
    let body_limit = state.body_limit;
    Router::new()
        .route("/orders", post(orders::create).get(listing::get))
        .route("/orders/{order_id}", get(orders::get))
        .route("/orders/{order_id}/status", get(orders::status))
        .route("/orders/{order_id}/retry", post(orders::retry))
        .route("/metrics", get(metrics::get))
        .fallback(|| async { ApiError::NotFound("no such resource".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// One log line per request: method, path, status and latency (microseconds).
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    tracing::info!(
        %method,
        %path,
        status = response.status().as_u16(),
        latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    response
}
