//! Idempotency keys, each committed in the transaction of its order: keyed orders
//! join the writer's group commits (`writer`), each in a savepoint of its own.

use std::str::FromStr;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::sql::{insert_new_orders, millis};
use crate::domain::{Order, OrderId, Timestamp, from_millis};
use crate::store::decode::corrupt;
use crate::store::group_commit::{KeyedOrder, KeyedOutcome};
use crate::store::{IdempotentResponse, KeyedInsert, Keys, StoreError};

#[async_trait]
impl Keys for SqliteStore {
    async fn insert_keyed(
        &self,
        order: &Order,
        response: &IdempotentResponse,
        live_since: Timestamp,
    ) -> Result<KeyedInsert, StoreError> {
        let keyed = KeyedOrder {
            order: order.clone(),
            response: response.clone(),
            live_since,
        };
        // The writer wakes a worker after a commit that added orders, as for any insert.
        self.writer.insert_keyed(keyed).await
    }

    async fn find_keyed(
        &self,
        scope: &str,
        key: &str,
        live_since: Timestamp,
    ) -> Result<Option<IdempotentResponse>, StoreError> {
        let row = self.readers.read(|conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT fingerprint, order_id, status, body, created_at \
                     FROM idempotency_keys WHERE scope = ?1 AND key = ?2 AND created_at >= ?3",
                )?
                .query_row(params![scope, key, millis(live_since)], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, i64>(4)?,
                    ))
                })
                .optional()?)
        })?;
        row.map(|(fingerprint, order_id, status, body, created_at)| {
            Ok(IdempotentResponse {
                scope: scope.to_owned(),
                key: key.to_owned(),
                fingerprint,
                order_id: OrderId::from_str(&order_id).map_err(corrupt)?,
                status: u16::try_from(status).map_err(corrupt)?,
                body,
                created_at: from_millis(created_at),
            })
        })
        .transpose()
    }

    async fn prune_keys(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.writer
            .run(move |conn| {
                Ok(conn
                    .prepare_cached("DELETE FROM idempotency_keys WHERE created_at < ?1")?
                    .execute([millis(before)])? as u64)
            })
            .await
    }
}

/// Stores one keyed order inside the writer's open transaction, in a savepoint of its
/// own: an expired key of the same name is replaced, a live one wins and nothing is
/// written, and an order whose id is taken is rolled back to the savepoint, leaving no
/// key behind, while the rest of the group goes on. A failure of the database itself
/// fails the whole group, as it does for unkeyed inserts.
pub(super) fn store_keyed(
    conn: &Connection,
    keyed: &KeyedOrder,
) -> Result<KeyedOutcome, StoreError> {
    let KeyedOrder {
        order,
        response,
        live_since,
    } = keyed;
    conn.execute_batch("SAVEPOINT keyed")?;
    let stored = conn
        .prepare_cached(
            "INSERT INTO idempotency_keys \
                 (scope, key, fingerprint, order_id, status, body, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT (scope, key) DO UPDATE SET \
                 fingerprint = excluded.fingerprint, order_id = excluded.order_id, \
                 status = excluded.status, body = excluded.body, \
                 created_at = excluded.created_at \
             WHERE idempotency_keys.created_at < ?8",
        )?
        .execute(params![
            response.scope,
            response.key,
            response.fingerprint,
            response.order_id.to_string(),
            i64::from(response.status),
            response.body,
            millis(response.created_at),
            millis(*live_since),
        ])?;
    if stored == 0 {
        conn.execute_batch("RELEASE keyed")?;
        return Ok(KeyedOutcome::Stored(KeyedInsert::KeyTaken));
    }
    if insert_new_orders(conn, [order])? != [true] {
        conn.execute_batch("ROLLBACK TO keyed; RELEASE keyed")?;
        return Ok(KeyedOutcome::IdTaken);
    }
    conn.execute_batch("RELEASE keyed")?;
    Ok(KeyedOutcome::Stored(KeyedInsert::Inserted))
}
