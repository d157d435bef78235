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

/// Makes a page of the log, in the transaction that reads it next, a walk of its
/// primary key from the position on, stopped by the limit. On a table never analysed
/// (a young one, or a server without autovacuum) the planner guesses the range at 0.5%
/// of the table, fewer rows than a page, and plans the page as a read of every event
/// past the position, each joined to its order, then sorted: a page cost more the
/// longer the backlog (BENCHMARKS.md, "Reading a page of the log on PostgreSQL").
/// Local to the transaction, so nothing else is planned with them off.
const WALK_IN_ORDER: &str =
    "SELECT set_config('enable_bitmapscan', 'off', true), set_config('enable_sort', 'off', true)";

/// A page of the log: the events after `$1`, below the horizon, `$2` at most.
fn page_sql() -> String {
    format!(
        "{EVENT_SELECT} WHERE e.position > $1 AND e.position < order_event_horizon() \
         ORDER BY e.position LIMIT $2"
    )
}

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
        let sql = page_sql();
        let mut tx = begin(&self.pool).await?;
        sqlx::query(WALK_IN_ORDER).execute(&mut *tx).await?;
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
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

#[cfg(test)]
mod tests {
    use sqlx::Connection;

    use super::{WALK_IN_ORDER, page_sql};
    use crate::domain::{ItemIds, Money, Order, OrderId, OrderStatus, UserId, from_millis};
    use crate::store::postgres::PostgresStore;
    use crate::store::{Events, Orders, StoreError};

    /// A page of 100 events after the first of 20,000 orders, on tables never analysed
    /// (as in a young database, or on a server without autovacuum), reads 100 events
    /// from the log and 100 orders, however long the backlog behind it. Without
    /// `WALK_IN_ORDER` PostgreSQL 15 read the 19,999 after the first, and sorted them.
    /// On the PostgreSQL that `TEST_DATABASE_URL` names; skipped without it, unless
    /// `REQUIRE_POSTGRES=1`.
    #[tokio::test]
    async fn a_page_of_the_log_reads_only_its_own_events_however_long_the_backlog() {
        let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
            assert!(
                !std::env::var("REQUIRE_POSTGRES").is_ok_and(|v| v == "1"),
                "REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set"
            );
            return;
        };
        // Named as the API tests name theirs, so a run killed before its cleanup is
        // swept by theirs (tests/api/test_db.rs).
        let schema = format!(
            "op_test_{}_{}",
            chrono::Utc::now().timestamp(),
            uuid::Uuid::new_v4().simple()
        );
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let separator = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{separator}options=-c%20search_path%3D{schema}");
        // The store's errors come back as values: the schema is dropped either way.
        let outcome = page_plan(&url).await;
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(&mut admin)
            .await
            .unwrap();
        let (page, plan) = outcome.unwrap();
        assert_eq!(page, 100, "a full page");
        let scans: Vec<&str> = plan
            .iter()
            .map(String::as_str)
            .filter(|line| line.contains(" on order_events ") || line.contains(" on orders "))
            .collect();
        assert!(!scans.is_empty(), "{plan:#?}");
        for scan in scans {
            // Whole numbers before PostgreSQL 18, decimals since.
            let rows: f64 = scan
                .split("actual time=")
                .nth(1)
                .and_then(|actual| actual.split(" rows=").nth(1))
                .and_then(|rows| rows.split(' ').next())
                .and_then(|rows| rows.parse().ok())
                .unwrap_or_else(|| panic!("no actual rows in {scan}"));
            let loops: f64 = scan
                .split(" loops=")
                .nth(1)
                .and_then(|loops| loops.trim_end_matches(')').parse().ok())
                .unwrap_or_else(|| panic!("no loops in {scan}"));
            assert!(
                rows * loops <= 100.0,
                "a page of 100 read {} rows here: {scan}\n{plan:#?}",
                rows * loops
            );
        }
    }

    /// Fills the log with 20,000 orders' events, reads a page as the store does, and
    /// answers its length and the plan of the same read, run.
    async fn page_plan(url: &str) -> Result<(usize, Vec<String>), StoreError> {
        let store = PostgresStore::connect(url, 2).await?;
        crate::store::Backend::migrate(&store).await?;
        let orders: Vec<Order> = (0..20_000)
            .map(|n| Order {
                id: OrderId::new_at(from_millis(1_700_000_000_000 + n)),
                user_id: UserId::parse("reader".into()).unwrap(),
                item_ids: ItemIds::parse(vec!["item".into()]).unwrap(),
                total_amount: Money::from_cents(100).unwrap(),
                status: OrderStatus::Pending,
                created_at: from_millis(1_700_000_000_000 + n),
                completed_at: None,
                attempts: 0,
                last_error: None,
                failed_at: None,
                next_attempt_at: Some(from_millis(1_700_000_000_000 + n)),
                cancelled_at: None,
                cancel_reason: None,
                result: None,
            })
            .collect();
        store.import(&orders).await?;
        // The horizon is the oldest transaction running on the whole server: one of
        // another test's, begun before the import ended, holds the page back a while.
        let waited = std::time::Instant::now();
        let (first, page) = loop {
            let first = store.events_after(0, 1).await?.first().map(|e| e.position);
            if let Some(first) = first {
                let page = store.events_after(first, 100).await?.len();
                if page == 100 || waited.elapsed() > std::time::Duration::from_secs(30) {
                    break (first, page);
                }
            } else if waited.elapsed() > std::time::Duration::from_secs(30) {
                break (0, 0);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        let mut tx = store.pool.begin().await?;
        sqlx::query(WALK_IN_ORDER).execute(&mut *tx).await?;
        let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN ANALYZE {}", page_sql()))
            .bind(first)
            .bind(100_i64)
            .fetch_all(&mut *tx)
            .await?;
        tx.rollback().await?;
        Ok((page, plan))
    }
}
