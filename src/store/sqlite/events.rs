//! Reading the event log. The one writer commits one transaction after another, so
//! positions become visible in order and a reader may page by them as they are.

use std::str::FromStr;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::sql::{EVENT_SELECT, events_from, millis};
use crate::domain::{EventType, OrderEvent, OrderId, Timestamp, from_millis};
use crate::store::decode::corrupt;
use crate::store::{ActivityCount, Events, Pruned, StoreError};

/// A minute, in milliseconds.
const MINUTE: i64 = 60_000;

#[async_trait]
impl Events for SqliteStore {
    async fn order_events(&self, id: OrderId, after: i64) -> Result<Vec<OrderEvent>, StoreError> {
        self.readers
            .read_blocking(move |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "{EVENT_SELECT} WHERE e.order_id = ?1 AND e.position > ?2 ORDER BY e.seq"
                ))?;
                events_from(&mut stmt, params![id.to_string(), after])
            })
            .await
    }

    async fn events_after(&self, after: i64, limit: usize) -> Result<Vec<OrderEvent>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.readers
            .read_blocking(move |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "{EVENT_SELECT} WHERE e.position > ?1 ORDER BY e.position LIMIT ?2"
                ))?;
                events_from(&mut stmt, params![after, limit])
            })
            .await
    }

    async fn events_at(&self, positions: &[i64]) -> Result<Vec<OrderEvent>, StoreError> {
        let positions = serde_json::to_string(positions).expect("numbers serialise");
        self.readers
            .read_blocking(move |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "{EVENT_SELECT} WHERE e.position IN (SELECT value FROM json_each(?1)) \
                     ORDER BY e.position"
                ))?;
                events_from(&mut stmt, [positions])
            })
            .await
    }

    async fn activity(&self, since: Timestamp) -> Result<Vec<ActivityCount>, StoreError> {
        let from = millis(since).div_euclid(MINUTE) * MINUTE;
        self.readers
            .read_blocking(move |conn| {
                // No index on the time (it would cost every event a second entry): the
                // positions follow it, so the first event of the window is found by
                // bisecting positions, from a minute before it for transactions that
                // committed a little out of time order; the count reads on from there.
                let mut first = conn.prepare_cached(
                    "SELECT position, occurred_at FROM order_events WHERE position >= ?1 \
                     ORDER BY position LIMIT 1",
                )?;
                let bounds: (Option<i64>, Option<i64>) = conn
                    .prepare_cached("SELECT min(position), max(position) FROM order_events")?
                    .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
                let (Some(mut lo), Some(mut hi)) = bounds else {
                    return Ok(Vec::new());
                };
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    // None if retention deleted the rest meanwhile: the window is
                    // before `mid`, if anywhere.
                    let found: Option<(i64, i64)> = first
                        .query_row([mid], |row| Ok((row.get(0)?, row.get(1)?)))
                        .optional()?;
                    match found {
                        Some((position, at)) if at < from - MINUTE => lo = position + 1,
                        _ => hi = mid,
                    }
                }
                let mut count = conn.prepare_cached(
                    "SELECT occurred_at / 60000 * 60000, type, count(*) FROM order_events \
                     WHERE position >= ?1 AND occurred_at >= ?2 GROUP BY 1, 2",
                )?;
                let rows = count.query_map(params![lo, from], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                })?;
                let mut counts = Vec::new();
                for row in rows {
                    let (minute, kind, n) = row?;
                    counts.push(ActivityCount {
                        minute: from_millis(minute),
                        event_type: EventType::from_str(&kind).map_err(corrupt)?,
                        count: n.unsigned_abs(),
                    });
                }
                Ok(counts)
            })
            .await
    }

    async fn last_position(&self) -> Result<i64, StoreError> {
        self.readers.read(|conn| {
            Ok(conn
                .prepare_cached("SELECT COALESCE(max(position), 0) FROM order_events")?
                .query_row([], |row| row.get(0))?)
        })
    }

    async fn prune_events(
        &self,
        before: Timestamp,
        after: i64,
        scan: usize,
        keep_after: i64,
    ) -> Result<Pruned, StoreError> {
        let scan = i64::try_from(scan).unwrap_or(i64::MAX);
        self.writer
            .transaction(move |tx| {
                // The window: the next `scan` events by position (the rowid, so a range).
                let (last, oldest): (Option<i64>, Option<i64>) = tx
                    .prepare_cached(
                        "SELECT max(position), min(occurred_at) FROM (SELECT position, \
                         occurred_at FROM order_events WHERE position > ?1 \
                         ORDER BY position LIMIT ?2)",
                    )?
                    .query_row(params![after, scan], |row| Ok((row.get(0)?, row.get(1)?)))?;
                let (Some(last), Some(oldest)) = (last, oldest) else {
                    return Ok(Pruned::default());
                };
                // Never the newest event: positions are rowids, one more than the largest
                // left, and must never be handed out twice (migration 0007).
                let deleted = tx
                    .prepare_cached(
                        "DELETE FROM order_events WHERE position IN ( \
                             SELECT e.position FROM order_events e \
                             JOIN orders o ON o.id = e.order_id \
                             WHERE e.position > ?1 AND e.position <= ?2 \
                             AND e.occurred_at < ?3 \
                             AND e.position < (SELECT max(position) FROM order_events) \
                             AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d \
                                 WHERE d.order_id = e.order_id AND d.seq = e.seq \
                                 AND d.status = 'pending') \
                             AND ((o.status = 'Completed' AND o.completed_at < ?3) \
                                  OR (o.status = 'Cancelled' AND o.cancelled_at < ?3)))",
                    )?
                    .execute(params![after, last.min(keep_after), millis(before)])?;
                Ok(Pruned {
                    deleted: deleted as u64,
                    next_after: (oldest < millis(before)).then_some(last),
                })
            })
            .await
    }
}
