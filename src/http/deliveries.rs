//! `/webhooks/{webhook_id}/deliveries...` and `/recover` handlers (admin): an
//! endpoint's deliveries, one sent again, every failed one since a time sent again.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use serde_json::{Map, Value};
use utoipa::IntoParams;

use super::admission::{require_admin, require_reader};
use super::delivery_json::{DeliveryBody, DeliveryPage, RecoverRequest, Recovered, read_since};
use super::error::{ApiError, CommonProblems, Problem};
use super::extract::{JsonBody, no_such, path_id};
use super::query::{self, Checked, Params, cursor_after};
use super::state::AppState;
use super::status_json::one_of_the_delivery_statuses;
use crate::auth::Caller;
use crate::domain::{DeliveryId, DeliveryStatus, FieldError, WebhookId, now};
use crate::store::DeliveryQuery;

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;
const PARAMETERS: [&str; 3] = ["status", "limit", "cursor"];

/// The query of `GET /webhooks/{webhook_id}/deliveries`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "Documents the parameters, which the handler checks one by one."
)]
pub struct DeliveryParams {
    /// Only deliveries in this status.
    #[param(value_type = Option<DeliveryStatus>)]
    status: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// `GET /webhooks/{webhook_id}/deliveries`: newest first, with cursor pagination.
#[utoipa::path(
    get,
    path = "/webhooks/{webhook_id}/deliveries",
    operation_id = "list_webhook_deliveries",
    tag = "webhooks",
    params(("webhook_id" = String, Path, description = "The endpoint's id (a UUID)"), DeliveryParams),
    responses(
        (status = 200, description = "A page of the endpoint's deliveries, newest first", body = DeliveryPage),
        (status = 400, description = "Unknown or invalid parameters, each named", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Neither a reader (`orders:read`) nor an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
        CommonProblems,
    ),
    security(("bearer" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Json<DeliveryPage>, ApiError> {
    require_reader(&caller)?;
    let endpoint = existing(&state, path).await?;
    let params = query::read(query)?;
    let mut query = parse(&params, endpoint).map_err(ApiError::InvalidQuery)?;
    let limit = query.limit;
    // One more than asked tells whether another page follows.
    query.limit += 1;
    let mut deliveries = state.store.deliveries(&query).await?;
    let next_cursor = (deliveries.len() > limit).then(|| {
        deliveries.truncate(limit);
        cursor_after(deliveries.last().expect("limit >= 1").id.as_uuid())
    });
    Ok(Json(DeliveryPage {
        deliveries: deliveries.iter().map(DeliveryBody::new).collect(),
        next_cursor,
    }))
}

fn parse(params: &Params, endpoint: WebhookId) -> Result<DeliveryQuery, Vec<FieldError>> {
    let mut checked = Checked::new(params, &PARAMETERS);
    let limit = checked.limit(DEFAULT_LIMIT, MAX_LIMIT);
    let status = checked.get("status").and_then(|text| match text.parse() {
        Ok(status) => Some(status),
        Err(_) => {
            checked.fault(FieldError::new("status", one_of_the_delivery_statuses()));
            None
        }
    });
    let before = checked.cursor().map(DeliveryId::from_uuid);
    checked.finish(DeliveryQuery {
        endpoint_id: endpoint,
        status,
        before,
        limit,
    })
}

/// `POST /webhooks/{webhook_id}/deliveries/{delivery_id}/retry`: sends one again.
#[utoipa::path(
    post,
    path = "/webhooks/{webhook_id}/deliveries/{delivery_id}/retry",
    operation_id = "retry_webhook_delivery",
    tag = "webhooks",
    params(
        ("webhook_id" = String, Path, description = "The endpoint's id (a UUID)"),
        ("delivery_id" = String, Path, description = "The delivery's id (a UUID)"),
    ),
    responses(
        (status = 200, description = "Owed again with a fresh schedule: due now, or once \
                                      an earlier event of its order owed to the endpoint \
                                      is done", body = DeliveryBody),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint, or no such delivery of it", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "An attempt is in flight; its outcome is recorded shortly", body = Problem, content_type = "application/problem+json"),
        CommonProblems,
    ),
    security(("bearer" = [])),
)]
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<DeliveryBody>, ApiError> {
    require_admin(&caller)?;
    let missing = || ApiError::NotFound("no such webhook delivery".into());
    let Ok(Path((endpoint_text, delivery_text))) = path else {
        return Err(missing());
    };
    let endpoint: WebhookId = endpoint_text
        .parse()
        .map_err(|_| no_such(ENDPOINT, &endpoint_text))?;
    let id: DeliveryId = delivery_text
        .parse()
        .map_err(|_| no_such(DELIVERY, &delivery_text))?;
    match state.store.retry_delivery(endpoint, id, now()).await? {
        Some(delivery) if delivery.attempts == 0 => Ok(Json(DeliveryBody::new(&delivery))),
        Some(_) => Err(ApiError::Conflict(format!(
            "webhook delivery {id} has an attempt in flight; its outcome is recorded \
             shortly, then it can be sent again"
        ))),
        None if state.store.endpoint(endpoint).await?.is_none() => {
            Err(no_such(ENDPOINT, &endpoint_text))
        }
        None => Err(no_such(DELIVERY, &delivery_text)),
    }
}

/// `POST /webhooks/{webhook_id}/recover`: sends again every failed delivery since a
/// time.
#[utoipa::path(
    post,
    path = "/webhooks/{webhook_id}/recover",
    operation_id = "recover_webhook_deliveries",
    tag = "webhooks",
    params(("webhook_id" = String, Path, description = "The endpoint's id (a UUID)")),
    request_body(content = RecoverRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "How many failed deliveries are owed again (each \
                                      order's in `seq` order)", body = Recovered),
        (status = 400, description = "Not JSON, or not an object", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`since` missing or not an RFC 3339 time", body = Problem, content_type = "application/problem+json"),
        CommonProblems,
    ),
    security(("bearer" = [])),
)]
pub async fn recover(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    body: JsonBody,
) -> Result<Json<Recovered>, ApiError> {
    require_admin(&caller)?;
    let endpoint = existing(&state, path).await?;
    let since = read_since(&body.parse::<Map<String, Value>>()?)?;
    let recovered = state
        .store
        .recover_deliveries(endpoint, since, now())
        .await?;
    Ok(Json(Recovered { recovered }))
}

/// The id of the endpoint a path names, if it exists; 404 otherwise.
async fn existing(
    state: &AppState,
    path: Result<Path<String>, PathRejection>,
) -> Result<WebhookId, ApiError> {
    let (text, id) = path_id::<WebhookId>(path, ENDPOINT)?;
    match state.store.endpoint(id).await? {
        Some(_) => Ok(id),
        None => Err(no_such(ENDPOINT, &text)),
    }
}

/// The resources, as 404 answers name them.
const ENDPOINT: &str = "webhook endpoint";
const DELIVERY: &str = "webhook delivery";
