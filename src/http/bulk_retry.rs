//! `POST /orders/retry`: every dead letter matching a filter back to the queue at
//! once, or with `dry_run` only counted, so a page or a script can say "retry these
//! 42?" and then retry exactly those.

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::admission::require_admin;
use super::error::{ApiError, CommonProblems, Problem};
use super::extract::JsonBody;
use super::state::AppState;
use crate::auth::Caller;
use crate::domain::{FieldError, OrderStatus, Timestamp, UserId, now};
use crate::store::FailedFilter;
use crate::wire::rfc3339;

/// Orders requeued per transaction: the statement stays short however many match.
const BATCH: usize = 500;

/// The body of `POST /orders/retry`. Every member is optional; `{}` retries every
/// `Failed` order.
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "Documents the body, which the handler reads member by member."
)]
pub struct BulkRetryRequest {
    /// Only this user's orders.
    #[schema(min_length = 1, max_length = 255)]
    user_id: Option<String>,
    /// The listing's status filter, if a client passes it on: only `Failed` orders can
    /// be retried, so only `Failed` is accepted.
    #[schema(value_type = Option<OrderStatus>)]
    status: Option<String>,
    /// RFC 3339: only orders dead-lettered at or before this time (default, and at
    /// most: now). Pass the `failed_by` of a dry run to retry exactly what it counted.
    #[schema(format = DateTime)]
    failed_by: Option<String>,
    /// Count what would be retried, and change nothing.
    dry_run: Option<bool>,
}

/// What a bulk retry did (or, with `dry_run`, would do).
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkRetried {
    dry_run: bool,
    /// `Failed` orders that matched (with `dry_run`: match now).
    matched: u64,
    /// Orders put back to `Pending` (0 with `dry_run`).
    requeued: u64,
    /// The time bound used: orders dead-lettered at or before it.
    #[schema(format = DateTime)]
    failed_by: String,
}

#[utoipa::path(
    post,
    path = "/orders/retry",
    operation_id = "retry_failed_orders",
    tag = "orders",
    request_body(content = BulkRetryRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "How many `Failed` orders matched and were put back \
                                      to `Pending` (each with an `order.retried` event)",
         body = BulkRetried),
        (status = 400, description = "Not JSON, or not an object", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid members, each named", body = Problem, content_type = "application/problem+json"),
        CommonProblems,
    ),
    security(("bearer" = [])),
)]
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody,
) -> Result<Json<BulkRetried>, ApiError> {
    require_admin(&caller)?;
    let started = now();
    let (filter, dry_run) = parse(&body.parse::<Map<String, Value>>()?, started)?;
    let failed_by = rfc3339(filter.failed_by.unwrap_or(started));
    if dry_run {
        let matched = state.store.count_failed(&filter).await?;
        return Ok(Json(BulkRetried {
            dry_run,
            matched,
            requeued: 0,
            failed_by,
        }));
    }
    // Until a batch finds nothing: a batch can come back short while matching orders
    // remain (rows another request changed under it are passed over). It ends, since
    // an order requeued now can only fail again after `failed_by`.
    let mut requeued = 0;
    loop {
        let batch = state
            .store
            .retry_failed_matching(&filter, now(), BATCH)
            .await?;
        if batch == 0 {
            break;
        }
        requeued += batch;
    }
    Ok(Json(BulkRetried {
        dry_run,
        matched: requeued,
        requeued,
        failed_by,
    }))
}

/// The filter and `dry_run`, every bad member named; `failed_by` is at most `now`
/// (its default), so orders that fail again while the retry runs are not taken again,
/// and it ends.
fn parse(members: &Map<String, Value>, now: Timestamp) -> Result<(FailedFilter, bool), ApiError> {
    let mut errors = Vec::new();
    let user_id = match members.get("user_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => UserId::parse(text.clone())
            .map_err(|error| errors.push(error))
            .ok()
            .map(|user| user.as_str().to_owned()),
        Some(_) => {
            errors.push(FieldError::new("user_id", "must be a string"));
            None
        }
    };
    match members.get("status") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) if text == OrderStatus::Failed.as_str() => {}
        Some(_) => errors.push(FieldError::new(
            "status",
            "only Failed orders can be retried: must be \"Failed\" or absent",
        )),
    }
    let failed_by = match members.get("failed_by") {
        None | Some(Value::Null) => now,
        Some(Value::String(text)) => chrono::DateTime::parse_from_rfc3339(text)
            .map(|at| at.with_timezone(&Utc))
            .unwrap_or_else(|_| {
                errors.push(FieldError::new(
                    "failed_by",
                    "must be an RFC 3339 time, such as 2026-12-01T00:00:00Z",
                ));
                now
            }),
        Some(_) => {
            errors.push(FieldError::new("failed_by", "must be a string"));
            now
        }
    };
    let dry_run = match members.get("dry_run") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(dry_run)) => *dry_run,
        Some(_) => {
            errors.push(FieldError::new("dry_run", "must be true or false"));
            false
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let filter = FailedFilter {
        user_id,
        failed_by: Some(failed_by.min(now)),
    };
    Ok((filter, dry_run))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(json: Value) -> Map<String, Value> {
        json.as_object().unwrap().clone()
    }

    #[test]
    fn an_empty_body_takes_every_order_that_failed_by_now() {
        let now = crate::domain::from_millis(1_000);
        let (filter, dry_run) = parse(&members(serde_json::json!({})), now).unwrap();
        assert_eq!(filter.user_id, None);
        assert_eq!(filter.failed_by, Some(now));
        assert!(!dry_run);
    }

    #[test]
    fn a_time_to_come_is_taken_as_now() {
        let now = crate::domain::from_millis(1_000);
        let body = serde_json::json!({"failed_by": "2999-01-01T00:00:00Z"});
        let (filter, _) = parse(&members(body), now).unwrap();
        assert_eq!(filter.failed_by, Some(now));
    }

    #[test]
    fn every_bad_member_is_named() {
        let now = crate::domain::from_millis(1_000);
        let body = serde_json::json!({"user_id": 7, "status": "Pending",
                                      "failed_by": "yesterday", "dry_run": "yes"});
        let Err(ApiError::Validation(errors)) = parse(&members(body), now) else {
            panic!("refused");
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["user_id", "status", "failed_by", "dry_run"]);
    }
}
