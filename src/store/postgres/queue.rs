//! The queue, one file though over 300 lines because it is one `impl Queue` whose
//! transitions are written alike and read side by side: claims with `FOR UPDATE SKIP
//! LOCKED`, completions (group-committed), failed attempts, releases, lease rescue,
//! operator retries and cancels. Each change is one statement that also writes its
//! events (`log_changes`), so the change and its events commit together.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::PgPool;
use uuid::Uuid;

use super::sql::{
    CHANGED_COLUMNS, NEXT_EVENT, ORDER_COLUMNS, log_changes, order_from_row, orders_from_rows,
};
use super::{MAX_EVENTS_PER_STATEMENT, PostgresStore};
use crate::domain::{
    AfterFailure, CancelReason, Cause, EventType, OrderId, OrderResult, Timestamp,
};
use crate::store::claims::{
    Completion, FailureFields, LEASE_EXPIRED, claim_outcome, failure_fields, lease_end,
    not_cancelled, not_retried, outcomes_by_claim, rescued_from_statuses,
};
use crate::store::literal::literal;
use crate::store::{
    CancelOutcome, Claim, ClaimOutcome, Extended, FailedFilter, Orders, Queue, Rescued,
    RetryOutcome, StoreError,
};

/// The `Failed` orders a [`FailedFilter`] takes, with its user as `$1` and its time
/// as `$2` (each `NULL` for any).
const FAILED_MATCHING: &str = "status = 'Failed' AND ($1::text IS NULL OR user_id = $1) \
     AND ($2::timestamptz IS NULL OR failed_at <= $2)";

/// How a claim or a rescue updates the rows its `FOR UPDATE SKIP LOCKED` subquery `p`
/// picked: by the version it locked (`ctid`), with the id beside it so that on a
/// partitioned `orders` only the one partition is searched. A fetch by version costs the
/// same whatever the size or statistics of the queue, and in every plan measured
/// (SCALING.md) it stayed one fetch per row; the ids as an array searched with the
/// status (`status = 'Pending' AND id = ANY(...)`) read the whole queue index for each
/// claim when the plan was made on a small table or the statistics counted few
/// `Pending` orders. A version the subquery locked only after following a change
/// committed during the statement is not visible to the update and is left for the next
/// round, still as it was.
const PICKED: &str = "o.ctid = p.row_at AND o.id = p.picked";

/// Most leases one rescue takes back: each statement's events must fit the 4,095
/// positions of one transaction (migration 0005); a larger backlog takes several.
pub(super) const RESCUE_BATCH: i64 = 1_000;

/// `WITH changed AS (<change> RETURNING ...), logged AS (...) SELECT <ORDER_COLUMNS>`:
/// the change, its events, and the changed orders as the answer.
fn logged(change: &str, event_type: &str, occurred_at: &str) -> String {
    format!(
        "WITH changed AS ({change} RETURNING {CHANGED_COLUMNS}), {} \
         SELECT {ORDER_COLUMNS} FROM changed",
        log_changes(event_type, occurred_at)
    )
}

/// How a change of current claims finds its rows: the batch as arrays (`$1` the ids,
/// `$2` the tokens, `columns` more of them, `v` naming them), each row by its primary key
/// and its token, with a lease: a token and a lease are set together only while
/// `Processing` (a CHECK), so no status is named. Given one, a plan made when the
/// statistics counted few `Processing` orders read every one of them, and every dead
/// entry of one, for each batch (SCALING.md). These statements are planned at each run
/// (`persistent(false)`, which costs a second round trip to the database): a plan kept
/// from when the table was small (a scan of it, hashed against the batch) would be kept
/// as the table grows. The planning is spread over a batch under load; at a batch of
/// one it costs more than it saves (SCALING.md has both).
fn current_claims(columns: &str, names: &str) -> String {
    format!(
        "FROM unnest($1::uuid[], $2::uuid[]{columns}) AS v (claimed, token{names}) \
         WHERE orders.id = v.claimed AND orders.claim_token = v.token \
         AND orders.lease_expires_at IS NOT NULL"
    )
}

