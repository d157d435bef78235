//! The log's consumers: how far each got, and who holds it.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use uuid::Uuid;

use super::SqliteStore;
use super::sql::millis;
use crate::domain::Timestamp;
use crate::store::claims::lease_end;
use crate::store::{Consumers, StoreError};

#[async_trait]
impl Consumers for SqliteStore {
    async fn hold_consumer(
        &self,
        name: &str,
        holder: Uuid,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Option<i64>, StoreError> {
        let (name, until) = (name.to_owned(), lease_end(now, lease));
        self.writer
            .transaction(move |tx| {
                Ok(tx
                    .prepare_cached(
                        "INSERT INTO event_consumers (name, position, holder, lease_expires_at) \
                         VALUES (?1, 0, ?2, ?3) \
                         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
                             lease_expires_at = excluded.lease_expires_at \
                         WHERE event_consumers.holder = excluded.holder \
                            OR event_consumers.lease_expires_at < ?4 \
                         RETURNING position",
                    )?
                    .query_row(
                        params![name, holder.to_string(), millis(until), millis(now)],
                        |row| row.get(0),
                    )
                    .optional()?)
            })
            .await
    }

    async fn advance_consumer(
        &self,
        name: &str,
        holder: Uuid,
        position: i64,
        now: Timestamp,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let (name, until) = (name.to_owned(), lease_end(now, lease));
        self.writer
            .transaction(move |tx| {
                let changed = tx
                    .prepare_cached(
                        "UPDATE event_consumers SET position = ?3, lease_expires_at = ?4 \
                         WHERE name = ?1 AND holder = ?2",
                    )?
                    .execute(params![name, holder.to_string(), position, millis(until)])?;
                Ok(changed == 1)
            })
            .await
    }

    async fn consumer_positions(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.readers.read(|conn| {
            let mut stmt = conn.prepare_cached("SELECT name, position FROM event_consumers")?;
            let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }
}
