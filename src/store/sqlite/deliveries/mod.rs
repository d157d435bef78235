//! Webhook deliveries: owed with the webhooks consumer's move along the log, claimed,
//! their attempts recorded, listed and sent again. The one writer runs each of these
//! alone, so the order of an order's deliveries needs no locks here. The `Deliveries`
//! impl is here; owing a page is in `enqueue`, recording attempts in `finish`, owing
//! again in `again`, reading a row in `rows`.

mod again;
mod enqueue;
mod finish;
mod rows;

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, params, params_from_iter};
use uuid::Uuid;

use super::SqliteStore;
use super::sql::millis;
use crate::domain::{Delivery, DeliveryId, OrderId, Timestamp, WebhookId};
use crate::store::claims::lease_end;
use crate::store::decode::corrupt;
use crate::store::{
    ClaimOutcome, Deliveries, DeliveryClaim, DeliveryGauges, DeliveryQuery, DeliveryRooms,
    FinishedAttempt, OwedPage, StoreError,
};
use again::owe_again;
use rows::{DELIVERY_COLUMNS, deliveries_from, delivery_from_row};

#[async_trait]
impl Deliveries for SqliteStore {
    async fn enqueue_deliveries(
        &self,
        name: &str,
        holder: Uuid,
        page: &OwedPage,
        now: Timestamp,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        enqueue::enqueue_deliveries(&self.writer, name, holder, page, now, lease).await
    }

