//! `GET /healthz` (the process answers) and `GET /readyz` (the database answers and
//! every migration is applied), for load balancers and orchestrators.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::error::ApiError;
use super::state::AppState;

/// Always 200 while the process can serve HTTP at all.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// 200 when the database answers and its schema is current; 503 otherwise.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    match state.store.ready().await {
        Ok(()) => Ok(Json(json!({"status": "ready"}))),
        Err(err) => Err(ApiError::NotReady(err.to_string())),
    }
}
