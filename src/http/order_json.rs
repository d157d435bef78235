//! The JSON of orders: parsing a client's new order field by field (never through a
//! float for money), and the shapes the API answers with.

use std::collections::HashMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::error::ApiError;
use crate::domain::{FieldError, ItemIds, Money, NewOrder, Order, OrderStatus, UserId};

/// A request body: a JSON object whose values are kept as raw text until checked.
pub type RawBody = HashMap<String, Box<RawValue>>;

/// Checks each field's JSON type, then the domain's rules, and reports every offending
/// field at once (422). With a `subject` (the token's user), `user_id` may be left out,
/// and if present must be the subject (403).
pub fn parse_new_order(body: &RawBody, subject: Option<&str>) -> Result<NewOrder, ApiError> {
    let user_id = match (subject, present(body, "user_id")) {
        (Some(subject), Err(_)) => UserId::parse(subject.to_owned())
            .map_err(|_| FieldError::new("user_id", "the token's subject is not a valid user_id")),
        _ => field::<String>(body, "user_id", "must be a string").and_then(UserId::parse),
    };
    let item_ids = field::<Vec<String>>(body, "item_ids", "must be an array of strings")
        .and_then(ItemIds::parse);
    let total_amount = amount(body);
    let (user_id, item_ids, total_amount) = match (user_id, item_ids, total_amount) {
        (Ok(user_id), Ok(item_ids), Ok(total_amount)) => (user_id, item_ids, total_amount),
        (user_id, item_ids, total_amount) => {
            let errors = [user_id.err(), item_ids.err(), total_amount.err()];
            return Err(ApiError::Validation(errors.into_iter().flatten().collect()));
        }
    };
    if subject.is_some_and(|subject| subject != user_id.as_str()) {
        return Err(ApiError::Forbidden(
            "user_id must be the token's own user (or left out)".into(),
        ));
    }
    Ok(NewOrder {
        user_id,
        item_ids,
        total_amount,
    })
}

/// A present, non-null field of the expected JSON type.
fn field<T: DeserializeOwned>(
    body: &RawBody,
    name: &str,
    type_message: &str,
) -> Result<T, FieldError> {
    let raw = present(body, name)?;
    serde_json::from_str(raw.get()).map_err(|_| FieldError::new(name, type_message))
}

fn present<'a>(body: &'a RawBody, name: &str) -> Result<&'a RawValue, FieldError> {
    match body.get(name) {
        Some(raw) if raw.get() != "null" => Ok(raw),
        _ => Err(FieldError::new(name, "is required")),
    }
}

/// `total_amount` from the exact text of the JSON number: never through a float.
fn amount(body: &RawBody) -> Result<Money, FieldError> {
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
    pub fn created(order: &Order) -> Self {
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

pub fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `{"status": "Pending"}`.
#[derive(Debug, Serialize)]
pub struct StatusBody {
    status: OrderStatus,
}

impl StatusBody {
    pub fn new(status: OrderStatus) -> Self {
        Self { status }
    }
}

impl Serialize for OrderStatus {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}
