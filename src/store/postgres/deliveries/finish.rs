//! Recording attempts: each delivery's outcome if its claim is still current, the next
//! event of its order made due, and each endpoint's health kept (or the endpoint
//! disabled).

use std::collections::HashSet;

use sqlx::postgres::{PgPool, Postgres};
use sqlx::{Row, Transaction};
use uuid::Uuid;

use super::lock_endpoints;
use crate::domain::{DeliveryStatus, Timestamp};
use crate::store::deliveries::{FAILING, GONE, health_changes};
use crate::store::postgres::begin;
use crate::store::{ClaimOutcome, FinishedAttempt, NextStep, StoreError};

/// Keeps each endpoint's health from the attempts recorded (`applied`, beside
/// `attempts`), and disables an endpoint that answered `410`, or whose every attempt
/// has failed since before `failing_too_long`.
pub(super) async fn keep_health(
    tx: &mut Transaction<'_, Postgres>,
    attempts: &[FinishedAttempt],
    applied: impl IntoIterator<Item = bool>,
    failing_too_long: Timestamp,
) -> Result<(), StoreError> {
    for change in health_changes(attempts, applied) {
        sqlx::query(
            // Batches of several instances commit in any order: a success or a
            // failure older than the last success recorded changes nothing.
            "UPDATE webhook_endpoints SET \
                 last_delivered_at = GREATEST(last_delivered_at, $2), \
                 failing_since = CASE \
                     WHEN $2 > COALESCE(last_delivered_at, '-infinity') THEN $3 \
                     WHEN $3 > COALESCE(last_delivered_at, '-infinity') \
                         THEN COALESCE(failing_since, $3) \
                     ELSE failing_since END \
             WHERE id = $1",
        )
        .bind(change.id.as_uuid())
        .bind(change.delivered_at)
        .bind(change.failing_from)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "UPDATE webhook_endpoints SET disabled_at = $2, \
                 disabled_reason = CASE WHEN $3 THEN $4 ELSE $5 END, \
                 updated_at = $2, revision = revision + 1 \
             WHERE id = $1 AND disabled_at IS NULL AND ($3 OR failing_since <= $6)",
        )
        .bind(change.id.as_uuid())
        .bind(change.gone_at.unwrap_or(change.last_at))
        .bind(change.gone_at.is_some())
        .bind(GONE)
        .bind(FAILING)
        .bind(failing_too_long)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// `Deliveries::finish_deliveries` on PostgreSQL.
pub(super) async fn finish_deliveries(
    pool: &PgPool,
    attempts: &[FinishedAttempt],
    failing_too_long: Timestamp,
) -> Result<Vec<ClaimOutcome>, StoreError> {
    if attempts.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = begin(pool).await?;
    lock_endpoints(&mut tx, attempts.iter().map(|a| a.endpoint_id)).await?;
    let steps: Vec<(DeliveryStatus, Option<Timestamp>, Option<Timestamp>)> = attempts
        .iter()
        .map(|a| match a.next {
            NextStep::Delivered => (DeliveryStatus::Delivered, None, Some(a.at)),
            NextStep::RetryAt(at) => (DeliveryStatus::Pending, Some(at), None),
            NextStep::GiveUp => (DeliveryStatus::Failed, None, Some(a.at)),
        })
        .collect();
    let rows = sqlx::query(
        "UPDATE webhook_deliveries d SET status = v.status, next_attempt_at = v.next, \
             claim_token = NULL, last_status_code = v.code, last_error = v.error, \
             finished_at = v.finished \
         FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], $5::int[], \
             $6::text[], $7::timestamptz[]) AS v (id, token, status, next, code, error, \
             finished) \
         WHERE d.id = v.id AND d.claim_token = v.token AND d.status = 'pending' \
         RETURNING d.id, v.token, d.order_id, d.endpoint_id, v.finished",
    )
    .bind(attempts.iter().map(|a| *a.id.as_uuid()).collect::<Vec<_>>())
    .bind(attempts.iter().map(|a| a.token).collect::<Vec<_>>())
    .bind(steps.iter().map(|s| s.0.as_str()).collect::<Vec<_>>())
    .bind(steps.iter().map(|s| s.1).collect::<Vec<_>>())
    .bind(
        attempts
            .iter()
            .map(|a| a.status_code.map(i32::from))
            .collect::<Vec<_>>(),
    )
    .bind(attempts.iter().map(|a| a.error.clone()).collect::<Vec<_>>())
    .bind(steps.iter().map(|s| s.2).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    let mut applied = HashSet::new();
    let (mut orders, mut endpoints) = (Vec::new(), Vec::new());
    for row in &rows {
        applied.insert((row.try_get::<Uuid, _>(0)?, row.try_get::<Uuid, _>(1)?));
        if row.try_get::<Option<Timestamp>, _>(4)?.is_some() {
            orders.push(row.try_get::<Uuid, _>(2)?);
            endpoints.push(row.try_get::<Uuid, _>(3)?);
        }
    }
    if !orders.is_empty() {
        // The next event of each finished delivery's order, if it waits, is due now.
        let latest = attempts.iter().map(|a| a.at).max();
        sqlx::query(
            "UPDATE webhook_deliveries d SET next_attempt_at = $3 \
             WHERE d.status = 'pending' AND d.next_attempt_at IS NULL \
             AND d.id = ANY(ARRAY( \
                 SELECT (SELECT p.id FROM webhook_deliveries p \
                         WHERE p.order_id = k.order_id AND p.endpoint_id = k.endpoint_id \
                         AND p.status = 'pending' ORDER BY p.seq LIMIT 1) \
                 FROM unnest($1::uuid[], $2::uuid[]) AS k (order_id, endpoint_id)))",
        )
        .bind(&orders)
        .bind(&endpoints)
        .bind(latest)
        .execute(&mut *tx)
        .await?;
    }
    let outcomes: Vec<ClaimOutcome> = attempts
        .iter()
        .map(|a| {
            if applied.contains(&(*a.id.as_uuid(), a.token)) {
                ClaimOutcome::Applied
            } else {
                ClaimOutcome::ClaimLost
            }
        })
        .collect();
    let recorded = outcomes.iter().map(|o| *o == ClaimOutcome::Applied);
    keep_health(&mut tx, attempts, recorded, failing_too_long).await?;
    tx.commit().await?;
    Ok(outcomes)
}
