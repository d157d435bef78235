//! Webhook deliveries: owed with the webhooks consumer's move along the log, claimed
//! with `FOR UPDATE SKIP LOCKED`, their attempts recorded, listed and sent again.
//! Whatever decides which of an order's deliveries is due (owing new ones, recording an
//! attempt, owing again) first locks the endpoints' rows, so two instances can never
//! both conclude that the other's delivery is the one to wait for.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgRow, Postgres};
use sqlx::{Row, Transaction};
use uuid::Uuid;

use super::{PostgresStore, begin};
use crate::domain::{Delivery, DeliveryId, DeliveryStatus, OrderId, Timestamp, WebhookId};
use crate::store::claims::lease_end;
use crate::store::decode::StoredDelivery;
use crate::store::deliveries::{FAILING, GONE, behind_in_page, health_changes};
use crate::store::{
    ClaimOutcome, Deliveries, DeliveryClaim, DeliveryGauges, DeliveryQuery, DeliveryRooms,
    FinishedAttempt, NextStep, Owed, OwedPage, StoreError,
};

/// The columns `delivery_from_row` reads.
const DELIVERY_COLUMNS: &str = "id, endpoint_id, event_position, event_id, order_id, seq, type, \
     occurred_at, status, attempts, next_attempt_at, last_attempt_at, last_status_code, \
     last_error, created_at, finished_at";

fn delivery_from_row(row: &PgRow) -> Result<Delivery, StoreError> {
    StoredDelivery {
        id: DeliveryId::from_uuid(row.try_get("id")?),
        endpoint_id: WebhookId::from_uuid(row.try_get("endpoint_id")?),
        event_position: row.try_get("event_position")?,
        event_id: row.try_get("event_id")?,
        order_id: OrderId::from_uuid(row.try_get("order_id")?),
        seq: i64::from(row.try_get::<i32, _>("seq")?),
        event_type: row.try_get("type")?,
        occurred_at: row.try_get("occurred_at")?,
        status: row.try_get("status")?,
        attempts: i64::from(row.try_get::<i32, _>("attempts")?),
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_attempt_at: row.try_get("last_attempt_at")?,
        last_status_code: row
            .try_get::<Option<i32>, _>("last_status_code")?
            .map(i64::from),
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        finished_at: row.try_get("finished_at")?,
    }
    .into_delivery()
}

