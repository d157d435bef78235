//! What both backends' queues share above the SQL: when a lease ends, what a failed
//! attempt writes, and how the rows an update touched become outcomes.

use std::time::Duration;

use uuid::Uuid;

use super::{CancelOutcome, Claim, ClaimOutcome, Rescued, RetryOutcome};
use crate::domain::{
    AfterFailure, Cause, EventType, Order, OrderId, OrderResult, OrderStatus, Timestamp,
    from_millis,
};

/// One completion in a group commit.
pub(super) struct Completion {
    pub id: OrderId,
    pub token: Uuid,
    pub at: Timestamp,
    /// The result's JSON text, when the processor handed one back.
    pub result: Option<String>,
}

impl Completion {
    pub fn of(claim: &Claim, result: Option<&OrderResult>, at: Timestamp) -> Self {
        Self {
            id: claim.order.id,
            token: claim.token,
            at,
            result: result.map(|r| r.as_str().to_owned()),
        }
    }
}

/// Each guarded change's outcome, by claim (order and token, so a stale claim and a
/// current one of the same order in one batch are told apart), from the claims the
/// update returned.
pub(super) fn outcomes_by_claim(
    claims: impl IntoIterator<Item = (OrderId, Uuid)>,
    applied: &std::collections::HashSet<(OrderId, Uuid)>,
) -> Vec<ClaimOutcome> {
    claims
        .into_iter()
        .map(|claim| {
            if applied.contains(&claim) {
                ClaimOutcome::Applied
            } else {
                ClaimOutcome::ClaimLost
            }
        })
        .collect()
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
/// again, (for a dead letter) when it failed, and the event it logs.
pub(super) struct FailureFields {
    pub status: &'static str,
    pub available_at: Timestamp,
    pub failed_at: Option<Timestamp>,
    pub event: EventType,
}

pub(super) fn failure_fields(after: AfterFailure, now: Timestamp) -> FailureFields {
    let (status, available_at, failed_at, cause) = match after {
        AfterFailure::RetryAt(at) => ("Pending", at, None, Cause::FailAndRetry),
        AfterFailure::DeadLetter => ("Failed", now, Some(now), Cause::FailAndDeadLetter),
    };
    FailureFields {
        status,
        available_at,
        failed_at,
        event: cause.event_type(),
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

/// The cancel outcome when the guarded update changed nothing: the order as it is
/// says why.
pub(super) fn not_cancelled(current: Option<Order>) -> CancelOutcome {
    match current {
        None => CancelOutcome::NotFound,
        Some(order) if order.status == OrderStatus::Cancelled => {
            CancelOutcome::AlreadyCancelled(order)
        }
        Some(order) => CancelOutcome::NotCancellable(order.status),
    }
}
