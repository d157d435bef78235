//! `/webhooks/...` handlers (admin): register an endpoint, list and read them, change,
//! remove, rotate a secret. Each checks the caller, then the body, then the store.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::admission::{require_admin, require_reader};
use super::error::{ApiError, CommonProblems, Problem};
use super::extract::{JsonBody, no_such, path_id};
use super::state::AppState;
use super::webhook_json::{
    WebhookBody, WebhookList, WebhookPatch, WebhookRequest, WebhookWithSecret, read_fields,
};
use crate::auth::Caller;
use crate::domain::{WebhookEndpoint, WebhookId, WebhookUrl, new_secret, now};
use crate::webhooks::check_reachable;

/// Why an endpoint an operator disabled is disabled.
const OPERATOR: &str = "disabled by an operator";

/// How long a rotated-out secret still signs deliveries beside the new one.
const ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3_600);

/// `POST /webhooks`: registers an endpoint and answers its secret, once.
#[utoipa::path(
    post,
    path = "/webhooks",
    operation_id = "create_webhook",
    tag = "webhooks",
    request_body(content = WebhookRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Registered; the secret is shown only here",
         body = WebhookWithSecret,
         headers(("Location" = String, description = "/webhooks/{webhook_id}"))),
        (status = 400, description = "Not JSON, or not an object", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named (a URL that reaches a \
                                      private network among them)", body = Problem, content_type = "application/problem+json"),
        CommonProblems,
    ),
    security(("bearer" = [])),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody,
) -> Result<Response, ApiError> {
    require_admin(&caller)?;
    let fields = read_fields(&body.parse::<Map<String, Value>>()?, false)?;
    let url = fields.url.expect("required, so checked");
    reachable(&state, &url).await?;
    let at = now();
    let disabled = fields.disabled == Some(true);
    let endpoint = WebhookEndpoint {
        id: WebhookId::new_at(at),
        url,
        description: fields.description.unwrap_or_default(),
        event_types: fields.event_types.flatten(),
        secret: random_secret()?,
        previous_secret: None,
        disabled_at: disabled.then_some(at),
        disabled_reason: disabled.then(|| OPERATOR.to_owned()),
        last_delivered_at: None,
        failing_since: None,
        created_at: at,
        updated_at: at,
        revision: 1,
    };
    state.store.insert_endpoint(&endpoint).await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/webhooks/{}", endpoint.id))],
        Json(WebhookWithSecret::new(&endpoint)),
    )
        .into_response())
}

