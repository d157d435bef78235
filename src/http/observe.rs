//! Per-request observability: the request id span, one log line, and the HTTP
//! request metrics, all labelled by route template rather than raw path.

use std::sync::LazyLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// Every API route template, as metric labels. A template keeps label values few;
/// other routes (the docs) share the label "other", unknown paths "unmatched". The router's test
/// checks this list against the OpenAPI document's paths.
pub const ROUTES: &[&str] = &[
    "/orders",
    "/orders/{order_id}",
    "/orders/{order_id}/status",
    "/orders/{order_id}/retry",
    "/metrics",
    "/metrics/prometheus",
    "/healthz",
    "/readyz",
    "/openapi.json",
];

/// "0" to "999": every status code's label, made once.
static STATUS_LABELS: LazyLock<Vec<String>> =
    LazyLock::new(|| (0..1000).map(|code: u16| code.to_string()).collect());

/// Runs the request inside a span carrying its `X-Request-Id` (so every log line of
/// the request has it), then logs one line and records the request metrics.
///
/// This runs on every request, so it allocates nothing of its own: labels are static
/// strings, and the span and log fields are only formatted when their level is on.
pub async fn observe_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let uri = request.uri().clone();
    let route = match request.extensions().get::<MatchedPath>() {
        Some(matched) => ROUTES
            .iter()
            .find(|route| **route == matched.as_str())
            .copied()
            .unwrap_or("other"),
        None => "unmatched",
    };
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let span = tracing::info_span!("request", request_id = %request_id);
    let response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status();
    span.in_scope(|| {
        tracing::info!(
            %method,
            path = uri.path(),
            status = status.as_u16(),
            latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            "request"
        );
    });
    // Only known methods become labels: clients must not mint metric series.
    let method = match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    };
    let status = STATUS_LABELS
        .get(usize::from(status.as_u16()))
        .map_or("other", String::as_str);
    metrics::counter!("http_requests_total", "method" => method, "route" => route, "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route, "status" => status)
        .record(elapsed.as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::ROUTES;

    #[test]
    fn every_documented_route_has_its_own_metric_label() {
        let doc = serde_json::to_value(super::super::openapi::document()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for path in paths.keys() {
            assert!(
                ROUTES.contains(&path.as_str()),
                "{path} missing from ROUTES"
            );
        }
    }

    #[test]
    fn every_status_code_has_a_label() {
        assert_eq!(super::STATUS_LABELS[201], "201");
        assert_eq!(super::STATUS_LABELS[999], "999");
    }
}
