//! Owing a page of deliveries: the webhooks consumer's page written, the endpoints'
//! health kept from its first attempts, and the consumer moved past the page, in one
//! transaction.

use std::time::Duration;

use sqlx::postgres::PgPool;
use uuid::Uuid;

use super::finish::keep_health;
use super::lock_endpoints;
use super::rows::DELIVERY_COLUMNS;
use crate::domain::Timestamp;
use crate::store::claims::lease_end;
use crate::store::deliveries::behind_in_page;
use crate::store::postgres::begin;
use crate::store::{Owed, OwedPage, StoreError};

/// `Deliveries::enqueue_deliveries` on PostgreSQL.
pub(super) async fn enqueue_deliveries(
    pool: &PgPool,
    name: &str,
    holder: Uuid,
    page: &OwedPage,
    now: Timestamp,
    lease: Duration,
) -> Result<bool, StoreError> {
    let mut tx = begin(pool).await?;
    let held = sqlx::query(
        "UPDATE event_consumers SET position = $3, lease_expires_at = $4 \
         WHERE name = $1 AND holder = $2",
    )
    .bind(name)
    .bind(holder)
    .bind(page.through)
    .bind(lease_end(now, lease))
    .execute(&mut *tx)
    .await?;
    if held.rows_affected() != 1 {
        return Ok(false);
    }
    let owed = &page.owed;
    let endpoints = owed.iter().map(|o| o.delivery.endpoint_id);
    lock_endpoints(
        &mut tx,
        endpoints.chain(page.attempts.iter().map(|a| a.endpoint_id)),
    )
    .await?;
    if !owed.is_empty() {
        let column = |f: fn(&Owed) -> Uuid| owed.iter().map(f).collect::<Vec<_>>();
        // A settled delivery goes in as it is; an unsent one is due at once unless
        // one of its order's is owed before it, here or in the page.
        sqlx::query(&format!(
            "INSERT INTO webhook_deliveries ({DELIVERY_COLUMNS}, claim_token) \
             SELECT v.id, v.endpoint_id, v.position, v.event_id, v.order_id, v.seq, v.type, \
                 v.occurred_at, v.status, v.attempts, \
                 CASE WHEN v.settled THEN v.next \
                     WHEN v.behind OR EXISTS (SELECT 1 FROM webhook_deliveries p \
                         WHERE p.order_id = v.order_id AND p.endpoint_id = v.endpoint_id \
                         AND p.seq < v.seq AND p.status = 'pending') THEN NULL \
                     ELSE v.created_at END, \
                 v.last_attempt_at, v.last_status_code, v.last_error, v.created_at, \
                 v.finished_at, v.claim \
             FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::uuid[], $5::uuid[], \
                 $6::int[], $7::text[], $8::timestamptz[], $9::text[], $10::int[], \
                 $11::bool[], $12::timestamptz[], $13::bool[], $14::timestamptz[], \
                 $15::int[], $16::text[], $17::timestamptz[], $18::timestamptz[], \
                 $19::uuid[]) \
                 AS v (id, endpoint_id, position, event_id, order_id, seq, type, \
                       occurred_at, status, attempts, settled, next, behind, \
                       last_attempt_at, last_status_code, last_error, created_at, \
                       finished_at, claim) \
             WHERE EXISTS (SELECT 1 FROM webhook_endpoints w \
                 WHERE w.id = v.endpoint_id AND w.disabled_at IS NULL)"
        ))
        .bind(column(|o| *o.delivery.id.as_uuid()))
        .bind(column(|o| *o.delivery.endpoint_id.as_uuid()))
        .bind(
            owed.iter()
                .map(|o| o.delivery.event_position)
                .collect::<Vec<_>>(),
        )
        .bind(column(|o| o.delivery.event_id))
        .bind(column(|o| *o.delivery.order_id.as_uuid()))
        .bind(
            owed.iter()
                .map(|o| i32::try_from(o.delivery.seq).unwrap_or(i32::MAX))
                .collect::<Vec<_>>(),
        )
        .bind(
            owed.iter()
                .map(|o| o.delivery.event_type.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            owed.iter()
                .map(|o| o.delivery.occurred_at)
                .collect::<Vec<_>>(),
        )
        .bind(
            owed.iter()
                .map(|o| o.delivery.status.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            owed.iter()
                .map(|o| i32::try_from(o.delivery.attempts).unwrap_or(i32::MAX))
                .collect::<Vec<_>>(),
        )
        .bind(owed.iter().map(|o| o.settled).collect::<Vec<_>>())
        .bind(
            owed.iter()
                .map(|o| o.delivery.next_attempt_at)
                .collect::<Vec<_>>(),
        )
        .bind(behind_in_page(owed))
        .bind(
            owed.iter()
                .map(|o| o.delivery.last_attempt_at)
                .collect::<Vec<_>>(),
        )
        .bind(
            owed.iter()
                .map(|o| o.delivery.last_status_code.map(i32::from))
                .collect::<Vec<_>>(),
        )
        .bind(
            owed.iter()
                .map(|o| o.delivery.last_error.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            owed.iter()
                .map(|o| o.delivery.created_at)
                .collect::<Vec<_>>(),
        )
        .bind(
            owed.iter()
                .map(|o| o.delivery.finished_at)
                .collect::<Vec<_>>(),
        )
        .bind(owed.iter().map(|o| o.claim).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    if !page.attempts.is_empty() {
        keep_health(
            &mut tx,
            &page.attempts,
            std::iter::repeat(true),
            page.failing_too_long,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}
