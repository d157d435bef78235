//! The OpenAPI 3.1 document, generated from the handlers' annotations and the answer
//! types, served at `/openapi.json`, with Swagger UI (bundled in the binary) at `/docs`.

use std::sync::OnceLock;

use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::RefOr;
use utoipa::openapi::header::Header;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::schema::{Object, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::{Problem, ProblemField};
use super::{
    activity, bulk_retry, deliveries, delivery_json, events, health, listing, metrics,
    new_order_json, orders, status_json, webhook_json, webhooks,
};
use crate::wire;

/// The whole API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "order-processor",
        description = "Order-processing backend: create orders, follow them through a \
                       durable queue and a worker pool, cancel them, read their history of \
                       events, read metrics, handle dead letters.",
        license(name = "MIT"),
    ),
    paths(
        orders::create,
        listing::get,
        orders::get,
        orders::status,
        orders::retry,
        bulk_retry::retry,
        orders::cancel,
        events::history,
        events::feed,
        webhooks::create,
        webhooks::list,
        webhooks::get,
        webhooks::update,
        webhooks::delete,
        webhooks::rotate_secret,
        deliveries::list,
        deliveries::retry,
        deliveries::recover,
        metrics::get,
        metrics::prometheus,
        activity::get,
        health::healthz,
        health::readyz,
        json,
    ),
    components(schemas(
        new_order_json::NewOrderRequest,
        wire::OrderBody,
        wire::StatusBody,
        wire::EventBody,
        wire::History,
        wire::EventPage,
        orders::CancelRequest,
        bulk_retry::BulkRetryRequest,
        bulk_retry::BulkRetried,
        webhook_json::WebhookRequest,
        webhook_json::WebhookPatch,
        webhook_json::WebhookBody,
        webhook_json::WebhookWithSecret,
        webhook_json::WebhookList,
        delivery_json::DeliveryBody,
        delivery_json::DeliveryPage,
        delivery_json::RecoverRequest,
        delivery_json::Recovered,
        crate::domain::DeliveryStatus,
        crate::domain::OrderStatus,
        crate::domain::EventType,
        listing::Page,
        metrics::MetricsBody,
        status_json::OrderCounts,
        status_json::EventCounts,
        activity::Activity,
        activity::ActivityMinute,
        health::Health,
        Problem,
        ProblemField,
    )),
    modifiers(&BearerScheme, &RequestIdHeader),
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

/// Declares `X-Request-Id` on every answer of every route: the observe layer sets it on
/// all of them, so annotating each response by hand could only fall behind.
struct RequestIdHeader;

impl Modify for RequestIdHeader {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let header = Header::builder()
            .schema(Object::with_type(Type::String))
            .description(Some(
                "The request's id: the client's `X-Request-Id` if it sent a printable one, \
                 else a new UUID; every log line of the request carries it.",
            ))
            .build();
        let responses = openapi
            .paths
            .paths
            .values_mut()
            .flat_map(operations_mut)
            .flat_map(|operation| operation.responses.responses.values_mut());
        for response in responses {
            if let RefOr::T(response) = response {
                response
                    .headers
                    .insert(REQUEST_ID.to_owned(), header.clone());
            }
        }
    }
}

/// The response header carrying the request id.
const REQUEST_ID: &str = "X-Request-Id";

/// Every operation a path item holds, whatever its method.
fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
}

/// The document, as served.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET /openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "get_openapi_document",
    tag = "operations",
    responses((status = 200, description = "This OpenAPI 3.1 document",
               body = Object, content_type = "application/json")),
    security(()),
)]
pub async fn json() -> impl IntoResponse {
    // Built and serialised on the first request, not at start-up: few processes are
    // ever asked for it, and building it at start-up kept its tree in memory and its
    // builder code mapped for the life of every process.
    static JSON: OnceLock<Bytes> = OnceLock::new();
    let body = JSON.get_or_init(|| {
        serde_json::to_vec(&document())
            .expect("the OpenAPI document always serialises")
            .into()
    });
    ([(header::CONTENT_TYPE, "application/json")], body.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    // That it covers every route is held by `routes`' own test.
    #[test]
    fn the_document_is_openapi_3_1_with_the_bearer_scheme() {
        let doc = serde_json::to_value(document()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        assert!(doc["paths"]["/orders"]["post"]["responses"]["422"].is_object());
    }

    #[test]
    fn the_document_describes_the_response_headers_the_service_sets() {
        let doc = serde_json::to_value(document()).unwrap();
        let header = |path: &str, method: &str, status: &str, name: &str| {
            doc["paths"][path][method]["responses"][status]["headers"][name].clone()
        };
        for path in ["/orders/{order_id}", "/metrics"] {
            assert!(
                header(path, "get", "401", "WWW-Authenticate").is_object(),
                "{path} 401"
            );
            for status in ["429", "503"] {
                assert_eq!(
                    header(path, "get", status, "Retry-After")["schema"]["type"],
                    "integer",
                    "{path} {status}"
                );
            }
        }
        assert!(header("/readyz", "get", "503", "Retry-After").is_object());
        assert!(header("/orders", "post", "201", "Idempotent-Replayed").is_object());
        assert!(header("/orders", "post", "201", "Location").is_object());
        // The request id is on every answer of every route.
        let mut answers = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                for (status, response) in operation["responses"].as_object().unwrap() {
                    assert!(
                        response["headers"][REQUEST_ID].is_object(),
                        "{method} {path} {status} has {REQUEST_ID}"
                    );
                    answers += 1;
                }
            }
        }
        assert!(answers > 30, "{answers} answers checked");
    }
}
