//! `/orders/...` handlers: create an order, read it, read its status, retry a dead
//! letter, cancel. Each checks who may do what, then delegates to the domain and the
//! store.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::admission::require_admin;
use super::error::{ApiError, CommonProblems, Problem};
use super::extract::{JsonBody, OptionalJsonBody, no_such, path_id};
use super::idempotency::{self, IdempotencyKey};
use super::new_order_json::{NewOrderRequest, RawBody, parse_new_order};
use super::state::AppState;
use crate::auth::Caller;
use crate::domain::{CancelReason, Cause, FieldError, Order, OrderId, TRANSITIONS, now};
use crate::store::{CancelOutcome, RetryOutcome};
use crate::wire::{OrderBody, StatusBody};

/// `POST /orders`: validates, commits the order as `Pending`, then answers 201.
#[utoipa::path(
    post,
    path = "/orders",
    operation_id = "create_order",
    tag = "orders",
    request_body(content = NewOrderRequest, content_type = "application/json"),
    params(("Idempotency-Key" = Option<String>, Header,
            description = "1 to 255 characters; the same key and body replay the first answer")),
    responses(
        (status = 201, description = "Accepted as `Pending` (or the first answer to this \
                                      Idempotency-Key, replayed)",
         body = OrderBody,
         headers(("Location" = String, description = "/orders/{order_id}"),
                 ("Idempotent-Replayed" = String,
                  description = "`true` when this is the first answer to this \
                                 Idempotency-Key, replayed; absent otherwise"))),
        (status = 400, description = "Not JSON, not an object, or a bad Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body was not all received within BODY_READ_TIMEOUT_MS \
                                      of the headers; the connection is closed", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "This Idempotency-Key's first request is in flight", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (each named), or an Idempotency-Key \
                                      reused with another body", body = Problem, content_type = "application/problem+json"),
        CommonProblems,
    ),
    security(("bearer" = [])),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    key: Result<IdempotencyKey, ApiError>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    // A body that is not JSON is reported before a bad key, and a bad key before bad
    // fields.
    let raw = body.parse::<RawBody>()?;
    let IdempotencyKey(key) = key?;
    let new_order = parse_new_order(&raw, caller.subject())?;
    // The body shares hyper's read buffer; holding it while the order is written would
    // keep one such buffer (8 KB or more) alive per request in flight.
    drop(body);
    let order = Order::accept(new_order, now());
    if let Some(key) = key {
        return idempotency::create_once(&state, &caller, key, order).await;
    }
    // Counted while it waits for its commit: the log's consumers step aside for a burst.
    state.api_load.counting(state.store.insert(&order)).await?;
    state.orders_created.increment(1);
    let location = format!("/orders/{}", order.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(OrderBody::created(&order)),
    )
        .into_response())
}

/// `GET /orders/{order_id}`: the whole order.
#[utoipa::path(
    get,
    path = "/orders/{order_id}",
    operation_id = "get_order",
    tag = "orders",
    params(("order_id" = String, Path, description = "The order's id (a UUID)")),
    responses(
        (status = 200, description = "The order", body = OrderBody),
        (status = 404, description = "No such order (or not yours)", body = Problem, content_type = "application/problem+json"),
        CommonProblems,
    ),
    security(("bearer" = [])),
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<OrderBody>, ApiError> {
    let (order_id, id) = parse_id(path)?;
    let order = visible_order(&state, &caller, id, &order_id).await?;
    Ok(Json(OrderBody::full(&order)))
}

/// The order, if it exists and the caller may see it: someone else's order is a 404
/// exactly like a missing one, so ids cannot be probed.
pub(super) async fn visible_order(
    state: &AppState,
    caller: &Caller,
    id: OrderId,
    order_id: &str,
) -> Result<Order, ApiError> {
    match state.store.get(id).await? {
        Some(order) if caller.may_see(order.user_id.as_str()) => Ok(order),
        _ => Err(not_found(order_id)),
    }
}

/// `GET /orders/{order_id}/status`.
#[utoipa::path(
    get,
    path = "/orders/{order_id}/status",
    operation_id = "get_order_status",
    tag = "orders",
    params(("order_id" = String, Path, description = "The order's id (a UUID)")),
    responses(
        (status = 200, description = "The order's status", body = StatusBody),
        (status = 404, description = "No such order (or not yours)", body = Problem, content_type = "application/problem+json"),
        CommonProblems,
    ),
    security(("bearer" = [])),
)]
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<StatusBody>, ApiError> {
    let (order_id, id) = parse_id(path)?;
    // Readers and admins (and everyone, with authentication off) need only the status
    // column.
    let status = if caller.reads_all() {
        state.store.status(id).await?
    } else {
        Some(visible_order(&state, &caller, id, &order_id).await?.status)
    };
    let status = status.ok_or_else(|| not_found(&order_id))?;
    Ok(Json(StatusBody::new(status)))
}

