//! The queue, one file though over 300 lines because it is one `impl Queue` whose
//! transitions are written alike and read side by side: claims, completions
//! (group-committed by the writer), failed attempts, releases, lease rescue, operator
//! retries and cancels; each change writes its event in its transaction.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::params;
use uuid::Uuid;

use super::SqliteStore;
use super::sql::{
    CHANGED_COLUMNS, ORDER_COLUMNS, changed_from, millis, orders_from, record_changes, status_of,
};
use crate::domain::{
    AfterFailure, CancelReason, Cause, EventType, Order, OrderId, OrderResult, OrderStatus,
    Timestamp,
};
use crate::store::claims::{
    Completion, FailureFields, LEASE_EXPIRED, claim_outcome, failure_fields, lease_end,
    not_cancelled, not_retried, rescued_from_statuses,
};
use crate::store::{
    CancelOutcome, Claim, ClaimOutcome, Extended, FailedFilter, Queue, Rescued, RetryOutcome,
    StoreError,
};

/// The `Failed` orders a [`FailedFilter`] takes, with its user as `?1` and its time
/// as `?2` (each `NULL` for any).
const FAILED_MATCHING: &str = "status = 'Failed' AND (?1 IS NULL OR user_id = ?1) \
     AND (?2 IS NULL OR failed_at <= ?2)";

fn failed_filter(filter: &FailedFilter) -> (Option<String>, Option<i64>) {
    (filter.user_id.clone(), filter.failed_by.map(millis))
}

/// Moves a current claim's lease end on; the order itself does not change (so no event).
const EXTEND: &str = "UPDATE orders SET lease_expires_at = ?3 \
     WHERE id = ?1 AND claim_token = ?2 AND status = 'Processing'";

