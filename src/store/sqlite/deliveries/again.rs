//! Owing deliveries again (an operator's retry or recovery), with a fresh schedule and
//! in their order's turn.

use rusqlite::types::Value;
use rusqlite::{Transaction, params, params_from_iter};

use super::rows::{DELIVERY_COLUMNS, deliveries_from};
use crate::domain::{Delivery, DeliveryId, Timestamp, WebhookId};
use crate::store::StoreError;
use crate::store::sqlite::sql::millis;

/// Whether an earlier event of delivery `d`'s order is still owed to its endpoint, or
/// owed again in the same statement (failed, with an id at or after `?1`).
const EARLIER_OWED_AGAIN: &str = "EXISTS (SELECT 1 FROM webhook_deliveries p \
     WHERE p.order_id = d.order_id AND p.endpoint_id = d.endpoint_id AND p.seq < d.seq \
     AND (p.status = 'pending' OR (p.status = 'failed' AND p.id >= ?1)))";

/// Owes again the deliveries `filter` picks (`?3` on, given in `values`), due at `?2`
/// unless an earlier event of the order is owed to the endpoint (`?1`: the smallest id
/// that counts as owed again with them); one in flight (its lease running) is left.
/// Then any delivery of the endpoint left waiting with nothing earlier owed is made
/// due: a failed delivery the statement counted on may have been pruned under it.
pub(super) fn owe_again(
    tx: &Transaction<'_>,
    endpoint: WebhookId,
    filter: &str,
    since: DeliveryId,
    values: Vec<Value>,
    now: Timestamp,
) -> Result<Vec<Delivery>, StoreError> {
    let mut all = vec![Value::Text(since.to_string()), Value::Integer(millis(now))];
    all.extend(values);
    let mut stmt = tx.prepare_cached(&format!(
        "UPDATE webhook_deliveries AS d SET status = 'pending', attempts = 0, \
             claim_token = NULL, finished_at = NULL, \
             next_attempt_at = CASE WHEN {EARLIER_OWED_AGAIN} THEN NULL ELSE ?2 END \
         WHERE {filter} AND NOT (d.status = 'pending' AND d.claim_token IS NOT NULL \
             AND d.next_attempt_at > ?2) \
         RETURNING {DELIVERY_COLUMNS}"
    ))?;
    let again = deliveries_from(&mut stmt, params_from_iter(all))?;
    tx.prepare_cached(
        "UPDATE webhook_deliveries AS d SET next_attempt_at = ?2 \
         WHERE d.endpoint_id = ?1 AND d.status = 'pending' AND d.next_attempt_at IS NULL \
         AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p \
             WHERE p.order_id = d.order_id AND p.endpoint_id = d.endpoint_id \
             AND p.seq < d.seq AND p.status = 'pending')",
    )?
    .execute(params![endpoint.to_string(), millis(now)])?;
    Ok(again)
}