/// Moves the lease end of every current claim in the batch on; the orders themselves do
/// not change (so no event, and no new `event_xid`).
static EXTEND: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE orders SET lease_expires_at = $3 {} RETURNING orders.id, orders.claim_token",
        current_claims("", "")
    )
});

#[async_trait]
impl Queue for PostgresStore {
    async fn claim(
        &self,
        limit: usize,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Vec<Claim>, StoreError> {
        let token = Uuid::new_v4();
        let lease_expires_at = lease_end(now, lease);
        // SKIP LOCKED: concurrent claimers in any instance pass over each other's rows
        // instead of waiting on them, and never take the same order. The update takes
        // the very row versions picked and locked (`PICKED`).
        static SQL: LazyLock<String> = LazyLock::new(|| {
            logged(
                &format!(
                    "UPDATE orders o SET status = 'Processing', claim_token = $1, \
                            lease_expires_at = $2, attempts = o.attempts + 1, {NEXT_EVENT} \
                     FROM (SELECT ctid AS row_at, id AS picked FROM orders \
                           WHERE status = 'Pending' AND available_at <= $3 \
                           ORDER BY available_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) AS p \
                     WHERE {PICKED}"
                ),
                &literal(EventType::Processing),
                "$3::timestamptz",
            )
        });
        let rows = sqlx::query(SQL.as_str())
            .bind(token)
            .bind(lease_expires_at)
            .bind(now)
            .bind(i64::try_from(limit.min(MAX_EVENTS_PER_STATEMENT)).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        let mut claims = orders_from_rows(&rows)?
            .into_iter()
            .map(|order| Claim {
                order,
                token,
                lease_expires_at,
            })
            .collect::<Vec<_>>();
        claims.sort_by_key(|claim| claim.order.id);
        Ok(claims)
    }

    async fn complete(
        &self,
        claim: &Claim,
        result: Option<&OrderResult>,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        self.completions
            .submit(Completion::of(claim, result, now))
            .await
    }

    async fn extend(
        &self,
        claims: &[Claim],
        now: Timestamp,
        lease: Duration,
    ) -> Result<Extended, StoreError> {
        let until = lease_end(now, lease);
        let ids: Vec<Uuid> = claims.iter().map(|c| *c.order.id.as_uuid()).collect();
        let tokens: Vec<Uuid> = claims.iter().map(|c| c.token).collect();
        let extended: Vec<(Uuid, Uuid)> = sqlx::query_as(EXTEND.as_str())
            .persistent(false)
            .bind(ids)
            .bind(tokens)
            .bind(until)
            .fetch_all(&self.pool)
            .await?;
        let extended = extended
            .into_iter()
            .map(|(id, token)| (OrderId::from_uuid(id), token))
            .collect();
        Ok(Extended {
            until,
            outcomes: outcomes_by_claim(claims.iter().map(|c| (c.order.id, c.token)), &extended),
        })
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
        let sql = logged(
            &format!(
                "UPDATE orders SET status = $1, available_at = $2, failed_at = $3, \
                        last_error = $4, claim_token = NULL, lease_expires_at = NULL, \
                        {NEXT_EVENT} \
                 WHERE id = $5 AND status = 'Processing' AND claim_token = $6"
            ),
            &literal(event),
            "$7::timestamptz",
        );
        let changed = sqlx::query(&sql)
            .bind(status)
            .bind(available_at)
            .bind(failed_at)
            .bind(error)
            .bind(claim.order.id.as_uuid())
            .bind(claim.token)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        Ok(claim_outcome(changed.len() as u64))
    }

    async fn release(&self, claim: &Claim, now: Timestamp) -> Result<ClaimOutcome, StoreError> {
        let sql = logged(
            &format!(
                "UPDATE orders SET status = 'Pending', claim_token = NULL, \
                        lease_expires_at = NULL, {NEXT_EVENT} \
                 WHERE id = $1 AND status = 'Processing' AND claim_token = $2"
            ),
            &literal(EventType::Requeued),
            "$3::timestamptz",
        );
        let changed = sqlx::query(&sql)
            .bind(claim.order.id.as_uuid())
            .bind(claim.token)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        Ok(claim_outcome(changed.len() as u64))
    }

    async fn rescue_expired(
        &self,
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<Rescued, StoreError> {
        let event_type = format!(
            "CASE WHEN status = 'Failed' THEN {} ELSE {} END",
            literal(Cause::RescueAndDeadLetter.event_type()),
            literal(Cause::RescueAndRequeue.event_type()),
        );
        let sql = format!(
            "WITH changed AS (UPDATE orders o SET \
                 status = CASE WHEN attempts >= $1 THEN 'Failed' ELSE 'Pending' END, \
                 failed_at = CASE WHEN attempts >= $1 THEN $2 END, \
                 available_at = $2, last_error = $3, claim_token = NULL, lease_expires_at = NULL, \
                 {NEXT_EVENT} \
             FROM (SELECT ctid AS row_at, id AS picked FROM orders \
                   WHERE status = 'Processing' AND lease_expires_at < $2 \
                   LIMIT $4 FOR UPDATE SKIP LOCKED) AS p \
             WHERE {PICKED} \
             RETURNING {CHANGED_COLUMNS}), {} \
             SELECT status FROM changed",
            log_changes(&event_type, "$2::timestamptz"),
        );
        let mut rescued = Rescued::default();
        loop {
            let statuses: Vec<String> = sqlx::query_scalar(&sql)
                .bind(i32::try_from(max_attempts).unwrap_or(i32::MAX))
                .bind(now)
                .bind(LEASE_EXPIRED)
                .bind(RESCUE_BATCH)
                .fetch_all(&self.pool)
                .await?;
            let batch = rescued_from_statuses(&statuses);
            rescued.requeued += batch.requeued;
            rescued.dead_lettered += batch.dead_lettered;
            if (statuses.len() as i64) < RESCUE_BATCH {
                return Ok(rescued);
            }
        }
    }

    async fn retry_failed(&self, id: OrderId, now: Timestamp) -> Result<RetryOutcome, StoreError> {
        let sql = logged(
            &format!(
                "UPDATE orders SET status = 'Pending', attempts = 0, failed_at = NULL, \
                        available_at = $1, {NEXT_EVENT} \
                 WHERE id = $2 AND status = 'Failed'"
            ),
            &literal(EventType::Retried),
            "$1::timestamptz",
        );
        let row = again_on_serialization_failure(|| {
            sqlx::query(&sql)
                .bind(now)
                .bind(id.as_uuid())
                .fetch_optional(&self.pool)
        })
        .await?;
        match row {
            Some(row) => {
                self.new_work.notify_one();
                Ok(RetryOutcome::Retried(Box::new(order_from_row(&row)?)))
            }
            None => Ok(not_retried(self.status(id).await?)),
        }
    }

    async fn count_failed(&self, filter: &FailedFilter) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM orders WHERE {FAILED_MATCHING}"
        ))
        .bind(filter.user_id.as_deref())
        .bind(filter.failed_by)
        .fetch_one(&self.pool)
        .await?;
        Ok(count.unsigned_abs())
    }

