//! Reading the event log. The one writer commits one transaction after another, so
//! positions become visible in order and a reader may page by them as they are.

use async_trait::async_trait;
use rusqlite::params;

use super::SqliteStore;
use super::sql::{EVENT_SELECT, events_from};
use crate::domain::{OrderEvent, OrderId};
use crate::store::{Events, StoreError};

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
}
