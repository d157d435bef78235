//! The HTTP processor: each attempt is a signed `POST` of the order to the shop's
//! endpoint (`PROCESSOR_URL`), and the answer's status decides what follows: done,
//! never again, or later.

use std::time::SystemTime;

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Response, StatusCode, Url};
use tracing::warn;

use super::{ProcessingError, Processor};
use crate::domain::{MAX_RESULT_BYTES, Order, OrderResult};
use crate::outbound::{error_text, read_up_to, retry_after, unreachable};
use crate::signature::SigningSecret;
use crate::wire::OrderBody;

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
            .map_err(|err| {
                ProcessingError::transient(unreachable("calling the processor failed", err))
            })?;
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
}