#[async_trait]
impl Queue for SqliteStore {
    async fn claim(
        &self,
        limit: usize,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Vec<Claim>, StoreError> {
        let token = Uuid::new_v4();
        let lease_expires_at = lease_end(now, lease);
        let mut orders = self
            .writer
            .transaction(move |tx| {
                // The partial index is named: without statistics the planner once
                // walked every Pending order through another index and sorted them.
                let mut stmt = tx.prepare_cached(&format!(
                    "UPDATE orders SET status = 'Processing', claim_token = ?1, \
                            lease_expires_at = ?2, attempts = attempts + 1, \
                            last_seq = last_seq + 1 \
                     WHERE id IN (SELECT id FROM orders INDEXED BY orders_pending \
                                  WHERE status = 'Pending' AND available_at <= ?3 \
                                  ORDER BY available_at, id LIMIT ?4) \
                     RETURNING {CHANGED_COLUMNS}"
                ))?;
                let claimed = changed_from(
                    &mut stmt,
                    params![
                        token.to_string(),
                        millis(lease_expires_at),
                        millis(now),
                        i64::try_from(limit).unwrap_or(i64::MAX),
                    ],
                )?;
                record_changes(tx, &claimed, |_| EventType::Processing, now)?;
                Ok(claimed
                    .into_iter()
                    .map(|(order, _)| order)
                    .collect::<Vec<_>>())
            })
            .await?;
        // RETURNING gives no order guarantee; hand work out oldest first.
        orders.sort_by_key(|order| order.id);
        Ok(orders
            .into_iter()
            .map(|order| Claim {
                order,
                token,
                lease_expires_at,
            })
            .collect())
    }

    async fn complete(
        &self,
        claim: &Claim,
        result: Option<&OrderResult>,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        self.writer
            .complete(Completion::of(claim, result, now))
            .await
    }

    async fn extend(
        &self,
        claims: &[Claim],
        now: Timestamp,
        lease: Duration,
    ) -> Result<Extended, StoreError> {
        let until = lease_end(now, lease);
        let held: Vec<(OrderId, Uuid)> = claims.iter().map(|c| (c.order.id, c.token)).collect();
        let outcomes = self
            .writer
            .transaction(move |tx| {
                let mut extend = tx.prepare_cached(EXTEND)?;
                let mut outcomes = Vec::with_capacity(held.len());
                for (id, token) in held {
                    let changed = extend.execute(params![
                        id.to_string(),
                        token.to_string(),
                        millis(until)
                    ])?;
                    outcomes.push(claim_outcome(changed as u64));
                }
                Ok(outcomes)
            })
            .await?;
        Ok(Extended { until, outcomes })
    }

    async fn fail(
        &self,
        claim: &Claim,
        error: &str,
        after: AfterFailure,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        let FailureFields {
            status,
            available_at,
            failed_at,
            event,
        } = failure_fields(after, now);
        let (id, token, error) = (claim.order.id, claim.token, error.to_owned());
        self.writer
            .transaction(move |tx| {
                let mut stmt = tx.prepare_cached(&format!(
                    "UPDATE orders SET status = ?1, available_at = ?2, failed_at = ?3, \
                            last_error = ?4, claim_token = NULL, lease_expires_at = NULL, \
                            last_seq = last_seq + 1 \
                     WHERE id = ?5 AND status = 'Processing' AND claim_token = ?6 \
                     RETURNING {CHANGED_COLUMNS}"
                ))?;
                let changed = changed_from(
                    &mut stmt,
                    params![
                        status,
                        millis(available_at),
                        failed_at.map(millis),
                        error,
                        id.to_string(),
                        token.to_string(),
                    ],
                )?;
                record_changes(tx, &changed, |_| event, now)?;
                Ok(claim_outcome(changed.len() as u64))
            })
            .await
    }

    async fn release(&self, claim: &Claim, now: Timestamp) -> Result<ClaimOutcome, StoreError> {
        let (id, token) = (claim.order.id, claim.token);
        let outcome = self
            .writer
            .transaction(move |tx| {
                let mut stmt = tx.prepare_cached(&format!(
                    "UPDATE orders SET status = 'Pending', claim_token = NULL, \
                            lease_expires_at = NULL, last_seq = last_seq + 1 \
                     WHERE id = ?1 AND status = 'Processing' AND claim_token = ?2 \
                     RETURNING {CHANGED_COLUMNS}"
                ))?;
                let changed = changed_from(&mut stmt, [id.to_string(), token.to_string()])?;
                record_changes(tx, &changed, |_| EventType::Requeued, now)?;
                Ok(claim_outcome(changed.len() as u64))
            })
            .await?;
        self.new_work.notify_one();
        Ok(outcome)
    }

    async fn rescue_expired(
        &self,
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<Rescued, StoreError> {
        let statuses = self
            .writer
            .transaction(move |tx| {
                let mut stmt = tx.prepare_cached(&format!(
                    "UPDATE orders INDEXED BY orders_processing_lease SET \
                         status = CASE WHEN attempts >= ?1 THEN 'Failed' ELSE 'Pending' END, \
                         failed_at = CASE WHEN attempts >= ?1 THEN ?2 END, \
                         available_at = ?2, last_error = ?3, claim_token = NULL, \
                         lease_expires_at = NULL, last_seq = last_seq + 1 \
                     WHERE status = 'Processing' AND lease_expires_at < ?2 \
                     RETURNING {CHANGED_COLUMNS}"
                ))?;
                let rescued = changed_from(
                    &mut stmt,
                    params![i64::from(max_attempts), millis(now), LEASE_EXPIRED],
                )?;
                let event = |order: &Order| {
                    if order.status == OrderStatus::Failed {
                        Cause::RescueAndDeadLetter.event_type()
                    } else {
                        Cause::RescueAndRequeue.event_type()
                    }
                };
                record_changes(tx, &rescued, event, now)?;
                Ok(rescued
                    .iter()
                    .map(|(order, _)| order.status.as_str().to_owned())
                    .collect::<Vec<_>>())
            })
            .await?;
        let rescued = rescued_from_statuses(&statuses);
        if rescued.requeued > 0 {
            self.new_work.notify_one();
        }
        Ok(rescued)
    }

    async fn retry_failed(&self, id: OrderId, now: Timestamp) -> Result<RetryOutcome, StoreError> {
        let retried = self
            .writer
            .transaction(move |tx| {
                let mut stmt = tx.prepare_cached(&format!(
                    "UPDATE orders SET status = 'Pending', attempts = 0, failed_at = NULL, \
                            available_at = ?1, last_seq = last_seq + 1 \
                     WHERE id = ?2 AND status = 'Failed' RETURNING {CHANGED_COLUMNS}"
                ))?;
                let retried = changed_from(&mut stmt, params![millis(now), id.to_string()])?;
                record_changes(tx, &retried, |_| EventType::Retried, now)?;
                Ok(retried
                    .into_iter()
                    .map(|(order, _)| order)
                    .collect::<Vec<_>>())
            })
            .await?;
        match retried.into_iter().next() {
            Some(order) => {
                self.new_work.notify_one();
                Ok(RetryOutcome::Retried(Box::new(order)))
            }
            None => Ok(not_retried(self.readers.read(|conn| status_of(conn, id))?)),
        }
    }

    async fn count_failed(&self, filter: &FailedFilter) -> Result<u64, StoreError> {
        let (user, by) = failed_filter(filter);
        self.readers.read(move |conn| {
            let count: i64 = conn
                .prepare_cached(&format!(
                    "SELECT count(*) FROM orders WHERE {FAILED_MATCHING}"
                ))?
                .query_row(params![user, by], |row| row.get(0))?;
            Ok(count.unsigned_abs())
        })
    }

    async fn retry_failed_matching(
        &self,
        filter: &FailedFilter,
        now: Timestamp,
        limit: usize,
    ) -> Result<u64, StoreError> {
        let (user, by) = failed_filter(filter);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let retried = self
            .writer
            .transaction(move |tx| {
                let mut stmt = tx.prepare_cached(&format!(
                    "UPDATE orders SET status = 'Pending', attempts = 0, failed_at = NULL, \
                            available_at = ?3, last_seq = last_seq + 1 \
                     WHERE id IN (SELECT id FROM orders WHERE {FAILED_MATCHING} \
                                  ORDER BY id LIMIT ?4) \
                     RETURNING {CHANGED_COLUMNS}"
                ))?;
                let retried = changed_from(&mut stmt, params![user, by, millis(now), limit])?;
                record_changes(tx, &retried, |_| EventType::Retried, now)?;
                Ok(retried.len() as u64)
            })
            .await?;
        if retried > 0 {
            self.new_work.notify_one();
        }
        Ok(retried)
    }

    async fn cancel(
        &self,
        id: OrderId,
        reason: Option<&CancelReason>,
        now: Timestamp,
    ) -> Result<CancelOutcome, StoreError> {
        let reason = reason.map(|r| r.as_str().to_owned());
        let (cancelled, current) = self
            .writer
            .transaction(move |tx| {
                let mut stmt = tx.prepare_cached(&format!(
                    "UPDATE orders SET status = 'Cancelled', cancelled_at = ?1, \
                            cancel_reason = ?2, failed_at = NULL, last_seq = last_seq + 1 \
                     WHERE id = ?3 AND (status = 'Pending' OR status = 'Failed') \
                     RETURNING {CHANGED_COLUMNS}"
                ))?;
                let cancelled =
                    changed_from(&mut stmt, params![millis(now), reason, id.to_string()])?;
                if !cancelled.is_empty() {
                    record_changes(tx, &cancelled, |_| EventType::Cancelled, now)?;
                    let orders = cancelled.into_iter().map(|(order, _)| order).collect();
                    return Ok((orders, Vec::new()));
                }
                // In the same transaction, so the answer says why this cancel lost.
                let mut current = tx
                    .prepare_cached(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?1"))?;
                Ok((Vec::new(), orders_from(&mut current, [id.to_string()])?))
            })
            .await?;
        Ok(match cancelled.into_iter().next() {
            Some(order) => CancelOutcome::Cancelled(order),
            None => not_cancelled(current.into_iter().next()),
        })
    }
}
