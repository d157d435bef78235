//! The log's consumers: how far each got, and who holds it.

use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use super::PostgresStore;
use crate::domain::Timestamp;
use crate::store::claims::lease_end;
use crate::store::{Consumers, StoreError};

#[async_trait]
impl Consumers for PostgresStore {
    async fn hold_consumer(
        &self,
        name: &str,
        holder: Uuid,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO event_consumers (name, position, holder, lease_expires_at) \
             VALUES ($1, 0, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
                 lease_expires_at = excluded.lease_expires_at \
             WHERE event_consumers.holder = excluded.holder \
                OR event_consumers.lease_expires_at < $4 \
             RETURNING position",
        )
        .bind(name)
        .bind(holder)
        .bind(lease_end(now, lease))
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn advance_consumer(
        &self,
        name: &str,
        holder: Uuid,
        position: i64,
        now: Timestamp,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE event_consumers SET position = $3, lease_expires_at = $4 \
             WHERE name = $1 AND holder = $2",
        )
        .bind(name)
        .bind(holder)
        .bind(position)
        .bind(lease_end(now, lease))
        .execute(&self.pool)
        .await?;
        Ok(changed.rows_affected() == 1)
    }

    async fn consumer_positions(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as("SELECT name, position FROM event_consumers")
            .fetch_all(&self.pool)
            .await?)
    }
}
