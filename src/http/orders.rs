//! `/orders`: create an order, read it, read its status.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::error::ApiError;
use super::extract::JsonBody;
use super::state::AppState;
use crate::domain::{
    FieldError, ItemIds, Money, NewOrder, Order, OrderId, OrderStatus, UserId, now,
};
use crate::store::RetryOutcome;

/// `POST /orders`: validates, commits the order as `Pending`, then answers 201.
pub async fn create(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<HashMap<String, Box<RawValue>>>,
) -> Result<impl IntoResponse, ApiError> {
    let new_order = parse_new_order(&body).map_err(ApiError::Validation)?;
    let order = Order::accept(new_order, now());
    state.store.insert(&order).await?;
    metrics::counter!("orders_created_total").increment(1);
    let location = format!("/orders/{}", order.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(OrderBody::created(&order)),
    ))
}

/// `GET /orders/{order_id}`: the whole order.
pub async fn get(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<OrderBody>, ApiError> {
    let (order_id, id) = parse_id(path)?;
    let order = state
        .store
        .get(id)
        .await?
        .ok_or_else(|| not_found(&order_id))?;
    Ok(Json(OrderBody::full(&order)))
}

/// `GET /orders/{order_id}/status`.
pub async fn status(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<StatusBody>, ApiError> {
    let (order_id, id) = parse_id(path)?;
    let status = state
        .store
        .status(id)
        .await?
        .ok_or_else(|| not_found(&order_id))?;
    Ok(Json(StatusBody { status }))
}

/// `POST /orders/{order_id}/retry`: a dead letter back to the queue with a fresh
/// attempt budget; 409 for an order that is not `Failed`.
pub async fn retry(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<OrderBody>, ApiError> {
    let (order_id, id) = parse_id(path)?;
    match state.store.retry_failed(id, now()).await? {
        RetryOutcome::Retried(order) => Ok(Json(OrderBody::full(&order))),
        RetryOutcome::NotFailed(status) => Err(ApiError::Conflict(format!(
            "only a Failed order can be retried; order {order_id} is {status}"
        ))),
        RetryOutcome::NotFound => Err(not_found(&order_id)),
    }
}

/// A malformed id (even one that is not UTF-8 once decoded) names no order, so it is
/// a 404 like an unknown one.
fn parse_id(path: Result<Path<String>, PathRejection>) -> Result<(String, OrderId), ApiError> {
    let Ok(Path(text)) = path else {
        return Err(ApiError::NotFound("no such order".into()));
    };
    match text.parse() {
        Ok(id) => Ok((text, id)),
        Err(_) => Err(not_found(&text)),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no order with id {id:?}"))
}

/// Checks each field's JSON type, then the domain's rules, and reports every
/// offending field at once.
fn parse_new_order(body: &HashMap<String, Box<RawValue>>) -> Result<NewOrder, Vec<FieldError>> {
    let user_id = field::<String>(body, "user_id", "must be a string").and_then(UserId::parse);
    let item_ids = field::<Vec<String>>(body, "item_ids", "must be an array of strings")
        .and_then(ItemIds::parse);
    let total_amount = amount(body);
    match (user_id, item_ids, total_amount) {
        (Ok(user_id), Ok(item_ids), Ok(total_amount)) => Ok(NewOrder {
            user_id,
            item_ids,
            total_amount,
        }),
        (user_id, item_ids, total_amount) => {
            Err([user_id.err(), item_ids.err(), total_amount.err()]
                .into_iter()
                .flatten()
                .collect())
        }
    }
}

/// A present, non-null field of the expected JSON type.
fn field<T: DeserializeOwned>(
    body: &HashMap<String, Box<RawValue>>,
    name: &str,
    type_message: &str,
) -> Result<T, FieldError> {
    let raw = present(body, name)?;
    serde_json::from_str(raw.get()).map_err(|_| FieldError::new(name, type_message))
}

fn present<'a>(
    body: &'a HashMap<String, Box<RawValue>>,
    name: &str,
) -> Result<&'a RawValue, FieldError> {
    match body.get(name) {
        Some(raw) if raw.get() != "null" => Ok(raw),
        _ => Err(FieldError::new(name, "is required")),
    }
}

/// `total_amount` from the exact text of the JSON number: never through a float.
fn amount(body: &HashMap<String, Box<RawValue>>) -> Result<Money, FieldError> {
    const NAME: &str = "total_amount";
    let text = present(body, NAME)?.get();
    if !text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return Err(FieldError::new(NAME, "must be a number"));
    }
    Money::parse_decimal(text).map_err(|err| FieldError::new(NAME, err.to_string()))
}

/// An order as the API shows it. `completed_at` and `attempts` appear on the
/// full view; the creation answer keeps the reference's exact field set.
#[derive(Debug, Serialize)]
pub struct OrderBody {
    order_id: String,
    user_id: String,
    item_ids: Vec<String>,
    /// The amount as a JSON number with the exact decimal value stored.
    total_amount: Box<RawValue>,
    status: OrderStatus,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    completed_at: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failed_at: Option<Option<String>>,
}

impl OrderBody {
    fn created(order: &Order) -> Self {
        Self {
            order_id: order.id.to_string(),
            user_id: order.user_id.as_str().to_owned(),
            item_ids: order.item_ids.as_slice().to_vec(),
            total_amount: RawValue::from_string(order.total_amount.to_string())
                .expect("a decimal is a JSON number"),
            status: order.status,
            created_at: rfc3339(order.created_at),
            completed_at: None,
            attempts: None,
            last_error: None,
            failed_at: None,
        }
    }

    /// Every field, `null` where unset: the answer of `GET /orders/{id}` and listings.
    pub fn full(order: &Order) -> Self {
        Self {
            completed_at: Some(order.completed_at.map(rfc3339)),
            attempts: Some(order.attempts),
            last_error: Some(order.last_error.clone()),
            failed_at: Some(order.failed_at.map(rfc3339)),
            ..Self::created(order)
        }
    }
}

fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `{"status": "Pending"}`.
#[derive(Debug, Serialize)]
pub struct StatusBody {
    status: OrderStatus,
}

impl Serialize for OrderStatus {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}
