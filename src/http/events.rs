//! The event log over HTTP: one order's history (`GET /orders/{order_id}/events`) and
//! every order's events by position (`GET /events`), as JSON, or with
//! `Accept: text/event-stream` as Server-Sent Events that go on live.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::admission::require_reader;
use super::error::{ApiError, CommonProblems, Problem};
use super::orders::{parse_id, visible_order};
use super::query::{self, Checked, Params};
use super::state::AppState;
use super::stream_headers::{last_event_id, wants_stream};
use super::streams::Scope;
use crate::auth::Caller;
use crate::domain::FieldError;
use crate::wire::{EventPage, History};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1_000;
const PARAMETERS: [&str; 2] = ["after", "limit"];

/// `GET /orders/{order_id}/events`: the order's events, oldest first; as a stream,
/// then each new one until the order's last.
#[utoipa::path(
    get,
    path = "/orders/{order_id}/events",
    operation_id = "get_order_events",
    tag = "events",
    params(
        ("order_id" = String, Path, description = "The order's id (a UUID)"),
        ("Last-Event-ID" = Option<i64>, Header,
         description = "For a stream: resume after this position (the `id:` of the last event seen)"),
    ),
    responses(
        (status = 200, description = "The order's events, oldest first (JSON); or, with \
                                      `Accept: text/event-stream`, a stream of them: each as \
                                      `id: <position>`, `event: <type>`, `data: <the event>`, \
                                      then each new one as it commits, ending after \
                                      `order.completed` or `order.cancelled`",
         content((History = "application/json"), (String = "text/event-stream"))),
        (status = 204, description = "A stream asked for of a finished order whose client has \
                                      seen every event (after its Last-Event-ID): nothing \
                                      more will come, so reconnecting is pointless"),
        (status = 400, description = "A bad Last-Event-ID", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order (or not yours)", body = Problem, content_type = "application/problem+json"),
        CommonProblems,
    ),
    security(("bearer" = [])),
)]
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let (order_id, id) = parse_id(path)?;
    let order = visible_order(&state, &caller, id, &order_id).await?;
    if wants_stream(&headers) {
        let after = last_event_id(&headers)?.unwrap_or(0);
        let terminal = order.status.is_terminal();
        // A finished order whose client has seen everything: 204 tells a browser's
        // EventSource to stop reconnecting, where an empty stream would not.
        if terminal && state.store.order_events(id, after).await?.is_empty() {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        let scope = Scope::Order { id, terminal };
        return state.streams.open(state.store.clone(), scope, after);
    }
    let events = state.store.order_events(id, 0).await?;
    Ok(Json(History::new(&events)).into_response())
}

/// The query of `GET /events`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "Documents the parameters, which the handler checks one by one."
)]
pub struct FeedParams {
    /// Only events with a larger position (default 0: from the start of the log); or
    /// `latest`: after the last event committed now, to follow only what comes next.
    #[param(value_type = Option<String>, pattern = "^([0-9]{1,18}|latest)$", example = "latest")]
    after: Option<String>,
    /// Page size, 1 to 1,000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// `GET /events`: every order's events by position, a page at a time; as a stream,
/// then live.
#[utoipa::path(
    get,
    path = "/events",
    operation_id = "list_events",
    tag = "events",
    params(
        FeedParams,
        ("Last-Event-ID" = Option<i64>, Header,
         description = "For a stream: resume after this position (it wins over `after`)"),
    ),
    responses(
        (status = 200, description = "The next events by position, and where to go on from \
                                      (JSON); or, with `Accept: text/event-stream`, a stream \
                                      of every event after `after`, then each new one as it \
                                      commits",
         content((EventPage = "application/json"), (String = "text/event-stream"))),
        (status = 400, description = "Unknown or invalid parameters or a bad Last-Event-ID, each named", body = Problem, content_type = "application/problem+json"),
        CommonProblems,
    ),
    security(("bearer" = [])),
)]
pub async fn feed(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Response, ApiError> {
    require_reader(&caller)?;
    let params = query::read(query)?;
    let (after, limit) = parse(&params).map_err(ApiError::InvalidQuery)?;
    let after = match after {
        After::Position(after) => after,
        After::Latest => state.store.last_position().await?,
    };
    if wants_stream(&headers) {
        let after = last_event_id(&headers)?.unwrap_or(after);
        return state.streams.open(state.store.clone(), Scope::All, after);
    }
    let events = state.store.events_after(after, limit).await?;
    Ok(Json(EventPage::new(&events, after)).into_response())
}

/// Where a page of the feed starts.
#[derive(Debug, PartialEq, Eq)]
enum After {
    Position(i64),
    /// The last position committed when the request is answered.
    Latest,
}

/// `after` and `limit`, every bad or unknown parameter named.
fn parse(params: &Params) -> Result<(After, usize), Vec<FieldError>> {
    let mut checked = Checked::new(params, &PARAMETERS);
    let after = match checked.get("after").map(String::as_str) {
        None => After::Position(0),
        Some("latest") => After::Latest,
        Some(text) => match text.parse::<i64>() {
            Ok(after) if after >= 0 => After::Position(after),
            _ => {
                checked.fault(FieldError::new(
                    "after",
                    "must be a position (an integer of 0 or more) or `latest`",
                ));
                After::Position(0)
            }
        },
    };
    let limit = checked.limit(DEFAULT_LIMIT, MAX_LIMIT);
    checked.finish((after, limit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::query::params;

    #[test]
    fn the_feed_starts_at_the_beginning_a_hundred_at_a_time() {
        assert_eq!(
            parse(&params(&[])).unwrap(),
            (After::Position(0), DEFAULT_LIMIT)
        );
        assert_eq!(
            parse(&params(&[("after", "42"), ("limit", "1000")])).unwrap(),
            (After::Position(42), 1000)
        );
        assert_eq!(
            parse(&params(&[("after", "latest")])).unwrap(),
            (After::Latest, DEFAULT_LIMIT)
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
        assert!(parse(&params(&[("after", "Latest")])).is_err());
        assert!(parse(&params(&[("limit", "0")])).is_err());
    }
}
