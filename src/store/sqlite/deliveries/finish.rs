//! Recording attempts: each delivery's outcome if its claim is still current, the next
//! event of its order made due, and each endpoint's health kept (or the endpoint
//! disabled).

use rusqlite::{OptionalExtension, Transaction, params};

use crate::domain::{DeliveryStatus, Timestamp};
use crate::store::claims::claim_outcome;
use crate::store::deliveries::{FAILING, GONE, health_changes};
use crate::store::sqlite::sql::millis;
use crate::store::sqlite::writer::Writer;
use crate::store::{ClaimOutcome, FinishedAttempt, NextStep, StoreError};

/// Makes the next event of an order owed to an endpoint due, if it waits: after the
/// one before it was delivered or failed for good.
fn promote_next(
    tx: &Transaction<'_>,
    order_id: &str,
    endpoint_id: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE webhook_deliveries SET next_attempt_at = ?3 WHERE id = ( \
             SELECT id FROM webhook_deliveries \
             WHERE order_id = ?1 AND endpoint_id = ?2 AND status = 'pending' \
             ORDER BY seq LIMIT 1) \
         AND next_attempt_at IS NULL",
    )?
    .execute(params![order_id, endpoint_id, millis(now)])?;
    Ok(())
}

/// Keeps each endpoint's health from the attempts recorded (`applied`, beside
/// `attempts`), and disables an endpoint that answered `410`, or whose every attempt
/// has failed since before `failing_too_long`.
pub(super) fn keep_health(
    tx: &Transaction<'_>,
    attempts: &[FinishedAttempt],
    applied: impl IntoIterator<Item = bool>,
    failing_too_long: Timestamp,
) -> Result<(), StoreError> {
    for change in health_changes(attempts, applied) {
        tx.prepare_cached(
            // Batches of several instances commit in any order: a
            // success or a failure older than the last success recorded
            // changes nothing.
            "UPDATE webhook_endpoints SET \
                 last_delivered_at = CASE WHEN ?2 > COALESCE(last_delivered_at, 0) \
                     THEN ?2 ELSE last_delivered_at END, \
                 failing_since = CASE \
                     WHEN ?2 > COALESCE(last_delivered_at, 0) THEN ?3 \
                     WHEN ?3 > COALESCE(last_delivered_at, 0) \
                         THEN COALESCE(failing_since, ?3) \
                     ELSE failing_since END \
             WHERE id = ?1",
        )?
        .execute(params![
            change.id.to_string(),
            change.delivered_at.map(millis),
            change.failing_from.map(millis),
        ])?;
        tx.prepare_cached(
            "UPDATE webhook_endpoints SET disabled_at = ?2, \
                 disabled_reason = CASE WHEN ?3 THEN ?4 ELSE ?5 END, \
                 updated_at = ?2, revision = revision + 1 \
             WHERE id = ?1 AND disabled_at IS NULL \
             AND (?3 OR failing_since <= ?6)",
        )?
        .execute(params![
            change.id.to_string(),
            millis(change.gone_at.unwrap_or(change.last_at)),
            change.gone_at.is_some(),
            GONE,
            FAILING,
            millis(failing_too_long),
        ])?;
    }
    Ok(())
}

/// `Deliveries::finish_deliveries` on SQLite.
pub(super) async fn finish_deliveries(
    writer: &Writer,
    attempts: &[FinishedAttempt],
    failing_too_long: Timestamp,
) -> Result<Vec<ClaimOutcome>, StoreError> {
    let attempts = attempts.to_vec();
    writer
        .transaction(move |tx| {
            let mut record = tx.prepare_cached(
                "UPDATE webhook_deliveries SET status = ?3, next_attempt_at = ?4, \
                     claim_token = NULL, last_status_code = ?5, last_error = ?6, \
                     finished_at = ?7 \
                 WHERE id = ?1 AND claim_token = ?2 AND status = 'pending' \
                 RETURNING order_id, endpoint_id",
            )?;
            let mut outcomes = Vec::with_capacity(attempts.len());
            for attempt in &attempts {
                let (status, next, finished) = match attempt.next {
                    NextStep::Delivered => (DeliveryStatus::Delivered, None, Some(attempt.at)),
                    NextStep::RetryAt(at) => (DeliveryStatus::Pending, Some(at), None),
                    NextStep::GiveUp => (DeliveryStatus::Failed, None, Some(attempt.at)),
                };
                let recorded: Option<(String, String)> = record
                    .query_row(
                        params![
                            attempt.id.to_string(),
                            attempt.token.to_string(),
                            status.as_str(),
                            next.map(millis),
                            attempt.status_code,
                            attempt.error,
                            finished.map(millis),
                        ],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )
                    .optional()?;
                if let Some((order_id, endpoint_id)) = &recorded
                    && finished.is_some()
                {
                    promote_next(tx, order_id, endpoint_id, attempt.at)?;
                }
                outcomes.push(claim_outcome(u64::from(recorded.is_some())));
            }
            drop(record);
            let applied = outcomes.iter().map(|o| *o == ClaimOutcome::Applied);
            keep_health(tx, &attempts, applied, failing_too_long)?;
            Ok(outcomes)
        })
        .await
}
