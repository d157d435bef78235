//! The HTTP processor: each attempt is a signed `POST` of the order to the shop's
//! endpoint (`PROCESSOR_URL`), and the answer's status decides what follows: done,
//! never again, or later.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Response, StatusCode, Url};
use tracing::warn;

use super::{ProcessingError, Processor};
use crate::domain::{MAX_RESULT_BYTES, Order, OrderResult};
use crate::signature::SigningSecret;
use crate::wire::OrderBody;

/// How much of a refusal's answer `last_error` keeps.
const ERROR_BODY_BYTES: usize = 1024;

/// Calls one endpoint for every attempt, through one pooled client.
pub struct HttpProcessor {
    client: reqwest::Client,
    url: Url,
    secret: SigningSecret,
}

impl HttpProcessor {
    /// A client that keeps up to `connections` idle connections to the endpoint (one
    /// per worker), follows no redirect, and speaks HTTPS with rustls.
    pub fn new(url: Url, secret: SigningSecret, connections: usize) -> reqwest::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(connections)
            .user_agent(concat!("order-processor/", env!("CARGO_PKG_VERSION")))
            .use_rustls_tls()
            .build()?;
        Ok(Self {
            client,
            url,
            secret,
        })
    }

    /// The request body: the order as `GET /orders/{id}` shows it, plus `attempt`.
    fn body(order: &Order) -> Vec<u8> {
        let mut body =
            serde_json::to_vec(&OrderBody::full(order)).expect("an order serialises to JSON");
        // `{...}` becomes `{...,"attempt":n}`: the amount stays the exact text it is.
        body.pop();
        body.extend_from_slice(format!(",\"attempt\":{}}}", order.attempts).as_bytes());
        body
    }

    /// The headers of one attempt, signed over `body`.
    fn headers(&self, order: &Order, body: &[u8]) -> HeaderMap {
        let order_id = order.id.to_string();
        let message_id = format!("{order_id}_{}", order.attempts);
        let timestamp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs() as i64);
        let signature = self.secret.sign(&message_id, timestamp, body);
        let mut headers = HeaderMap::new();
        let mut set = |name: &'static str, value: String| {
            headers.insert(
                name,
                HeaderValue::try_from(value).expect("ids, numbers and base64 are header-safe"),
            );
        };
        set("idempotency-key", order_id);
        set("x-order-attempt", order.attempts.to_string());
        set("x-request-id", uuid::Uuid::new_v4().to_string());
        set("webhook-id", message_id);
        set("webhook-timestamp", timestamp.to_string());
        set("webhook-signature", signature);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers
    }
}

#[async_trait]
impl Processor for HttpProcessor {
    async fn process(&self, order: &Order) -> Result<Option<OrderResult>, ProcessingError> {
        let body = Self::body(order);
        let headers = self.headers(order, &body);
        let response = self
            .client
            .post(self.url.clone())
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|err| ProcessingError::transient(unreachable(err)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(kept_result(order, response).await);
        }
        let retry_after = retry_after(response.headers());
        let message = format!(
            "processor answered {}: {}",
            status,
            error_text(response).await
        );
        if retries(status) {
            Err(ProcessingError::Transient {
                message,
                retry_after,
            })
        } else {
            Err(ProcessingError::Permanent { message })
        }
    }
}

/// Whether an unsuccessful status is worth another attempt: the server's trouble, or
/// the client's that time can mend (a timeout, a conflict, too early, too many).
/// Every other answer (a refusal, or a redirect, which is not followed) would be the
/// same next time.
fn retries(status: StatusCode) -> bool {
    status.is_server_error()
        || matches!(
            status,
            StatusCode::REQUEST_TIMEOUT
                | StatusCode::CONFLICT
                | StatusCode::TOO_EARLY
                | StatusCode::TOO_MANY_REQUESTS
        )
}

/// A success's body as the order's result, when it is a JSON object within the limit.
/// A larger one is not kept (the order still completes: the work is done).
async fn kept_result(order: &Order, response: Response) -> Option<OrderResult> {
    let (bytes, complete) = read_up_to(response, MAX_RESULT_BYTES + 1).await;
    let not_kept = |reason: &dyn std::fmt::Display| {
        warn!(order_id = %order.id, %reason, "the processor's answer is not kept as the order's result");
        None
    };
    if !complete {
        return not_kept(&format_args!(
            "the answer is over the {MAX_RESULT_BYTES}-byte limit for a result, or was cut off"
        ));
    }
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return not_kept(&"the answer is not UTF-8");
    };
    match OrderResult::parse(text) {
        Ok(result) => Some(result),
        // An empty body (a bare 200 or 204) is no result, and nothing to warn of.
        Err(_) if text.trim().is_empty() => None,
        Err(rejected) => not_kept(&rejected),
    }
}

/// The start of a refusal's body, for `last_error`.
async fn error_text(response: Response) -> String {
    let (bytes, _) = read_up_to(response, ERROR_BODY_BYTES).await;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(ERROR_BODY_BYTES)]);
    if text.trim().is_empty() {
        "(no body)".to_owned()
    } else {
        text.into_owned()
    }
}

/// Reads at most about `limit` bytes of the body (never more than a chunk past it);
/// says whether the whole body was read without error.
async fn read_up_to(mut response: Response, limit: usize) -> (Vec<u8>, bool) {
    let mut bytes = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                bytes.extend_from_slice(&chunk);
                if bytes.len() >= limit {
                    return (bytes, false);
                }
            }
            Ok(None) => return (bytes, true),
            Err(_) => return (bytes, false),
        }
    }
}

/// `Retry-After` as seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

/// Why the endpoint could not be reached or did not answer, with the causes; without
/// the URL, which may hold credentials and goes into `last_error`, which the order's
/// owner reads.
fn unreachable(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut text = format!("calling the processor failed: {err}");
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_that_time_can_mend_are_retried() {
        for code in [408, 409, 425, 429, 500, 502, 503, 504] {
            assert!(retries(StatusCode::from_u16(code).unwrap()), "{code}");
        }
        for code in [301, 302, 400, 401, 403, 404, 410, 413, 422] {
            assert!(!retries(StatusCode::from_u16(code).unwrap()), "{code}");
        }
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        headers.insert(RETRY_AFTER, HeaderValue::try_from(later).unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(wait > Duration::from_secs(110) && wait <= Duration::from_secs(120));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }
}