/// `POST /orders/{order_id}/retry`: a dead letter back to the queue with a fresh
/// attempt budget; 409 for an order that is not `Failed`.
#[utoipa::path(
    post,
    path = "/orders/{order_id}/retry",
    operation_id = "retry_order",
    tag = "dead letters",
    params(("order_id" = String, Path, description = "The order's id (a UUID)")),
    responses(
        (status = 200, description = "Back in the queue as `Pending`, attempts reset", body = OrderBody),
        (status = 404, description = "No such order", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order is not `Failed`", body = Problem, content_type = "application/problem+json"),
        CommonProblems,
    ),
    security(("bearer" = [])),
)]
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<OrderBody>, ApiError> {
    require_admin(&caller)?;
    let (order_id, id) = parse_id(path)?;
    match state.store.retry_failed(id, now()).await? {
        RetryOutcome::Retried(order) => Ok(Json(OrderBody::full(&order))),
        RetryOutcome::NotFailed(status) => Err(ApiError::Conflict(format!(
            "only a Failed order can be retried; order {order_id} is {status}"
        ))),
        RetryOutcome::NotFound => Err(not_found(&order_id)),
    }
}

/// The body of `POST /orders/{order_id}/cancel`; optional.
#[derive(utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "Documents the body, which the handler reads member by member."
)]
pub struct CancelRequest {
    /// Why the order is called off: at most 500 characters, no NUL.
    #[schema(max_length = 500)]
    reason: Option<String>,
}

/// `POST /orders/{order_id}/cancel`: a `Pending` or `Failed` order becomes `Cancelled`
/// for good; an order already `Cancelled` is answered as it is.
#[utoipa::path(
    post,
    path = "/orders/{order_id}/cancel",
    operation_id = "cancel_order",
    tag = "orders",
    params(("order_id" = String, Path, description = "The order's id (a UUID)")),
    request_body(content = Option<CancelRequest>, content_type = "application/json",
                 description = "Optional: `{\"reason\": \"...\"}`"),
    responses(
        (status = 200, description = "`Cancelled` (now, or already: then unchanged)", body = OrderBody),
        (status = 400, description = "A body that is not a JSON object", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A token that may read the order (`orders:read`) but not change it", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order (or not yours)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The order is being processed, or is done", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "A body that is not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid `reason`", body = Problem, content_type = "application/problem+json"),
        CommonProblems,
    ),
    security(("bearer" = [])),
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    body: OptionalJsonBody,
) -> Result<Json<OrderBody>, ApiError> {
    let (order_id, id) = parse_id(path)?;
    let order = visible_order(&state, &caller, id, &order_id).await?;
    // A reader sees the order but may not change it.
    if !caller.may_change(order.user_id.as_str()) {
        return Err(ApiError::Forbidden(format!(
            "only its owner or a token with the `{}` scope may cancel an order",
            crate::auth::ADMIN_SCOPE
        )));
    }
    let reason = match &body.0 {
        Some(body) => cancel_reason(body)?,
        None => None,
    };
    match state.store.cancel(id, reason.as_ref(), now()).await? {
        CancelOutcome::Cancelled(order) | CancelOutcome::AlreadyCancelled(order) => {
            Ok(Json(OrderBody::full(&order)))
        }
        CancelOutcome::NotCancellable(status) => {
            let allowed: Vec<&str> = TRANSITIONS
                .iter()
                .filter(|t| t.cause == Cause::Cancel)
                .map(|t| t.from.as_str())
                .collect();
            Err(ApiError::Conflict(format!(
                "order {order_id} is {status}; only an order that is {} can be cancelled",
                allowed.join(" or ")
            )))
        }
        CancelOutcome::NotFound => Err(not_found(&order_id)),
    }
}

/// The `reason` member of a cancel's body: absent or `null` for none, else a string
/// within the domain's limits. Other members are ignored, as on every body.
fn cancel_reason(body: &JsonBody) -> Result<Option<CancelReason>, ApiError> {
    let members = body.parse::<serde_json::Map<String, serde_json::Value>>()?;
    match members.get("reason") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(text)) => CancelReason::parse(text.clone())
            .map(Some)
            .map_err(|err| ApiError::Validation(vec![err])),
        Some(_) => Err(ApiError::Validation(vec![FieldError::new(
            "reason",
            "must be a string",
        )])),
    }
}

/// The order a path names (404 for a malformed id, as for an unknown one).
pub(super) fn parse_id(
    path: Result<Path<String>, PathRejection>,
) -> Result<(String, OrderId), ApiError> {
    path_id(path, ORDER)
}

fn not_found(id: &str) -> ApiError {
    no_such(ORDER, id)
}

/// The resource, as 404 answers name it.
const ORDER: &str = "order";
