//! Orders in and out: new orders (group-committed by the writer), imports, reads,
//! the running totals and listings.

use async_trait::async_trait;
use rusqlite::{TransactionBehavior, params_from_iter};

use super::SqliteStore;
use super::sql::{
    ORDER_COLUMNS, insert_new_orders, list_statement, millis, orders_from, status_of,
};
use crate::domain::{Order, OrderId, OrderStatus, Timestamp, from_millis};
use crate::store::decode::metrics_from_totals;
use crate::store::{ListQuery, Orders, Overview, StoreError};

#[async_trait]
impl Orders for SqliteStore {
    async fn insert(&self, order: &Order) -> Result<(), StoreError> {
        self.writer.insert(order.clone()).await
    }

    async fn import(&self, orders: &[Order]) -> Result<u64, StoreError> {
        if orders.is_empty() {
            return Ok(0);
        }
        let orders = orders.to_vec();
        let added = self
            .writer
            .run(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let added = insert_new_orders(&tx, &orders)?;
                tx.commit()?;
                Ok(added.iter().filter(|new| **new).count() as u64)
            })
            .await?;
        self.new_work.notify_one();
        Ok(added)
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        self.readers.read(|conn| {
            let mut stmt =
                conn.prepare_cached(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?1"))?;
            Ok(orders_from(&mut stmt, [id.to_string()])?.pop())
        })
    }

    async fn status(&self, id: OrderId) -> Result<Option<OrderStatus>, StoreError> {
        self.readers.read(|conn| status_of(conn, id))
    }

    async fn overview(&self, now: Timestamp) -> Result<Overview, StoreError> {
        // The totals are kept in the transaction of every change (triggers for
        // changes, the store for new orders), and one statement is one snapshot: counts,
        // sums and the oldest due order agree. Each row of totals comes beside the one
        // probe of the claim's own index (`orders_pending`); the left join keeps that
        // probe's row when there are no totals yet. A point read, in place.
        let (totals, oldest) = self.readers.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT s.status, s.orders, s.processing_ms, d.oldest \
                 FROM (SELECT min(available_at) AS oldest FROM orders \
                       WHERE status = 'Pending' AND available_at <= ?1) AS d \
                 LEFT JOIN order_stats AS s ON true",
            )?;
            let mut totals = Vec::new();
            let mut oldest: Option<i64> = None;
            let mut rows = stmt.query([millis(now)])?;
            while let Some(row) = rows.next()? {
                oldest = row.get(3)?;
                if let Some(status) = row.get::<_, Option<String>>(0)? {
                    totals.push((status, row.get(1)?, row.get(2)?));
                }
            }
            Ok((totals, oldest))
        })?;
        Ok(Overview {
            metrics: metrics_from_totals(totals)?,
            oldest_due: oldest.map(from_millis),
        })
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<Order>, StoreError> {
        let (sql, values) = list_statement(query);
        self.readers
            .read_blocking(move |conn| {
                orders_from(&mut conn.prepare_cached(&sql)?, params_from_iter(values))
            })
            .await
    }
}
