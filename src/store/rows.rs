//! What the backends share when turning stored values back into domain types, so
//! each backend's file holds only its own SQL and column types.

use std::time::Duration;

use uuid::Uuid;

use super::{ClaimOutcome, OrderMetrics, Rescued, RetryOutcome, StoreError};
use crate::domain::{
    AfterFailure, ItemIds, Money, Order, OrderId, OrderStatus, Timestamp, UserId, from_millis,
};

/// The columns every backend reads, as every backend can decode them.
pub(super) struct StoredOrder {
    pub id: OrderId,
    pub user_id: String,
    pub item_ids: Vec<String>,
    pub amount_cents: i64,
    pub status: String,
    pub created_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub failed_at: Option<Timestamp>,
}

impl StoredOrder {
    /// The order, refusing values the domain would never have written.
    pub fn into_order(self) -> Result<Order, StoreError> {
        Ok(Order {
            id: self.id,
            user_id: UserId::parse(self.user_id).map_err(|e| corrupt(e.message))?,
            item_ids: ItemIds::parse(self.item_ids).map_err(|e| corrupt(e.message))?,
            total_amount: Money::from_cents(self.amount_cents)
                .ok_or_else(|| corrupt("amount out of range"))?,
            status: self.status.parse().map_err(corrupt)?,
            created_at: self.created_at,
            completed_at: self.completed_at,
            attempts: u32::try_from(self.attempts).map_err(corrupt)?,
            last_error: self.last_error,
            failed_at: self.failed_at,
        })
    }
}

/// One completion in a group commit: the order, the claim token, the time.
pub(super) type Completion = (OrderId, Uuid, Timestamp);

/// Each completion's outcome, from the ids the guarded update returned.
pub(super) fn completion_outcomes(
    batch: &[Completion],
    applied: &std::collections::HashSet<OrderId>,
) -> Vec<ClaimOutcome> {
    batch
        .iter()
        .map(|(id, _, _)| {
            if applied.contains(id) {
                ClaimOutcome::Applied
            } else {
                ClaimOutcome::ClaimLost
            }
        })
        .collect()
}

/// A stored value the domain rejects: the database was changed behind our back.
pub(super) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// When a lease taken at `now` ends.
pub(super) fn lease_end(now: Timestamp, lease: Duration) -> Timestamp {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 4);
    from_millis(now.timestamp_millis().saturating_add(lease_ms))
}

/// A guarded single-row update either applied or found the claim gone.
pub(super) fn claim_outcome(rows_affected: u64) -> ClaimOutcome {
    if rows_affected == 1 {
        ClaimOutcome::Applied
    } else {
        ClaimOutcome::ClaimLost
    }
}

/// What a failed attempt writes: the status it moves to, when the order may be claimed
/// again, and (for a dead letter) when it failed.
pub(super) fn failure_fields(
    after: AfterFailure,
    now: Timestamp,
) -> (&'static str, Timestamp, Option<Timestamp>) {
    match after {
        AfterFailure::RetryAt(at) => ("Pending", at, None),
        AfterFailure::DeadLetter => ("Failed", now, Some(now)),
    }
}

/// The message stored when a lease runs out under a worker.
pub(super) const LEASE_EXPIRED: &str = "lease expired: the worker stopped before finishing";

/// Counts a rescue's `RETURNING status` rows.
pub(super) fn rescued_from_statuses(statuses: &[String]) -> Rescued {
    let dead_lettered = statuses.iter().filter(|s| *s == "Failed").count() as u64;
    Rescued {
        requeued: statuses.len() as u64 - dead_lettered,
        dead_lettered,
    }
}

/// The retry outcome when the guarded update changed nothing: the order's status
/// says why.
pub(super) fn not_retried(status: Option<OrderStatus>) -> RetryOutcome {
    status.map_or(RetryOutcome::NotFound, RetryOutcome::NotFailed)
}

/// Metrics from per-status totals: (status, orders, processing milliseconds).
pub(super) fn metrics_from_totals(
    totals: impl IntoIterator<Item = (String, i64, i64)>,
) -> Result<OrderMetrics, StoreError> {
    let mut metrics = OrderMetrics::default();
    for (status, orders, processing_ms) in totals {
        let status: OrderStatus = status.parse().map_err(corrupt)?;
        metrics
            .counts
            .add(status, u64::try_from(orders).map_err(corrupt)?);
        if status == OrderStatus::Completed {
            metrics.total_processing_ms = processing_ms;
        }
    }
    Ok(metrics)
}

/// `Ok` when every migration this build embeds is applied (a newer database, during a
/// rolling deploy, is fine: migrations only add).
pub(super) fn schema_current(
    migrator: &sqlx::migrate::Migrator,
    applied: Option<i64>,
) -> Result<(), StoreError> {
    let needed = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    if applied.is_some_and(|applied| applied >= needed) {
        Ok(())
    } else {
        Err(StoreError::SchemaBehind { applied, needed })
    }
}
