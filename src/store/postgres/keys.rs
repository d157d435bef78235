//! Idempotency keys, each committed in the transaction of its order.

use async_trait::async_trait;
use sqlx::Row;

use super::sql::insert_orders;
use super::{PostgresStore, begin};
use crate::domain::{Order, OrderId, Timestamp};
use crate::store::decode::{corrupt, id_taken};
use crate::store::{IdempotentResponse, KeyedInsert, Keys, StoreError};

#[async_trait]
impl Keys for PostgresStore {
    async fn insert_keyed(
        &self,
        order: &Order,
        response: &IdempotentResponse,
        live_since: Timestamp,
    ) -> Result<KeyedInsert, StoreError> {
        let mut tx = begin(&self.pool).await?;
        // An expired key of the same name is replaced; a live one wins. A concurrent
        // insert of the same key waits here for the other transaction, then sees it.
        let key = sqlx::query(
            "INSERT INTO idempotency_keys \
                 (scope, key, fingerprint, order_id, status, body, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (scope, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, \
                 order_id = EXCLUDED.order_id, status = EXCLUDED.status, body = EXCLUDED.body, \
                 created_at = EXCLUDED.created_at \
             WHERE idempotency_keys.created_at < $8",
        )
        .bind(&response.scope)
        .bind(&response.key)
        .bind(&response.fingerprint)
        .bind(response.order_id.as_uuid())
        .bind(i16::try_from(response.status).unwrap_or(i16::MAX))
        .bind(&response.body)
        .bind(response.created_at)
        .bind(live_since)
        .execute(&mut *tx)
        .await?;
        if key.rows_affected() == 0 {
            return Ok(KeyedInsert::KeyTaken);
        }
        let added: Vec<uuid::Uuid> = insert_orders(std::slice::from_ref(order))
            .fetch_all(&mut *tx)
            .await?;
        if added.len() != 1 {
            // Dropping the transaction rolls the key back with it.
            return Err(id_taken());
        }
        tx.commit().await?;
        self.new_work.notify_one();
        Ok(KeyedInsert::Inserted)
    }

    async fn find_keyed(
        &self,
        scope: &str,
        key: &str,
        live_since: Timestamp,
    ) -> Result<Option<IdempotentResponse>, StoreError> {
        let row = sqlx::query(
            "SELECT fingerprint, order_id, status, body, created_at FROM idempotency_keys \
             WHERE scope = $1 AND key = $2 AND created_at >= $3",
        )
        .bind(scope)
        .bind(key)
        .bind(live_since)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(IdempotentResponse {
                scope: scope.to_owned(),
                key: key.to_owned(),
                fingerprint: row.try_get("fingerprint")?,
                order_id: OrderId::from_uuid(row.try_get("order_id")?),
                status: u16::try_from(row.try_get::<i16, _>("status")?).map_err(corrupt)?,
                body: row.try_get("body")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .transpose()
    }

    async fn prune_keys(&self, before: Timestamp) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
