//! `Idempotency-Key` on `POST /orders`, after the IETF draft "The Idempotency-Key HTTP
//! Header Field": the same key and body replay the first answer, the same key with
//! another body is refused (422), and a key whose first request is still running
//! answers 409. The key is committed in the same transaction as the order.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::state::AppState;
use crate::auth::Caller;
use crate::domain::{FieldError, Order, now};
use crate::store::{IdempotentResponse, KeyedInsert};
use crate::wire::OrderBody;

const HEADER: &str = "idempotency-key";
const MAX_KEY_CHARS: usize = 255;

/// The `Idempotency-Key` a request carries, if any (400 if it is malformed). Only the
/// key is copied out of the headers, which share hyper's read buffer.
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        key_from(&parts.headers).map(Self)
    }
}

/// The key a request carries, if any: 1 to 255 visible characters. The draft's
/// structured-field form (a quoted string) is accepted with or without the quotes.
fn key_from(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(HEADER) else {
        return Ok(None);
    };
    let invalid =
        |message: &str| ApiError::InvalidHeader(vec![FieldError::new("Idempotency-Key", message)]);
    let text = value
        .to_str()
        .map_err(|_| invalid("must be visible ASCII"))?
        .trim();
    let key = text
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or(text);
    if key.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if key.chars().count() > MAX_KEY_CHARS {
        return Err(invalid("must be at most 255 characters"));
    }
    Ok(Some(key.to_owned()))
}

/// Creates `order` under `key` exactly once per caller, or answers as the first time.
pub async fn create_once(
    state: &AppState,
    caller: &Caller,
    key: String,
    order: Order,
) -> Result<Response, ApiError> {
    // Keys belong to the token's user; with authentication off, all callers share one space.
    let scope = caller.subject().unwrap_or_default().to_owned();
    let _guard = state
        .idempotency_in_flight
        .enter(&scope, &key)
        .ok_or(ApiError::IdempotencyKeyInFlight)?;
    let live_since = now() - chrono::Duration::from_std(state.idempotency_ttl).unwrap_or_default();
    let fingerprint = fingerprint(&order);
    if let Some(first) = state.store.find_keyed(&scope, &key, live_since).await? {
        return replay(first, &fingerprint);
    }
    let body = serde_json::to_string(&OrderBody::created(&order)).expect("an order serialises");
    let response = IdempotentResponse {
        scope,
        key,
        fingerprint,
        order_id: order.id,
        status: StatusCode::CREATED.as_u16(),
        body,
        created_at: order.created_at,
    };
    let inserted = state
        .api_load
        .counting(state.store.insert_keyed(&order, &response, live_since))
        .await?;
    match inserted {
        KeyedInsert::Inserted => {
            state.orders_created.increment(1);
            Ok(answer(&response, false))
        }
        // Another instance committed the same key first: answer as it did.
        KeyedInsert::KeyTaken => {
            let first = state
                .store
                .find_keyed(&response.scope, &response.key, live_since)
                .await?
                .ok_or(ApiError::IdempotencyKeyInFlight)?;
            replay(first, &response.fingerprint)
        }
    }
}

/// The first answer again, if the request is the same; 422 if the key is reused.
fn replay(first: IdempotentResponse, fingerprint: &str) -> Result<Response, ApiError> {
    if first.fingerprint != fingerprint {
        return Err(ApiError::IdempotencyKeyReused);
    }
    Ok(answer(&first, true))
}

fn answer(stored: &IdempotentResponse, replayed: bool) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::CREATED);
    let mut response = (status, stored.body.clone()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(location) = HeaderValue::from_str(&format!("/orders/{}", stored.order_id)) {
        headers.insert(header::LOCATION, location);
    }
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// Identifies what was asked for, independent of JSON spelling: the same user, items
/// and amount give the same fingerprint.
fn fingerprint(order: &Order) -> String {
    let mut hash = Sha256::new();
    hash.update(order.user_id.as_str());
    for item in order.item_ids.as_slice() {
        hash.update([0]);
        hash.update(item);
    }
    hash.update([1]);
    hash.update(order.total_amount.cents().to_be_bytes());
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn keys_are_read_bare_or_quoted_and_bounded() {
        assert_eq!(key_from(&HeaderMap::new()).unwrap(), None);
        assert_eq!(key_from(&headers("abc")).unwrap().as_deref(), Some("abc"));
        assert_eq!(
            key_from(&headers("\"abc\"")).unwrap().as_deref(),
            Some("abc")
        );
        assert!(key_from(&headers("")).is_err());
        assert!(key_from(&headers(&"k".repeat(256))).is_err());
        assert!(key_from(&headers(&"k".repeat(255))).is_ok());
    }
}
