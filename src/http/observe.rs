//! Per-request observability: the request id (the client's `X-Request-Id`, or a
//! fresh UUID) echoed in the answer and carried by the request's log span, one log
//! line, and the HTTP request metrics, labelled by route template rather than raw path.
//!
//! It runs on every request, so it is one plain tower layer doing all of this
//! (`tower-http`'s pair of request-id layers in front of it cost a measurable share of
//! the CPU of a `GET` of an order's status; bench/NOTES.md), formats
//! the log line only when it is enabled, and keeps each thread's metric handles rather
//! than looking them up every time. The id is not put on the request: nothing inside
//! reads it but the span.

use std::cell::RefCell;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use metrics::{Counter, Histogram};
use tower_layer::Layer;
use tower_service::Service;
use tracing::{Instrument, Span};

/// "0" to "999": every status code's label, made once.
static STATUS_LABELS: LazyLock<Vec<String>> =
    LazyLock::new(|| (0..1000).map(|code: u16| code.to_string()).collect());

/// Wraps every route in [`Observed`].
#[derive(Clone, Copy, Default)]
pub struct ObserveLayer;

impl<S> Layer<S> for ObserveLayer {
    type Service = Observed<S>;

    fn layer(&self, inner: S) -> Observed<S> {
        Observed { inner }
    }
}

/// Runs the request inside a span carrying its `X-Request-Id` (so every log line of
/// the request has it), then logs one line and records the request metrics.
#[derive(Clone)]
pub struct Observed<S> {
    inner: S,
}

impl<S> Service<Request> for Observed<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let method = request.method().clone();
        // Nothing that shares hyper's read buffer (the URI, header values) is kept for
        // the life of the request: with 1,000 requests in flight, that pinned 8 KB or
        // more each. The path is copied instead (whether the log line is written can
        // depend on the span's fields, so it is not decided here).
        let path = request.uri().path().to_owned();
        let route = route_label(request.extensions().get::<MatchedPath>());
        // The client's id is kept when it is printable (ASCII, which is what `to_str`
        // accepts), so logs can carry it; otherwise a fresh one.
        let request_id = match request.headers().get(&X_REQUEST_ID) {
            Some(sent) if sent.to_str().is_ok() => {
                HeaderValue::from_bytes(sent.as_bytes()).expect("already a valid value")
            }
            _ => fresh_request_id(),
        };
        let span = tracing::info_span!(
            "request",
            request_id = %request_id.to_str().unwrap_or_default()
        );
        let answer = self.inner.call(request).instrument(span.clone());
        Box::pin(async move {
            let mut response = answer.await?;
            let elapsed = started.elapsed();
            log(&span, &method, &path, response.status(), elapsed);
            record(method_label(&method), route, response.status(), elapsed);
            // The request's id wins over any a handler set: one id per request.
            response.headers_mut().insert(X_REQUEST_ID, request_id);
            Ok(response)
        })
    }
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A random (v4) UUID, formatted without going through `fmt`.
fn fresh_request_id() -> HeaderValue {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
    HeaderValue::from_str(text).expect("a UUID is a valid header value")
}

/// A route's template keeps label values few; other routes (the docs) share the label
/// "other", unknown paths "unmatched".
fn route_label(matched: Option<&MatchedPath>) -> &'static str {
    match matched {
        Some(matched) => super::routes::template(matched.as_str()).unwrap_or("other"),
        None => "unmatched",
    }
}

/// Only known methods become labels: clients must not mint metric series.
fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// The request's log line; its fields are formatted only when it is enabled.
fn log(span: &Span, method: &Method, path: &str, status: StatusCode, elapsed: Duration) {
    span.in_scope(|| {
        tracing::info!(
            %method,
            path,
            status = status.as_u16(),
            latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            "request"
        );
    });
}

type Labels = (&'static str, &'static str, u16);

thread_local! {
    /// This thread's handles into the global recorder, by label set.
    static HANDLES: RefCell<HashMap<Labels, (Counter, Histogram)>> = RefCell::default();
}

fn record(method: &'static str, route: &'static str, status: StatusCode, elapsed: Duration) {
    HANDLES.with_borrow_mut(|handles| {
        let (counter, histogram) = handles
            .entry((method, route, status.as_u16()))
            .or_insert_with(|| {
                let status = STATUS_LABELS
                    .get(usize::from(status.as_u16()))
                    .map_or("other", String::as_str);
                let labels = [("method", method), ("route", route), ("status", status)];
                (
                    metrics::counter!("http_requests_total", &labels),
                    metrics::histogram!("http_request_duration_seconds", &labels),
                )
            });
        counter.increment(1);
        histogram.record(elapsed.as_secs_f64());
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_status_code_has_a_label() {
        assert_eq!(super::STATUS_LABELS[201], "201");
        assert_eq!(super::STATUS_LABELS[999], "999");
    }
}
