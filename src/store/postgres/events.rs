//! Reading the event log. Across the log, only positions below the horizon (the oldest
//! transaction still running, migration 0005) are read, so a transaction that commits
//! late can never slip an event in behind a reader. One order's events need no
//! horizon: each change of an order waits for the one before to commit.

use std::str::FromStr;

use async_trait::async_trait;

use super::sql::{EVENT_SELECT, event_from_row};
use super::{PostgresStore, begin};
use crate::domain::{EventType, OrderEvent, OrderId, Timestamp};
use crate::store::decode::corrupt;
use crate::store::{ActivityCount, Events, Pruned, StoreError};

#[async_trait]
impl Events for PostgresStore {
    async fn order_events(&self, id: OrderId, after: i64) -> Result<Vec<OrderEvent>, StoreError> {
        let sql =
            format!("{EVENT_SELECT} WHERE e.order_id = $1 AND e.position > $2 ORDER BY e.seq");
        let rows = sqlx::query(&sql)
            .bind(id.as_uuid())
            .bind(after)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn events_after(&self, after: i64, limit: usize) -> Result<Vec<OrderEvent>, StoreError> {
        let sql = format!(
            "{EVENT_SELECT} WHERE e.position > $1 AND e.position < order_event_horizon() \
             ORDER BY e.position LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn events_at(&self, positions: &[i64]) -> Result<Vec<OrderEvent>, StoreError> {
        let sql = format!("{EVENT_SELECT} WHERE e.position = ANY($1) ORDER BY e.position");
        let rows = sqlx::query(&sql)
            .bind(positions)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn activity(&self, since: Timestamp) -> Result<Vec<ActivityCount>, StoreError> {
        // The time's BRIN index (migration 0010) finds the window's blocks: the log is
        // written in time order, so a few block ranges hold the last hour.
        let rows: Vec<(Timestamp, String, i64)> = sqlx::query_as(
            "SELECT date_trunc('minute', occurred_at), type, count(*) FROM order_events \
             WHERE occurred_at >= date_trunc('minute', $1::timestamptz) GROUP BY 1, 2",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(minute, kind, n)| {
                Ok(ActivityCount {
                    minute,
                    event_type: EventType::from_str(&kind).map_err(corrupt)?,
                    count: n.unsigned_abs(),
                })
            })
            .collect()
    }

    async fn last_position(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COALESCE(max(position), 0) FROM order_events \
             WHERE position < order_event_horizon()",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    async fn prune_events(
        &self,
        before: Timestamp,
        after: i64,
        scan: usize,
        keep_after: i64,
    ) -> Result<Pruned, StoreError> {
        let mut tx = begin(&self.pool).await?;
        // The window: the next `scan` events by position.
        let (last, oldest): (Option<i64>, Option<Timestamp>) = sqlx::query_as(
            "SELECT max(position), min(occurred_at) FROM (SELECT position, occurred_at \
             FROM order_events WHERE position > $1 ORDER BY position LIMIT $2) w",
        )
        .bind(after)
        .bind(i64::try_from(scan).unwrap_or(i64::MAX))
        .fetch_one(&mut *tx)
        .await?;
        let (Some(last), Some(oldest)) = (last, oldest) else {
            return Ok(Pruned::default());
        };
        let deleted = sqlx::query(
            "DELETE FROM order_events e USING orders o \
             WHERE o.id = e.order_id AND e.position > $1 AND e.position <= $2 \
             AND e.occurred_at < $3 \
             AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d \
                 WHERE d.order_id = e.order_id AND d.seq = e.seq AND d.status = 'pending') \
             AND ((o.status = 'Completed' AND o.completed_at < $3) \
                  OR (o.status = 'Cancelled' AND o.cancelled_at < $3))",
        )
        .bind(after)
        .bind(last.min(keep_after))
        .bind(before)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Pruned {
            deleted: deleted.rows_affected(),
            next_after: (oldest < before).then_some(last),
        })
    }
}