    async fn owing(
        &self,
        pairs: &[(OrderId, WebhookId)],
    ) -> Result<HashSet<(OrderId, WebhookId)>, StoreError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(order, endpoint)| (order.to_string(), endpoint.to_string()))
            .collect();
        self.readers
            .read_blocking(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT 1 FROM webhook_deliveries \
                     WHERE order_id = ?1 AND endpoint_id = ?2 AND status = 'pending' LIMIT 1",
                )?;
                let mut owing = HashSet::new();
                for (order, endpoint) in pairs {
                    if stmt.exists(params![order, endpoint])? {
                        owing.insert((
                            OrderId::from_str(&order).map_err(corrupt)?,
                            WebhookId::from_str(&endpoint).map_err(corrupt)?,
                        ));
                    }
                }
                Ok(owing)
            })
            .await
    }

    async fn claim_deliveries(
        &self,
        rooms: &DeliveryRooms,
        limit: usize,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Vec<DeliveryClaim>, StoreError> {
        // Which enabled endpoints have something due, read without the writer: an idle
        // sender polling costs no write.
        let due: Vec<String> = self.readers.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT w.id FROM webhook_endpoints w WHERE w.disabled_at IS NULL \
                 AND EXISTS (SELECT 1 FROM webhook_deliveries d \
                     WHERE d.endpoint_id = w.id AND d.status = 'pending' \
                     AND d.next_attempt_at IS NOT NULL AND d.next_attempt_at <= ?1) \
                 ORDER BY random()",
            )?;
            let rows = stmt.query_map([millis(now)], |row| row.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })?;
        if due.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let token = Uuid::new_v4();
        let until = lease_end(now, lease);
        let endpoints: Vec<(String, usize)> = due
            .into_iter()
            .filter_map(|id| {
                let room = WebhookId::from_str(&id).map_or(rooms.each, |e| rooms.of(e));
                (room > 0).then_some((id, room))
            })
            .collect();
        self.writer
            .transaction(move |tx| {
                let mut claim = tx.prepare_cached(&format!(
                    "UPDATE webhook_deliveries SET claim_token = ?1, next_attempt_at = ?2, \
                         attempts = attempts + 1, last_attempt_at = ?3 \
                     WHERE id IN (SELECT id FROM webhook_deliveries \
                         WHERE endpoint_id = ?4 AND status = 'pending' \
                         AND next_attempt_at <= ?3 ORDER BY next_attempt_at LIMIT ?5) \
                     RETURNING {DELIVERY_COLUMNS}"
                ))?;
                let mut claims = Vec::new();
                for (endpoint, room) in endpoints {
                    let room = room.min(limit - claims.len());
                    if room == 0 {
                        break;
                    }
                    let claimed = deliveries_from(
                        &mut claim,
                        params![
                            token.to_string(),
                            millis(until),
                            millis(now),
                            endpoint,
                            i64::try_from(room).unwrap_or(i64::MAX)
                        ],
                    )?;
                    claims.extend(
                        claimed
                            .into_iter()
                            .map(|delivery| DeliveryClaim { delivery, token }),
                    );
                }
                Ok(claims)
            })
            .await
    }

    async fn finish_deliveries(
        &self,
        attempts: &[FinishedAttempt],
        failing_too_long: Timestamp,
    ) -> Result<Vec<ClaimOutcome>, StoreError> {
        finish::finish_deliveries(&self.writer, attempts, failing_too_long).await
    }

    async fn deliveries(&self, query: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
        let mut values = vec![Value::Text(query.endpoint_id.to_string())];
        let mut sql =
            format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE endpoint_id = ?1");
        if let Some(status) = query.status {
            values.push(Value::Text(status.as_str().to_owned()));
            sql.push_str(&format!(" AND status = ?{}", values.len()));
        }
        if let Some(before) = query.before {
            values.push(Value::Text(before.to_string()));
            sql.push_str(&format!(" AND id < ?{}", values.len()));
        }
        values.push(Value::Integer(
            i64::try_from(query.limit).unwrap_or(i64::MAX),
        ));
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", values.len()));
        self.readers
            .read_blocking(move |conn| {
                let mut stmt = conn.prepare_cached(&sql)?;
                deliveries_from(&mut stmt, params_from_iter(values))
            })
            .await
    }

    async fn retry_delivery(
        &self,
        endpoint: WebhookId,
        id: DeliveryId,
        now: Timestamp,
    ) -> Result<Option<Delivery>, StoreError> {
        self.writer
            .transaction(move |tx| {
                let values = vec![
                    Value::Text(endpoint.to_string()),
                    Value::Text(id.to_string()),
                ];
                // The id itself: nothing else is being recovered with it.
                let since = DeliveryId::from_uuid(Uuid::max());
                if let Some(again) = owe_again(
                    tx,
                    endpoint,
                    "d.endpoint_id = ?3 AND d.id = ?4",
                    since,
                    values,
                    now,
                )?
                .pop()
                {
                    return Ok(Some(again));
                }
                // In flight (left as it is), or none.
                tx.prepare_cached(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
                         WHERE endpoint_id = ?1 AND id = ?2"
                ))?
                .query_row(params![endpoint.to_string(), id.to_string()], |row| {
                    Ok(delivery_from_row(row))
                })
                .optional()?
                .transpose()
            })
            .await
    }

    async fn recover_deliveries(
        &self,
        endpoint: WebhookId,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let since = DeliveryId::first_at(since);
        self.writer
            .transaction(move |tx| {
                let values = vec![Value::Text(endpoint.to_string())];
                let again = owe_again(
                    tx,
                    endpoint,
                    "d.endpoint_id = ?3 AND d.status = 'failed' AND d.id >= ?1",
                    since,
                    values,
                    now,
                )?;
                Ok(again.len() as u64)
            })
            .await
    }

    async fn prune_deliveries(&self, before: Timestamp, limit: usize) -> Result<u64, StoreError> {
        let (first, limit) = (
            DeliveryId::first_at(before),
            i64::try_from(limit).unwrap_or(i64::MAX),
        );
        self.writer
            .transaction(move |tx| {
                Ok(tx
                    .prepare_cached(
                        "DELETE FROM webhook_deliveries WHERE id IN ( \
                             SELECT id FROM webhook_deliveries \
                             WHERE id < ?1 AND status <> 'pending' AND finished_at < ?2 \
                             ORDER BY id LIMIT ?3)",
                    )?
                    .execute(params![first.to_string(), millis(before), limit])?
                    as u64)
            })
            .await
    }

    async fn delivery_gauges(&self) -> Result<DeliveryGauges, StoreError> {
        self.readers.read(|conn| {
            let (pending, disabled): (i64, i64) = conn
                .prepare_cached(
                    "SELECT (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'), \
                            (SELECT count(*) FROM webhook_endpoints WHERE disabled_at IS NOT NULL)",
                )?
                .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            Ok(DeliveryGauges {
                pending: u64::try_from(pending).unwrap_or_default(),
                disabled_endpoints: u64::try_from(disabled).unwrap_or_default(),
            })
        })
    }
}
