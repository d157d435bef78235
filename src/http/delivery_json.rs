//! The bodies of the deliveries API: a delivery as operators see it, a page of them,
//! and a recovery's request and answer.

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::error::ApiError;
use crate::domain::{Delivery, DeliveryStatus, EventType, FieldError, Timestamp};
use crate::wire::rfc3339;

/// One event owed to one endpoint, and how its attempts went.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WebhookDelivery)]
pub struct DeliveryBody {
    #[schema(format = Uuid)]
    id: String,
    #[schema(format = Uuid)]
    webhook_id: String,
    /// The event's id: the `webhook-id` header of every attempt.
    #[schema(format = Uuid)]
    event_id: String,
    event_type: EventType,
    #[schema(format = Uuid)]
    order_id: String,
    /// The event's place in its order's history.
    seq: u32,
    status: DeliveryStatus,
    /// Attempts made (a fresh schedule starts from 0 after an operator's retry).
    attempts: u32,
    /// While pending: when the next attempt may start; `null` while an earlier event
    /// of the order is still owed to the endpoint, and once done.
    #[schema(format = DateTime)]
    next_attempt_at: Option<String>,
    #[schema(format = DateTime)]
    last_attempt_at: Option<String>,
    /// The last answer's status code; `null` without an answer.
    last_status_code: Option<u16>,
    /// The last attempt's error: the first 1 KB of the answer, or why there was none.
    last_error: Option<String>,
    /// When the delivery was owed.
    #[schema(format = DateTime)]
    created_at: String,
    /// When it was delivered or failed for good.
    #[schema(format = DateTime)]
    finished_at: Option<String>,
}

impl DeliveryBody {
    pub fn new(delivery: &Delivery) -> Self {
        Self {
            id: delivery.id.to_string(),
            webhook_id: delivery.endpoint_id.to_string(),
            event_id: delivery.event_id.hyphenated().to_string(),
            event_type: delivery.event_type,
            order_id: delivery.order_id.to_string(),
            seq: delivery.seq,
            status: delivery.status,
            attempts: delivery.attempts,
            next_attempt_at: delivery.next_attempt_at.map(rfc3339),
            last_attempt_at: delivery.last_attempt_at.map(rfc3339),
            last_status_code: delivery.last_status_code,
            last_error: delivery.last_error.clone(),
            created_at: rfc3339(delivery.created_at),
            finished_at: delivery.finished_at.map(rfc3339),
        }
    }
}

/// A page of an endpoint's deliveries, newest first, and the cursor of the next.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    pub deliveries: Vec<DeliveryBody>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// The body of `POST /webhooks/{webhook_id}/recover`.
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "Documents the body, which the handler reads member by member."
)]
pub struct RecoverRequest {
    /// RFC 3339: failed deliveries owed at this time or later are sent again.
    #[schema(format = DateTime)]
    since: String,
}

/// What a recovery did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Recovered {
    /// Failed deliveries owed again.
    pub recovered: u64,
}

/// The `since` of a recovery's body (422 naming it otherwise). Unknown members are
/// ignored, as on every body.
pub fn read_since(members: &Map<String, Value>) -> Result<Timestamp, ApiError> {
    let error = |message: &str| ApiError::Validation(vec![FieldError::new("since", message)]);
    match members.get("since") {
        None => Err(error("is required")),
        Some(Value::String(text)) => chrono::DateTime::parse_from_rfc3339(text)
            .map(|at| at.with_timezone(&chrono::Utc))
            .map_err(|_| error("must be an RFC 3339 time, such as 2026-12-01T00:00:00Z")),
        Some(_) => Err(error("must be a string")),
    }
}
