//! The event log over HTTP: one order's history (`GET /orders/{order_id}/events`) and
//! every order's events by position (`GET /events`), as JSON.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};

use super::admission::require_admin;
use super::error::{ApiError, CommonProblems, Problem};
use super::order_json::{EventPage, History};
use super::orders::{parse_id, visible_order};
use super::state::AppState;
use crate::auth::Caller;
use crate::domain::FieldError;

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1_000;
const PARAMETERS: [&str; 2] = ["after", "limit"];

/// `GET /orders/{order_id}/events`: the order's events, oldest first.
#[utoipa::path(
    get,
    path = "/orders/{order_id}/events",
    operation_id = "get_order_events",
    tag = "events",
    params(("order_id" = String, Path, description = "The order's id (a UUID)")),
    responses(
        (status = 200, description = "The order's events, oldest first", body = History),
        (status = 404, description = "No such order (or not yours)", body = Problem, content_type = "application/problem+json"),
        CommonProblems,
    ),
    security(("bearer" = [])),
)]
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<History>, ApiError> {
    let (order_id, id) = parse_id(path)?;
    visible_order(&state, &caller, id, &order_id).await?;
    let events = state.store.order_events(id, 0).await?;
    Ok(Json(History::new(&events)))
}

/// The query of `GET /events`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "Documents the parameters, which the handler checks one by one."
)]
pub struct FeedParams {
    /// Only events with a larger position (default 0: from the start of the log).
    #[param(minimum = 0)]
    after: Option<i64>,
    /// Page size, 1 to 1,000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// `GET /events`: every order's events by position, a page at a time.
#[utoipa::path(
    get,
    path = "/events",
    operation_id = "list_events",
    tag = "events",
    params(FeedParams),
    responses(
        (status = 200, description = "The next events by position, and where to go on from", body = EventPage),
        (status = 400, description = "Unknown or invalid parameters, each named", body = Problem, content_type = "application/problem+json"),
        CommonProblems,
    ),
    security(("bearer" = [])),
)]
pub async fn feed(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<EventPage>, ApiError> {
    require_admin(&caller)?;
    let Query(params) = query.map_err(|rejection| {
        ApiError::InvalidQuery(vec![FieldError::new("query", rejection.body_text())])
    })?;
    let (after, limit) = parse(&params).map_err(ApiError::InvalidQuery)?;
    let events = state.store.events_after(after, limit).await?;
    Ok(Json(EventPage::new(&events, after)))
}

/// `after` and `limit`, every bad or unknown parameter named.
fn parse(params: &HashMap<String, String>) -> Result<(i64, usize), Vec<FieldError>> {
    let mut errors: Vec<FieldError> = params
        .keys()
        .filter(|key| !PARAMETERS.contains(&key.as_str()))
        .map(|key| FieldError::new(key.clone(), "is not a known parameter"))
        .collect();
    let after = match params.get("after").map(|text| text.parse::<i64>()) {
        None => 0,
        Some(Ok(after)) if after >= 0 => after,
        Some(_) => {
            errors.push(FieldError::new(
                "after",
                "must be a position: an integer of 0 or more",
            ));
            0
        }
    };
    let limit = match params.get("limit").map(|text| text.parse::<usize>()) {
        None => DEFAULT_LIMIT,
        Some(Ok(limit)) if (1..=MAX_LIMIT).contains(&limit) => limit,
        Some(_) => {
            errors.push(FieldError::new(
                "limit",
                format!("must be an integer from 1 to {MAX_LIMIT}"),
            ));
            DEFAULT_LIMIT
        }
    };
    if errors.is_empty() {
        Ok((after, limit))
    } else {
        errors.sort_by(|a, b| a.field.cmp(&b.field));
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_feed_starts_at_the_beginning_a_hundred_at_a_time() {
        assert_eq!(parse(&params(&[])).unwrap(), (0, DEFAULT_LIMIT));
        assert_eq!(
            parse(&params(&[("after", "42"), ("limit", "1000")])).unwrap(),
            (42, 1000)
        );
    }

    #[test]
    fn every_bad_feed_parameter_is_named() {
        let errors = parse(&params(&[
            ("after", "-1"),
            ("limit", "1001"),
            ("from", "3"),
        ]))
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["after", "from", "limit"]);
        assert!(parse(&params(&[("after", "x")])).is_err());
        assert!(parse(&params(&[("limit", "0")])).is_err());
    }
}
