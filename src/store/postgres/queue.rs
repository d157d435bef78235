//! The queue: claims with `FOR UPDATE SKIP LOCKED`, completions (group-committed),
//! failed attempts, releases, lease rescue and operator retries.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::PgPool;
use uuid::Uuid;

use super::PostgresStore;
use super::sql::{ORDER_COLUMNS, order_from_row, orders_from_rows};
use crate::domain::{AfterFailure, OrderId, Timestamp};
use crate::store::claims::{
    Completion, LEASE_EXPIRED, claim_outcome, completion_outcomes, failure_fields, lease_end,
    not_retried, rescued_from_statuses,
};
use crate::store::{Claim, ClaimOutcome, Orders, Queue, Rescued, RetryOutcome, StoreError};

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
        // instead of waiting on them, and never take the same order. The picked ids go
        // to the update as an array, so each row is found by its primary key: joined
        // to a CTE instead, the planner hashed the whole table for every claim.
        let sql = format!(
            "UPDATE orders o SET status = 'Processing', claim_token = $1, \
                    lease_expires_at = $2, attempts = o.attempts + 1 \
             WHERE o.status = 'Pending' AND o.id = ANY(ARRAY( \
                 SELECT id FROM orders WHERE status = 'Pending' AND available_at <= $3 \
                 ORDER BY available_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)) \
             RETURNING {ORDER_COLUMNS}"
        );
        let rows = sqlx::query(&sql)
            .bind(token)
            .bind(lease_expires_at)
            .bind(now)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
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

    async fn complete(&self, claim: &Claim, now: Timestamp) -> Result<ClaimOutcome, StoreError> {
        self.completions
            .submit((claim.order.id, claim.token, now))
            .await
    }

    async fn fail(
        &self,
        claim: &Claim,
        error: &str,
        after: AfterFailure,
        now: Timestamp,
    ) -> Result<ClaimOutcome, StoreError> {
        let (status, available_at, failed_at) = failure_fields(after, now);
        let done = sqlx::query(
            "UPDATE orders SET status = $1, available_at = $2, failed_at = $3, last_error = $4, \
                    claim_token = NULL, lease_expires_at = NULL \
             WHERE id = $5 AND status = 'Processing' AND claim_token = $6",
        )
        .bind(status)
        .bind(available_at)
        .bind(failed_at)
        .bind(error)
        .bind(claim.order.id.as_uuid())
        .bind(claim.token)
        .execute(&self.pool)
        .await?;
        Ok(claim_outcome(done.rows_affected()))
    }

    async fn release(&self, claim: &Claim) -> Result<ClaimOutcome, StoreError> {
        let done = sqlx::query(
            "UPDATE orders SET status = 'Pending', claim_token = NULL, lease_expires_at = NULL \
             WHERE id = $1 AND status = 'Processing' AND claim_token = $2",
        )
        .bind(claim.order.id.as_uuid())
        .bind(claim.token)
        .execute(&self.pool)
        .await?;
        Ok(claim_outcome(done.rows_affected()))
    }

    async fn rescue_expired(
        &self,
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<Rescued, StoreError> {
        let statuses: Vec<String> = sqlx::query_scalar(
            "UPDATE orders SET \
                 status = CASE WHEN attempts >= $1 THEN 'Failed' ELSE 'Pending' END, \
                 failed_at = CASE WHEN attempts >= $1 THEN $2 END, \
                 available_at = $2, last_error = $3, claim_token = NULL, lease_expires_at = NULL \
             WHERE status = 'Processing' AND lease_expires_at < $2 \
             RETURNING status",
        )
        .bind(i32::try_from(max_attempts).unwrap_or(i32::MAX))
        .bind(now)
        .bind(LEASE_EXPIRED)
        .fetch_all(&self.pool)
        .await?;
        Ok(rescued_from_statuses(&statuses))
    }

    async fn retry_failed(&self, id: OrderId, now: Timestamp) -> Result<RetryOutcome, StoreError> {
        let sql = format!(
            "UPDATE orders SET status = 'Pending', attempts = 0, failed_at = NULL, \
                    available_at = $1 \
             WHERE id = $2 AND status = 'Failed' RETURNING {ORDER_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(now)
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => {
                self.new_work.notify_one();
                Ok(RetryOutcome::Retried(order_from_row(&row)?))
            }
            None => Ok(not_retried(self.status(id).await?)),
        }
    }
}

/// Completes a batch of claims in one guarded statement; only rows whose claim is
/// still current change, and `RETURNING` says which.
///
/// The batch goes in as three arrays, so every batch size is one statement text (one
/// prepared statement and plan per connection, where a `VALUES` list was a new one per
/// size), and each row is found by its primary key whatever else is `Processing`.
pub(super) async fn complete_batch(
    pool: &PgPool,
    batch: &[Completion],
) -> Result<Vec<ClaimOutcome>, StoreError> {
    let ids: Vec<Uuid> = batch.iter().map(|(id, _, _)| *id.as_uuid()).collect();
    let tokens: Vec<Uuid> = batch.iter().map(|(_, token, _)| *token).collect();
    let times: Vec<Timestamp> = batch.iter().map(|(_, _, at)| *at).collect();
    let applied: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE orders SET status = 'Completed', completed_at = v.completed_at, \
                claim_token = NULL, lease_expires_at = NULL \
         FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[]) AS v (id, token, completed_at) \
         WHERE orders.id = v.id AND orders.claim_token = v.token \
         AND orders.status = 'Processing' RETURNING orders.id",
    )
    .bind(ids)
    .bind(tokens)
    .bind(times)
    .fetch_all(pool)
    .await?;
    let applied = applied.into_iter().map(OrderId::from_uuid).collect();
    Ok(completion_outcomes(batch, &applied))
}
