//! Owing a page of deliveries: the webhooks consumer's page written, the endpoints'
//! health kept from its first attempts, and the consumer moved past the page, in one
//! transaction.

use std::time::Duration;

use rusqlite::params;
use uuid::Uuid;

use super::finish::keep_health;
use super::rows::DELIVERY_COLUMNS;
use crate::domain::Timestamp;
use crate::store::claims::lease_end;
use crate::store::deliveries::behind_in_page;
use crate::store::sqlite::sql::millis;
use crate::store::sqlite::writer::Writer;
use crate::store::{OwedPage, StoreError};

/// Whether an earlier event of a new delivery's order (`?1`, `?2`, `?3`: order,
/// endpoint, seq) is still owed to its endpoint.
const EARLIER_OWED: &str = "EXISTS (SELECT 1 FROM webhook_deliveries p \
     WHERE p.order_id = ?1 AND p.endpoint_id = ?2 AND p.seq < ?3 AND p.status = 'pending')";

/// `Deliveries::enqueue_deliveries` on SQLite.
pub(super) async fn enqueue_deliveries(
    writer: &Writer,
    name: &str,
    holder: Uuid,
    page: &OwedPage,
    now: Timestamp,
    lease: Duration,
) -> Result<bool, StoreError> {
    let (name, until) = (name.to_owned(), lease_end(now, lease));
    let page = page.clone();
    writer
        .transaction(move |tx| {
            let held = tx
                .prepare_cached(
                    "UPDATE event_consumers SET position = ?3, lease_expires_at = ?4 \
                     WHERE name = ?1 AND holder = ?2",
                )?
                .execute(params![
                    name,
                    holder.to_string(),
                    page.through,
                    millis(until)
                ])?;
            if held != 1 {
                return Ok(false);
            }
            // A settled delivery goes in as it is; an unsent one is due at once
            // unless one of its order's is owed before it, here or in the page.
            let mut insert = tx.prepare_cached(&format!(
                "INSERT INTO webhook_deliveries ({DELIVERY_COLUMNS}, claim_token) \
                 SELECT ?4, ?2, ?5, ?6, ?1, ?3, ?7, ?8, ?9, ?10, \
                     CASE WHEN ?11 THEN ?12 WHEN ?13 OR {EARLIER_OWED} THEN NULL \
                         ELSE ?16 END, \
                     ?14, ?15, ?17, ?16, ?18, ?19 \
                 WHERE EXISTS (SELECT 1 FROM webhook_endpoints \
                     WHERE id = ?2 AND disabled_at IS NULL)"
            ))?;
            for (owed, behind) in page.owed.iter().zip(behind_in_page(&page.owed)) {
                let d = &owed.delivery;
                insert.execute(params![
                    d.order_id.to_string(),
                    d.endpoint_id.to_string(),
                    d.seq,
                    d.id.to_string(),
                    d.event_position,
                    d.event_id.hyphenated().to_string(),
                    d.event_type.as_str(),
                    millis(d.occurred_at),
                    d.status.as_str(),
                    d.attempts,
                    owed.settled,
                    d.next_attempt_at.map(millis),
                    behind,
                    d.last_attempt_at.map(millis),
                    d.last_status_code,
                    millis(d.created_at),
                    d.last_error,
                    d.finished_at.map(millis),
                    owed.claim.map(|token| token.to_string()),
                ])?;
            }
            drop(insert);
            keep_health(
                tx,
                &page.attempts,
                std::iter::repeat(true),
                page.failing_too_long,
            )?;
            Ok(true)
        })
        .await
}
