//! Webhook deliveries: owed with the webhooks consumer's move along the log, claimed,
//! their attempts recorded, listed and sent again. The one writer runs each of these
//! alone, so the order of an order's deliveries needs no locks here.

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, Row, Transaction, params, params_from_iter};
use uuid::Uuid;

use super::SqliteStore;
use super::sql::millis;
use crate::domain::{
    Delivery, DeliveryId, DeliveryStatus, OrderId, Timestamp, WebhookId, from_millis,
};
use crate::store::claims::{claim_outcome, lease_end};
use crate::store::decode::{StoredDelivery, corrupt};
use crate::store::deliveries::{FAILING, GONE, behind_in_page, health_changes};
use crate::store::{
    ClaimOutcome, Deliveries, DeliveryClaim, DeliveryGauges, DeliveryQuery, DeliveryRooms,
    FinishedAttempt, NextStep, OwedPage, StoreError,
};

/// The columns `delivery_from_row` reads, in its order.
const DELIVERY_COLUMNS: &str = "id, endpoint_id, event_position, event_id, order_id, seq, type, \
     occurred_at, status, attempts, next_attempt_at, last_attempt_at, last_status_code, \
     last_error, created_at, finished_at";

fn delivery_from_row(row: &Row<'_>) -> Result<Delivery, StoreError> {
    let text = |column: usize| -> Result<String, StoreError> { Ok(row.get(column)?) };
    let time = |column: usize| -> rusqlite::Result<Option<Timestamp>> {
        Ok(row.get::<_, Option<i64>>(column)?.map(from_millis))
    };
    StoredDelivery {
        id: DeliveryId::from_str(&text(0)?).map_err(corrupt)?,
        endpoint_id: WebhookId::from_str(&text(1)?).map_err(corrupt)?,
        event_position: row.get(2)?,
        event_id: Uuid::try_parse(&text(3)?).map_err(corrupt)?,
        order_id: OrderId::from_str(&text(4)?).map_err(corrupt)?,
        seq: row.get(5)?,
        event_type: row.get(6)?,
        occurred_at: from_millis(row.get(7)?),
        status: row.get(8)?,
        attempts: row.get(9)?,
        next_attempt_at: time(10)?,
        last_attempt_at: time(11)?,
        last_status_code: row.get(12)?,
        last_error: row.get(13)?,
        created_at: from_millis(row.get(14)?),
        finished_at: time(15)?,
    }
    .into_delivery()
}

/// Runs a prepared statement whose rows are `DELIVERY_COLUMNS`.
fn deliveries_from(
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<Delivery>, StoreError> {
    let mut rows = stmt.query(params)?;
    let mut deliveries = Vec::new();
    while let Some(row) = rows.next()? {
        deliveries.push(delivery_from_row(row)?);
    }
    Ok(deliveries)
}

/// Whether an earlier event of a new delivery's order (`?1`, `?2`, `?3`: order,
/// endpoint, seq) is still owed to its endpoint.
const EARLIER_OWED: &str = "EXISTS (SELECT 1 FROM webhook_deliveries p \
     WHERE p.order_id = ?1 AND p.endpoint_id = ?2 AND p.seq < ?3 AND p.status = 'pending')";

/// Whether an earlier event of delivery `d`'s order is still owed to its endpoint, or
/// owed again in the same statement (failed, with an id at or after `?1`).
const EARLIER_OWED_AGAIN: &str = "EXISTS (SELECT 1 FROM webhook_deliveries p \
     WHERE p.order_id = d.order_id AND p.endpoint_id = d.endpoint_id AND p.seq < d.seq \
     AND (p.status = 'pending' OR (p.status = 'failed' AND p.id >= ?1)))";

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

/// Owes again the deliveries `filter` picks (`?3` on, given in `values`), due at `?2`
/// unless an earlier event of the order is owed to the endpoint (`?1`: the smallest id
/// that counts as owed again with them); one in flight (its lease running) is left.
/// Then any delivery of the endpoint left waiting with nothing earlier owed is made
/// due: a failed delivery the statement counted on may have been pruned under it.
fn owe_again(
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

/// Keeps each endpoint's health from the attempts recorded (`applied`, beside
/// `attempts`), and disables an endpoint that answered `410`, or whose every attempt
/// has failed since before `failing_too_long`.
fn keep_health(
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
        let (name, until) = (name.to_owned(), lease_end(now, lease));
        let page = page.clone();
        self.writer
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
        let attempts = attempts.to_vec();
        self.writer
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