    async fn retry_failed_matching(
        &self,
        filter: &FailedFilter,
        now: Timestamp,
        limit: usize,
    ) -> Result<u64, StoreError> {
        // Each statement's events must fit one transaction's positions.
        let limit = limit.min(MAX_EVENTS_PER_STATEMENT);
        // The picked ids are a CTE, run once: as an `IN (subquery)` the planner may run
        // the LIMIT again per row and take more than `limit`. Rows a cancel holds are
        // waited for, then checked again: a row that is no longer Failed is left alone.
        let sql = logged(
            &format!(
                "WITH picked AS (SELECT id AS picked_id FROM orders WHERE {FAILED_MATCHING} \
                                 ORDER BY id LIMIT $4 FOR UPDATE) \
                 UPDATE orders SET status = 'Pending', attempts = 0, failed_at = NULL, \
                        available_at = $3, {NEXT_EVENT} \
                 FROM picked WHERE orders.id = picked.picked_id AND orders.status = 'Failed'"
            ),
            &literal(EventType::Retried),
            "$3::timestamptz",
        );
        let rows = again_on_serialization_failure(|| {
            sqlx::query(&sql)
                .bind(filter.user_id.as_deref())
                .bind(filter.failed_by)
                .bind(now)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
        })
        .await?;
        if !rows.is_empty() {
            self.new_work.notify_one();
        }
        Ok(rows.len() as u64)
    }

