//! Owing deliveries again (an operator's retry or recovery), with a fresh schedule and
//! in their order's turn.

use sqlx::Transaction;
use sqlx::postgres::Postgres;

use super::rows::DELIVERY_COLUMNS;
use crate::domain::{Timestamp, WebhookId};
use crate::store::StoreError;

/// Owes again the deliveries `filter` picks (`$3` on), due at `$2` unless an earlier
/// event of the order is owed to the endpoint, or owed again by the same statement
/// (failed, with an id at or after `$1`). One in flight (its lease running) is left.
pub(super) fn owe_again(filter: &str) -> String {
    format!(
        "UPDATE webhook_deliveries AS d SET status = 'pending', attempts = 0, \
             claim_token = NULL, finished_at = NULL, \
             next_attempt_at = CASE WHEN EXISTS (SELECT 1 FROM webhook_deliveries p \
                 WHERE p.order_id = d.order_id AND p.endpoint_id = d.endpoint_id \
                 AND p.seq < d.seq \
                 AND (p.status = 'pending' OR (p.status = 'failed' AND p.id >= $1))) \
             THEN NULL ELSE $2 END \
         WHERE {filter} AND NOT (d.status = 'pending' AND d.claim_token IS NOT NULL \
             AND d.next_attempt_at > $2) \
         RETURNING {DELIVERY_COLUMNS}"
    )
}

/// After owing again: any delivery of the endpoint left waiting with nothing earlier
/// owed is made due. A failed delivery the statement counted on as owed again may have
/// been pruned under it; this statement's snapshot sees that.
pub(super) async fn release_waiting(
    tx: &mut Transaction<'_, Postgres>,
    endpoint: WebhookId,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE webhook_deliveries d SET next_attempt_at = $2 \
         WHERE d.endpoint_id = $1 AND d.status = 'pending' AND d.next_attempt_at IS NULL \
         AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p \
             WHERE p.order_id = d.order_id AND p.endpoint_id = d.endpoint_id \
             AND p.seq < d.seq AND p.status = 'pending')",
    )
    .bind(endpoint.as_uuid())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
