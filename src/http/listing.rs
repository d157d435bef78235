//! `GET /orders`: orders newest first, filtered by status and user, with keyset
//! (cursor) pagination, so pages stay exact while new orders arrive.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, CommonProblems, Problem};
use super::query::{self, Checked, Params, cursor_after};
use super::state::AppState;
use super::status_json::one_of_the_statuses;
use crate::auth::Caller;
use crate::domain::{FieldError, OrderId, OrderStatus, UserId};
use crate::store::ListQuery;
use crate::wire::OrderBody;

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;
const PARAMETERS: [&str; 4] = ["status", "user_id", "limit", "cursor"];

/// A page of orders and the cursor of the next page (`null` on the last).
#[derive(Debug, Serialize, ToSchema)]
pub struct Page {
    orders: Vec<OrderBody>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

/// The query of `GET /orders`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "Documents the parameters, which the handler checks one by one."
)]
pub struct ListParams {
    /// Only orders in this status.
    #[param(value_type = Option<OrderStatus>)]
    status: Option<String>,
    /// Only this user's orders (admins; others always see only their own).
    #[param(min_length = 1, max_length = 255)]
    user_id: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/orders",
    operation_id = "list_orders",
    tag = "orders",
    params(ListParams),
    responses(
        (status = 200, description = "A page of orders, newest first", body = Page),
        (status = 400, description = "Unknown or invalid parameters, each named", body = Problem, content_type = "application/problem+json"),
        CommonProblems,
    ),
    security(("bearer" = [])),
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Json<Page>, ApiError> {
    let params = query::read(query)?;
    let mut list = parse(&params).map_err(ApiError::InvalidQuery)?;
    // A user lists only their own orders; only readers and admins may list someone
    // else's.
    if !caller.reads_all() {
        let subject = caller.subject().unwrap_or_default();
        match &list.user_id {
            Some(user_id) if user_id != subject => {
                return Err(ApiError::Forbidden(
                    "you may list only your own orders".into(),
                ));
            }
            _ => list.user_id = Some(subject.to_owned()),
        }
    }
    let limit = list.limit;
    // One more than asked tells whether another page follows.
    list.limit += 1;
    let mut orders = state.store.list(&list).await?;
    let next_cursor = (orders.len() > limit).then(|| {
        orders.truncate(limit);
        cursor_after(orders.last().expect("limit >= 1").id.as_uuid())
    });
    Ok(Json(Page {
        orders: orders.iter().map(OrderBody::full).collect(),
        next_cursor,
    }))
}

/// Checks every parameter and reports every offending one; unknown parameters are
/// refused, so a misspelt filter cannot silently list everything.
fn parse(params: &Params) -> Result<ListQuery, Vec<FieldError>> {
    let mut checked = Checked::new(params, &PARAMETERS);
    let mut query = ListQuery {
        limit: checked.limit(DEFAULT_LIMIT, MAX_LIMIT),
        ..ListQuery::default()
    };
    if let Some(status) = checked.get("status") {
        match status.parse::<OrderStatus>() {
            Ok(status) => query.status = Some(status),
            Err(_) => checked.fault(FieldError::new("status", one_of_the_statuses())),
        }
    }
    if let Some(user_id) = checked.get("user_id") {
        // The same rules as a stored user_id: a value that could never match is a mistake.
        match UserId::parse(user_id.clone()) {
            Ok(user_id) => query.user_id = Some(user_id.as_str().to_owned()),
            Err(err) => checked.fault(err),
        }
    }
    query.before = checked.cursor().map(OrderId::from_uuid);
    checked.finish(query)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::query::params;

    #[test]
    fn cursors_round_trip_and_strangers_are_refused() {
        let id = OrderId::new_at(crate::domain::now());
        let cursor = cursor_after(id.as_uuid());
        assert_eq!(
            parse(&params(&[("cursor", &cursor)])).unwrap().before,
            Some(id)
        );
        for stranger in ["not a cursor", "AAAA"] {
            let errors = parse(&params(&[("cursor", stranger)])).unwrap_err();
            assert_eq!(errors[0].field, "cursor");
        }
    }

    #[test]
    fn defaults_apply_when_nothing_is_asked() {
        let query = parse(&params(&[])).unwrap();
        assert_eq!(query.limit, DEFAULT_LIMIT);
        assert_eq!(
            (query.status, query.user_id, query.before),
            (None, None, None)
        );
    }

    #[test]
    fn every_bad_parameter_is_named() {
        let errors = parse(&params(&[
            ("status", "failed"),
            ("limit", "0"),
            ("cursor", "x"),
            ("stauts", "Failed"),
        ]))
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["cursor", "limit", "status", "stauts"]);
        assert!(parse(&params(&[("limit", "501")])).is_err());
        assert!(parse(&params(&[("limit", "500")])).is_ok());
    }
}
