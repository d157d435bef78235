//! The HTTP edge: routes, shared state, the request log, and the one error shape.

mod auth;
mod body_deadline;
mod error;
mod extract;
mod health;
mod idempotency;
mod listing;
mod metrics;
mod observe;
mod openapi;
mod order_json;
mod orders;
mod rate_limit;
mod serve;
mod state;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use utoipa_swagger_ui::{Config, SwaggerUi};

pub use error::ApiError;
pub use openapi::document as openapi_document;
pub use rate_limit::Limiter;
pub use serve::{ServeLimits, serve};
pub use state::{AppState, Shared};

/// All routes, with unknown paths (404) and wrong methods (405) answered in the
/// problem shape like every other error.
pub fn router(state: AppState) -> Router {
    let body_limit = state.body_limit;
    let api = Router::new()
        .route("/orders", post(orders::create).get(listing::get))
        .route("/orders/{order_id}", get(orders::get))
        .route("/orders/{order_id}/status", get(orders::status))
        .route("/orders/{order_id}/retry", post(orders::retry))
        .route("/metrics", get(metrics::get))
        .route("/metrics/prometheus", get(metrics::prometheus));
    // Every API route learns its caller (or answers 401) and is rate-limited by it; with
    // both off there is nothing to do per request, and handlers see `Caller::Anyone`.
    let api = if state.auth.is_some() || state.rate_limiter.is_some() {
        api.route_layer(middleware::from_fn_with_state(state.clone(), auth::admit))
    } else {
        api
    };
    Router::new()
        .merge(api)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(openapi::json))
        .merge(SwaggerUi::new("/docs").config(Config::new(["/openapi.json"])))
        .fallback(|| async { ApiError::NotFound("no such resource".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(body_limit))
        // Outermost: the request id, the request's span, log line and metrics.
        .layer(observe::ObserveLayer)
        .with_state(state)
}