/// Locks the endpoints' rows, in id order (so two lockers never wait on each other).
async fn lock_endpoints(
    tx: &mut Transaction<'_, Postgres>,
    endpoints: impl IntoIterator<Item = WebhookId>,
) -> Result<(), StoreError> {
    let mut ids: Vec<Uuid> = endpoints.into_iter().map(|id| *id.as_uuid()).collect();
    ids.sort_unstable();
    ids.dedup();
    sqlx::query("SELECT 1 FROM webhook_endpoints WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(&ids)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Owes again the deliveries `filter` picks (`$3` on), due at `$2` unless an earlier
/// event of the order is owed to the endpoint, or owed again by the same statement
/// (failed, with an id at or after `$1`). One in flight (its lease running) is left.
fn owe_again(filter: &str) -> String {
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
async fn release_waiting(
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

/// Keeps each endpoint's health from the attempts recorded (`applied`, beside
/// `attempts`), and disables an endpoint that answered `410`, or whose every attempt
/// has failed since before `failing_too_long`.
async fn keep_health(
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

#[async_trait]
impl Deliveries for PostgresStore {
    async fn enqueue_deliveries(
        &self,
        name: &str,
        holder: Uuid,
        page: &OwedPage,
        now: Timestamp,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let mut tx = begin(&self.pool).await?;
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

    async fn owing(
        &self,
        pairs: &[(OrderId, WebhookId)],
    ) -> Result<HashSet<(OrderId, WebhookId)>, StoreError> {
        let rows: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT DISTINCT d.order_id, d.endpoint_id FROM webhook_deliveries d \
             JOIN unnest($1::uuid[], $2::uuid[]) AS k (order_id, endpoint_id) \
                 ON d.order_id = k.order_id AND d.endpoint_id = k.endpoint_id \
             WHERE d.status = 'pending'",
        )
        .bind(pairs.iter().map(|(o, _)| *o.as_uuid()).collect::<Vec<_>>())
        .bind(pairs.iter().map(|(_, e)| *e.as_uuid()).collect::<Vec<_>>())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(order, endpoint)| (OrderId::from_uuid(order), WebhookId::from_uuid(endpoint)))
            .collect())
    }

    async fn claim_deliveries(
        &self,
        rooms: &DeliveryRooms,
        limit: usize,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Vec<DeliveryClaim>, StoreError> {
        let token = Uuid::new_v4();
        let excepted: Vec<(Uuid, i64)> = rooms
            .except
            .iter()
            .map(|(id, room)| (*id.as_uuid(), i64::try_from(*room).unwrap_or(i64::MAX)))
            .collect();
        // SKIP LOCKED: instances claiming at once pass over each other's rows. The
        // condition is checked again on the row found, which another may have changed.
        let rows = sqlx::query(&format!(
            "UPDATE webhook_deliveries d SET claim_token = $1, next_attempt_at = $2, \
                 attempts = d.attempts + 1, last_attempt_at = $3 \
             WHERE d.status = 'pending' AND d.next_attempt_at <= $3 \
             AND d.id = ANY(ARRAY( \
                 SELECT due.id FROM ( \
                     SELECT e.id, COALESCE(r.room, $4) AS room FROM webhook_endpoints e \
                     LEFT JOIN unnest($5::uuid[], $6::bigint[]) AS r (id, room) \
                         ON r.id = e.id \
                     WHERE e.disabled_at IS NULL \
                     ORDER BY random()) w CROSS JOIN LATERAL ( \
                     SELECT id FROM webhook_deliveries \
                     WHERE endpoint_id = w.id AND status = 'pending' \
                     AND next_attempt_at <= $3 \
                     ORDER BY next_attempt_at LIMIT w.room FOR UPDATE SKIP LOCKED) due \
                 LIMIT $7)) \
             RETURNING {DELIVERY_COLUMNS}"
        ))
        .bind(token)
        .bind(lease_end(now, lease))
        .bind(now)
        .bind(i64::try_from(rooms.each).unwrap_or(i64::MAX))
        .bind(excepted.iter().map(|(id, _)| *id).collect::<Vec<_>>())
        .bind(excepted.iter().map(|(_, room)| *room).collect::<Vec<_>>())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(DeliveryClaim {
                    delivery: delivery_from_row(row)?,
                    token,
                })
            })
            .collect()
    }

    async fn finish_deliveries(
        &self,
        attempts: &[FinishedAttempt],
        failing_too_long: Timestamp,
    ) -> Result<Vec<ClaimOutcome>, StoreError> {
        if attempts.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = begin(&self.pool).await?;
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

    async fn deliveries(&self, query: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
             WHERE endpoint_id = $1 AND ($2::text IS NULL OR status = $2) \
             AND ($3::uuid IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
        ))
        .bind(query.endpoint_id.as_uuid())
        .bind(query.status.map(DeliveryStatus::as_str))
        .bind(query.before.map(|id| *id.as_uuid()))
        .bind(i64::try_from(query.limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn retry_delivery(
        &self,
        endpoint: WebhookId,
        id: DeliveryId,
        now: Timestamp,
    ) -> Result<Option<Delivery>, StoreError> {
        let mut tx = begin(&self.pool).await?;
        lock_endpoints(&mut tx, [endpoint]).await?;
        // The id itself: nothing else is owed again with it.
        let again = sqlx::query(&owe_again("d.endpoint_id = $3 AND d.id = $4"))
            .bind(Uuid::max())
            .bind(now)
            .bind(endpoint.as_uuid())
            .bind(id.as_uuid())
            .fetch_optional(&mut *tx)
            .await?;
        release_waiting(&mut tx, endpoint, now).await?;
        let row = match again {
            Some(row) => Some(row),
            // In flight (left as it is), or none.
            None => {
                sqlx::query(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
                     WHERE endpoint_id = $1 AND id = $2"
                ))
                .bind(endpoint.as_uuid())
                .bind(id.as_uuid())
                .fetch_optional(&mut *tx)
                .await?
            }
        };
        tx.commit().await?;
        row.as_ref().map(delivery_from_row).transpose()
    }

    async fn recover_deliveries(
        &self,
        endpoint: WebhookId,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut tx = begin(&self.pool).await?;
        lock_endpoints(&mut tx, [endpoint]).await?;
        let since = DeliveryId::first_at(since);
        let again = sqlx::query(&owe_again(
            "d.endpoint_id = $3 AND d.status = 'failed' AND d.id >= $1",
        ))
        .bind(since.as_uuid())
        .bind(now)
        .bind(endpoint.as_uuid())
        .fetch_all(&mut *tx)
        .await?;
        release_waiting(&mut tx, endpoint, now).await?;
        tx.commit().await?;
        Ok(again.len() as u64)
    }

    async fn prune_deliveries(&self, before: Timestamp, limit: usize) -> Result<u64, StoreError> {
        let deleted = sqlx::query(
            "DELETE FROM webhook_deliveries WHERE id IN ( \
                 SELECT id FROM webhook_deliveries \
                 WHERE id < $1 AND status <> 'pending' AND finished_at < $2 \
                 ORDER BY id LIMIT $3)",
        )
        .bind(DeliveryId::first_at(before).as_uuid())
        .bind(before)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        Ok(deleted.rows_affected())
    }

    async fn delivery_gauges(&self) -> Result<DeliveryGauges, StoreError> {
        let (pending, disabled): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'), \
                    (SELECT count(*) FROM webhook_endpoints WHERE disabled_at IS NOT NULL)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(DeliveryGauges {
            pending: u64::try_from(pending).unwrap_or_default(),
            disabled_endpoints: u64::try_from(disabled).unwrap_or_default(),
        })
    }
}
