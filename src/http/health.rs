//! `GET /healthz` (the process answers) and `GET /readyz` (the database answers and
//! every migration is applied), for load balancers and orchestrators.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, Problem};
use super::state::AppState;

/// A probe's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    status: &'static str,
}

/// Always 200 while the process can serve HTTP at all.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The process is alive", body = Health)),
    security(()),
)]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// 200 when the database answers and its schema is current; 503 otherwise.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = Health),
        (status = 503, description = "The database does not answer or is not migrated",
         body = Problem, content_type = "application/problem+json",
         headers(("Retry-After" = u64, description = "Seconds to wait before asking again"))),
    ),
    security(()),
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    match state.store.ready().await {
        Ok(()) => Ok(Json(Health { status: "ready" })),
        Err(err) => {
            tracing::warn!(error = %err, "not ready");
            Err(ApiError::NotReady(
                "the database does not answer or its schema is not current".into(),
            ))
        }
    }
}
