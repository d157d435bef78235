//! Webhook deliveries: owed with the webhooks consumer's move along the log, claimed
//! with `FOR UPDATE SKIP LOCKED`, their attempts recorded, listed and sent again.
//! Whatever decides which of an order's deliveries is due (owing new ones, recording an
//! attempt, owing again) first locks the endpoints' rows, so two instances can never
//! both conclude that the other's delivery is the one to wait for. The `Deliveries`
//! impl is here; owing a page is in `enqueue`, recording attempts in `finish`, owing
//! again in `again`, reading a row in `rows`.

mod again;
mod enqueue;
mod finish;
mod rows;

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Transaction;
use sqlx::postgres::Postgres;
use uuid::Uuid;

use super::{PostgresStore, begin};
use crate::domain::{Delivery, DeliveryId, DeliveryStatus, OrderId, Timestamp, WebhookId};
use crate::store::claims::lease_end;
use crate::store::{
    ClaimOutcome, Deliveries, DeliveryClaim, DeliveryGauges, DeliveryQuery, DeliveryRooms,
    FinishedAttempt, OwedPage, StoreError,
};
use again::{owe_again, release_waiting};
use rows::{DELIVERY_COLUMNS, delivery_from_row};

/// Locks the endpoints' rows, in id order (so two lockers never wait on each other).
pub(super) async fn lock_endpoints(
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
        enqueue::enqueue_deliveries(&self.pool, name, holder, page, now, lease).await
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
        finish::finish_deliveries(&self.pool, attempts, failing_too_long).await
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