/// `GET /webhooks`: every endpoint, oldest first.
#[utoipa::path(
    get,
    path = "/webhooks",
    operation_id = "list_webhooks",
    tag = "webhooks",
    responses(
        (status = 200, description = "Every endpoint, without secrets", body = WebhookList),
        (status = 403, description = "Neither a reader (`orders:read`) nor an admin", body = Problem, content_type = "application/problem+json"),
        CommonProblems,
    ),
    security(("bearer" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<WebhookList>, ApiError> {
    require_reader(&caller)?;
    Ok(Json(WebhookList::new(&state.store.endpoints().await?)))
}

/// `GET /webhooks/{webhook_id}`.
#[utoipa::path(
    get,
    path = "/webhooks/{webhook_id}",
    operation_id = "get_webhook",
    tag = "webhooks",
    params(("webhook_id" = String, Path, description = "The endpoint's id (a UUID)")),
    responses(
        (status = 200, description = "The endpoint, without its secret", body = WebhookBody),
        (status = 403, description = "Neither a reader (`orders:read`) nor an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
        CommonProblems,
    ),
    security(("bearer" = [])),
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<WebhookBody>, ApiError> {
    require_reader(&caller)?;
    let endpoint = existing(&state, path).await?;
    Ok(Json(WebhookBody::new(&endpoint)))
}

/// `PATCH /webhooks/{webhook_id}`: changes the members sent.
#[utoipa::path(
    patch,
    path = "/webhooks/{webhook_id}",
    operation_id = "update_webhook",
    tag = "webhooks",
    params(("webhook_id" = String, Path, description = "The endpoint's id (a UUID)")),
    request_body(content = WebhookPatch, content_type = "application/json"),
    responses(
        (status = 200, description = "The endpoint as changed", body = WebhookBody),
        (status = 400, description = "Not JSON, or not an object", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It changed while this change was made", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named; nothing changed", body = Problem, content_type = "application/problem+json"),
        CommonProblems,
    ),
    security(("bearer" = [])),
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    body: JsonBody,
) -> Result<Json<WebhookBody>, ApiError> {
    require_admin(&caller)?;
    let mut endpoint = existing(&state, path).await?;
    let fields = read_fields(&body.parse::<Map<String, Value>>()?, true)?;
    if let Some(url) = fields.url {
        reachable(&state, &url).await?;
        endpoint.url = url;
    }
    if let Some(types) = fields.event_types {
        endpoint.event_types = types;
    }
    if let Some(description) = fields.description {
        endpoint.description = description;
    }
    let at = now();
    match fields.disabled {
        Some(true) if endpoint.is_enabled() => {
            endpoint.disabled_at = Some(at);
            endpoint.disabled_reason = Some(OPERATOR.into());
        }
        Some(false) => {
            endpoint.disabled_at = None;
            endpoint.disabled_reason = None;
        }
        _ => {}
    }
    endpoint.updated_at = at;
    if !state.store.update_endpoint(&endpoint).await? {
        // Changed (a rotation, another change) or removed since it was read.
        return Err(match state.store.endpoint(endpoint.id).await? {
            Some(_) => ApiError::Conflict(format!(
                "webhook endpoint {} changed while this change was made; read it and \
                 try again",
                endpoint.id
            )),
            None => not_found(&endpoint.id.to_string()),
        });
    }
    endpoint.revision += 1;
    Ok(Json(WebhookBody::new(&endpoint)))
}

/// `DELETE /webhooks/{webhook_id}`.
#[utoipa::path(
    delete,
    path = "/webhooks/{webhook_id}",
    operation_id = "delete_webhook",
    tag = "webhooks",
    params(("webhook_id" = String, Path, description = "The endpoint's id (a UUID)")),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
        CommonProblems,
    ),
    security(("bearer" = [])),
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    require_admin(&caller)?;
    let (text, id) = parse_id(path)?;
    if state.store.delete_endpoint(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&text))
    }
}

/// `POST /webhooks/{webhook_id}/rotate-secret`: a new secret, answered once; the old
/// one goes on signing beside it for 24 hours.
#[utoipa::path(
    post,
    path = "/webhooks/{webhook_id}/rotate-secret",
    operation_id = "rotate_webhook_secret",
    tag = "webhooks",
    params(("webhook_id" = String, Path, description = "The endpoint's id (a UUID)")),
    responses(
        (status = 200, description = "The new secret, shown only here", body = WebhookWithSecret),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
        CommonProblems,
    ),
    security(("bearer" = [])),
)]
pub async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<WebhookWithSecret>, ApiError> {
    require_admin(&caller)?;
    let (text, id) = parse_id(path)?;
    let at = now();
    let overlap = chrono::Duration::from_std(ROTATION_OVERLAP).expect("a day fits");
    let secret = random_secret()?;
    match state
        .store
        .rotate_secret(id, &secret, at + overlap, at)
        .await?
    {
        Some(endpoint) => Ok(Json(WebhookWithSecret::new(&endpoint))),
        None => Err(not_found(&text)),
    }
}

/// The endpoint a path names, or 404.
async fn existing(
    state: &AppState,
    path: Result<Path<String>, PathRejection>,
) -> Result<WebhookEndpoint, ApiError> {
    let (text, id) = parse_id(path)?;
    state
        .store
        .endpoint(id)
        .await?
        .ok_or_else(|| not_found(&text))
}

fn parse_id(path: Result<Path<String>, PathRejection>) -> Result<(String, WebhookId), ApiError> {
    path_id(path, ENDPOINT)
}

fn not_found(id: &str) -> ApiError {
    no_such(ENDPOINT, id)
}

/// The resource, as 404 answers name it.
const ENDPOINT: &str = "webhook endpoint";

/// The URL's network, as the configuration allows it (422 naming `url` otherwise).
async fn reachable(state: &AppState, url: &WebhookUrl) -> Result<(), ApiError> {
    check_reachable(url, state.webhook_network)
        .await
        .map_err(|err| ApiError::Validation(vec![err]))
}

/// 32 bytes from the operating system's generator, as a `whsec_` secret.
fn random_secret() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|err| ApiError::NotReady(format!("no random bytes for a secret: {err}")))?;
    Ok(new_secret(bytes))
}
