//! `GET /metrics`: the reference's JSON, from one consistent read; and
//! `GET /metrics/prometheus`: the Prometheus text exposition.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use super::admission::require_reader;
use super::error::{ApiError, CommonProblems};
use super::state::AppState;
use super::status_json::OrderCounts;
use crate::auth::Caller;
use crate::domain::{Timestamp, now};
use crate::store::Overview;

/// `{"total_orders": 10, "average_processing_time": 5.2, "order_counts": {...}}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Metrics)]
pub struct MetricsBody {
    total_orders: u64,
    /// Seconds, millisecond precision; 0 when nothing is completed.
    average_processing_time: f64,
    order_counts: OrderCounts,
    /// Seconds since the longest-waiting claimable `Pending` order became due: the
    /// "is it stuck?" number. `null` when no order is waiting; orders waiting out a
    /// retry backoff do not count.
    oldest_pending_age_seconds: Option<f64>,
}

#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "get_metrics",
    tag = "operations",
    responses((status = 200, description = "Order counts and processing time", body = MetricsBody), CommonProblems),
    security(("bearer" = [])),
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<MetricsBody>, ApiError> {
    require_reader(&caller)?;
    let now = now();
    let overview = state.store.overview(now).await?;
    let metrics = overview.metrics;
    Ok(Json(MetricsBody {
        total_orders: metrics.counts.total(),
        average_processing_time: metrics.average_processing_seconds(),
        order_counts: OrderCounts(metrics.counts),
        oldest_pending_age_seconds: oldest_pending_age(&overview, now),
    }))
}

/// Seconds (millisecond precision) since the oldest due `Pending` order became due.
fn oldest_pending_age(overview: &Overview, now: Timestamp) -> Option<f64> {
    let due = overview.oldest_due?;
    Some((now - due).num_milliseconds().max(0) as f64 / 1000.0)
}

/// The Prometheus exposition: everything recorded through the `metrics` facade, with
/// the queue depth by status refreshed from the store's running totals first.
#[utoipa::path(
    get,
    path = "/metrics/prometheus",
    operation_id = "get_prometheus_metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text exposition", body = String,
         content_type = "text/plain; version=0.0.4; charset=utf-8"),
        CommonProblems,
    ),
    security(("bearer" = [])),
)]
pub async fn prometheus(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    require_reader(&caller)?;
    let now = now();
    let overview = state.store.overview(now).await?;
    let counts = overview.metrics.counts;
    for (status, count) in counts.iter() {
        metrics::gauge!("orders_by_status", "status" => status.as_str()).set(count as f64);
    }
    let deliveries = state.store.delivery_gauges().await?;
    metrics::gauge!("webhook_deliveries_pending").set(deliveries.pending as f64);
    metrics::gauge!("webhook_endpoints_disabled").set(deliveries.disabled_endpoints as f64);
    metrics::gauge!("orders_oldest_pending_age_seconds")
        .set(oldest_pending_age(&overview, now).unwrap_or(0.0));
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::telemetry::prometheus().render(),
    ))
}
