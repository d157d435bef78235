//! The OpenAPI 3.1 document, generated from the handlers' annotations and the answer
//! types, served at `/openapi.json`, with Swagger UI (bundled in the binary) at `/docs`.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi};

use super::error::{Problem, ProblemField};
use super::{health, listing, metrics, order_json, orders};

/// The whole API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "order-processor",
        description = "Order-processing backend: create orders, follow them through a \
                       durable queue and a worker pool, read metrics, handle dead letters.",
        license(name = "MIT"),
    ),
    paths(
        orders::create,
        listing::get,
        orders::get,
        orders::status,
        orders::retry,
        metrics::get,
        metrics::prometheus,
        health::healthz,
        health::readyz,
    ),
    components(schemas(
        order_json::NewOrderRequest,
        order_json::OrderBody,
        order_json::StatusBody,
        order_json::StatusName,
        listing::Page,
        metrics::MetricsBody,
        metrics::OrderCounts,
        health::Health,
        Problem,
        ProblemField,
    )),
    modifiers(&BearerScheme),
)]
pub struct ApiDoc;

/// Declares the bearer-JWT scheme the API routes name.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.bearer_format = Some("JWT".into());
        bearer.description = Some(
            "Required when the service has a key configured (AUTH_JWT_SECRET or \
             AUTH_JWT_PUBLIC_KEY); without one the API is open."
                .into(),
        );
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
    }
}

/// Problems any API route can answer besides its own.
#[derive(IntoResponses)]
#[allow(dead_code)] // Documents answers; built by `ApiError`, not from here.
pub enum CommonProblems {
    /// The bearer token is missing or invalid (only when authentication is on).
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(#[to_schema] Problem<'static>),
    /// The token's user may not do this.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(#[to_schema] Problem<'static>),
    /// Too many requests from this caller; see `Retry-After`.
    #[response(status = 429, content_type = "application/problem+json")]
    TooManyRequests(#[to_schema] Problem<'static>),
    /// Something failed on our side; the cause is logged.
    #[response(status = 500, content_type = "application/problem+json")]
    Internal(#[to_schema] Problem<'static>),
    /// The database is unreachable for now; see `Retry-After`.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(#[to_schema] Problem<'static>),
}

/// The document, as served.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_covers_every_route_and_the_bearer_scheme() {
        let doc = serde_json::to_value(document()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        for path in [
            "/orders",
            "/orders/{order_id}",
            "/orders/{order_id}/status",
            "/orders/{order_id}/retry",
            "/metrics",
            "/metrics/prometheus",
            "/healthz",
            "/readyz",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} documented");
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        assert!(doc["paths"]["/orders"]["post"]["responses"]["422"].is_object());
    }
}