    async fn cancel(
        &self,
        id: OrderId,
        reason: Option<&CancelReason>,
        now: Timestamp,
    ) -> Result<CancelOutcome, StoreError> {
        // A claim holding the row makes this wait, then re-check the status it left:
        // the claim or the cancel wins, never both.
        let sql = logged(
            &format!(
                "UPDATE orders SET status = 'Cancelled', cancelled_at = $1, cancel_reason = $2, \
                        failed_at = NULL, {NEXT_EVENT} \
                 WHERE id = $3 AND status IN ('Pending', 'Failed')"
            ),
            &literal(EventType::Cancelled),
            "$1::timestamptz",
        );
        loop {
            let row = again_on_serialization_failure(|| {
                sqlx::query(&sql)
                    .bind(now)
                    .bind(reason.map(CancelReason::as_str))
                    .bind(id.as_uuid())
                    .fetch_optional(&self.pool)
            })
            .await?;
            if let Some(row) = row {
                return Ok(CancelOutcome::Cancelled(order_from_row(&row)?));
            }
            // Read after the update, the order may have moved on again (a failed
            // attempt back to Pending): then the cancel is tried again on what it is now.
            match not_cancelled(self.get(id).await?) {
                CancelOutcome::NotCancellable(status)
                    if Cause::Cancel.applied_to(status).is_some() => {}
                outcome => return Ok(outcome),
            }
        }
    }
}

/// Runs a one-statement change again when PostgreSQL refused it as a serialization
/// failure: the event log's ordering trigger refuses a change made by an older
/// transaction than the order's last one (a cancel and a retry racing for one order),
/// and the same statement in a new transaction is in order.
async fn again_on_serialization_failure<T, F, Fut>(mut change: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let mut tries = 0;
    loop {
        match change().await.map_err(StoreError::from) {
            Err(err) if err.is_serialization_failure() && tries < 5 => tries += 1,
            done => return done,
        }
    }
}

/// Completes a batch of claims in one guarded statement that also logs their events;
/// only rows whose claim is still current change, and `RETURNING` says which.
///
/// The batch goes in as arrays, so every batch size is one statement text, and each
/// claim is found by its own lookup whatever else is `Processing` (`current_claims`).
pub(super) async fn complete_batch(
    pool: &PgPool,
    batch: &[Completion],
) -> Result<Vec<ClaimOutcome>, StoreError> {
    let ids: Vec<Uuid> = batch.iter().map(|c| *c.id.as_uuid()).collect();
    let tokens: Vec<Uuid> = batch.iter().map(|c| c.token).collect();
    let times: Vec<Timestamp> = batch.iter().map(|c| c.at).collect();
    let results: Vec<Option<String>> = batch.iter().map(|c| c.result.clone()).collect();
    // The batch's columns are named apart from the table's, so `RETURNING` can name
    // the order's columns as they are.
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH changed AS (UPDATE orders SET status = 'Completed', completed_at = v.done_at, \
                    result = v.answer, claim_token = NULL, lease_expires_at = NULL, {NEXT_EVENT} \
             {} RETURNING {CHANGED_COLUMNS}, v.token), {} \
             SELECT id, token FROM changed",
            current_claims(", $3::timestamptz[], $4::text[]", ", done_at, answer"),
            log_changes(&literal(EventType::Completed), "completed_at"),
        )
    });
    let applied: Vec<(Uuid, Uuid)> = sqlx::query_as(SQL.as_str())
        .persistent(false)
        .bind(ids)
        .bind(tokens)
        .bind(times)
        .bind(results)
        .fetch_all(pool)
        .await?;
    let applied = applied
        .into_iter()
        .map(|(id, token)| (OrderId::from_uuid(id), token))
        .collect();
    Ok(outcomes_by_claim(
        batch.iter().map(|c| (c.id, c.token)),
        &applied,
    ))
}
