//! `GET /metrics/activity`: how many events of each type the log holds for each minute
//! of the last hour (or of `minutes`), every minute present: the dashboard's charts of
//! orders created, completed and dead-lettered, and its retry counts.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::admission::require_reader;
use super::error::{ApiError, CommonProblems, Problem};
use super::query::{self, Checked, Params};
use super::state::AppState;
use super::status_json::EventCounts;
use crate::auth::Caller;
use crate::domain::{FieldError, Timestamp, from_millis, now};
use crate::wire::rfc3339;

const DEFAULT_MINUTES: i64 = 60;
const MAX_MINUTES: i64 = 1_440;
const PARAMETERS: [&str; 1] = ["minutes"];
const MINUTE_MS: i64 = 60_000;

/// The query of `GET /metrics/activity`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "Documents the parameters, which the handler checks one by one."
)]
pub struct ActivityParams {
    /// How many minutes back, this one included: 1 to 1,440 (default 60).
    #[param(minimum = 1, maximum = 1440)]
    minutes: Option<u32>,
}

/// Events by minute, oldest first, and their totals.
#[derive(Debug, Serialize, ToSchema)]
pub struct Activity {
    /// One entry per minute, oldest first, the current (unfinished) minute last.
    minutes: Vec<ActivityMinute>,
    /// The same counts summed over every minute.
    totals: EventCounts,
}

/// One minute's events.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityMinute {
    /// The minute's start (RFC 3339).
    #[schema(format = DateTime)]
    at: String,
    counts: EventCounts,
}

#[utoipa::path(
    get,
    path = "/metrics/activity",
    operation_id = "get_activity",
    tag = "operations",
    params(ActivityParams),
    responses(
        (status = 200, description = "Events of each type by minute: `order.created`, \
                                      `order.completed` and `order.failed` (dead letters) \
                                      per minute, `order.attempt_failed` (automatic \
                                      retries) and `order.retried` (operators' retries)",
         body = Activity),
        (status = 400, description = "Unknown or invalid parameters, each named", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Neither a reader (`orders:read`) nor an admin", body = Problem, content_type = "application/problem+json"),
        CommonProblems,
    ),
    security(("bearer" = [])),
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Json<Activity>, ApiError> {
    require_reader(&caller)?;
    let params = query::read(query)?;
    let minutes = parse(&params).map_err(ApiError::InvalidQuery)?;
    let now = now();
    let last = now.timestamp_millis().div_euclid(MINUTE_MS);
    let first = last - (minutes - 1);
    let mut by_minute = vec![EventCounts::default(); minutes as usize];
    let mut totals = EventCounts::default();
    for count in state.store.activity(minute(first)).await? {
        let index = count.minute.timestamp_millis().div_euclid(MINUTE_MS) - first;
        // An event stamped after `now` (another instance's clock) counts in the last.
        let index = index.clamp(0, minutes - 1) as usize;
        by_minute[index].add(count.event_type, count.count);
        totals.add(count.event_type, count.count);
    }
    let minutes = by_minute
        .into_iter()
        .zip(first..)
        .map(|(counts, n)| ActivityMinute {
            at: rfc3339(minute(n)),
            counts,
        })
        .collect();
    Ok(Json(Activity { minutes, totals }))
}

/// The start of minute `n` since the epoch.
fn minute(n: i64) -> Timestamp {
    from_millis(n * MINUTE_MS)
}

/// `minutes`, checked.
fn parse(params: &Params) -> Result<i64, Vec<FieldError>> {
    let mut checked = Checked::new(params, &PARAMETERS);
    let minutes = match checked.get("minutes").map(|text| text.parse::<i64>()) {
        None => DEFAULT_MINUTES,
        Some(Ok(n)) if (1..=MAX_MINUTES).contains(&n) => n,
        Some(_) => {
            checked.fault(FieldError::new(
                "minutes",
                "must be an integer from 1 to 1440",
            ));
            DEFAULT_MINUTES
        }
    };
    checked.finish(minutes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::query::params;

    #[test]
    fn an_hour_unless_asked_for_one_to_a_day_of_minutes() {
        assert_eq!(parse(&params(&[])).unwrap(), 60);
        assert_eq!(parse(&params(&[("minutes", "1440")])).unwrap(), 1440);
        for bad in ["0", "1441", "-5", "x"] {
            assert!(parse(&params(&[("minutes", bad)])).is_err(), "{bad}");
        }
        assert!(parse(&params(&[("hours", "1")])).is_err());
    }
}
