//! The HTTP edge: routes, shared state, the request log, and the one error shape.

mod activity;
mod admission;
mod body_deadline;
mod bulk_retry;
mod deliveries;
mod delivery_json;
mod error;
mod events;
mod extract;
mod health;
mod idempotency;
mod in_flight;
mod listing;
mod live;
mod metrics;
mod new_order_json;
mod observe;
mod openapi;
mod orders;
mod query;
mod rate_limit;
mod routes;
mod serve;
mod state;
mod status_json;
mod stream_headers;
mod streams;
mod ui;
mod webhook_json;
mod webhooks;
mod write_deadline;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use utoipa_swagger_ui::{Config, SwaggerUi};

pub use error::ApiError;
pub use live::LiveFeed;
pub use openapi::document as openapi_document;
pub use rate_limit::Limiter;
use routes::Access;
pub use serve::serve;
pub use state::{AppState, Shared};
pub use streams::Streams;

/// All routes of [`routes::ROUTES`], with unknown paths (404) and wrong methods (405)
/// answered in the problem shape like every other error.
pub fn router(state: AppState) -> Router {
    let body_limit = state.body_limit;
    let routes = |access| {
        routes::ROUTES
            .iter()
            .filter(|route| route.access == access)
            .fold(Router::new(), |router, route| {
                router.route(route.template, (route.handlers)())
            })
    };
    let (mut admitted, open) = (routes(Access::Admitted), routes(Access::Open));
    // Admitted routes learn their caller (or answer 401) and are rate-limited by it;
    // with both off there is nothing to do per request, and handlers see
    // `Caller::Anyone`.
    if state.auth.is_some() || state.rate_limiter.is_some() {
        admitted = admitted.route_layer(middleware::from_fn_with_state(
            state.clone(),
            admission::admit,
        ));
    }
    Router::new()
        .merge(admitted)
        .merge(open)
        .merge(SwaggerUi::new("/docs").config(Config::new(["/openapi.json"])))
        .merge(ui::router())
        .fallback(|| async { ApiError::NotFound("no such resource".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(body_limit))
        // Outermost: the request id, the request's span, log line and metrics.
        .layer(observe::ObserveLayer)
        .with_state(state)
}
