//! Idempotency keys, each committed in the transaction of its order. Keyed orders are
//! group-committed like the rest: the keys of a batch in one statement, their orders in
//! the next, one transaction and one commit for all of them.

use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgPool;
use uuid::Uuid;

use super::sql::insert_orders;
use super::{PostgresStore, begin};
use crate::domain::{Order, OrderId, Timestamp};
use crate::store::decode::corrupt;
use crate::store::group_commit::{KeyedOrder, KeyedOutcome};
use crate::store::{IdempotentResponse, KeyedInsert, Keys, StoreError};

#[async_trait]
impl Keys for PostgresStore {
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
        let outcome = self.keyed_inserts.submit(keyed).await?.into_result()?;
        if outcome == KeyedInsert::Inserted {
            // Wake a local worker without waiting for the NOTIFY round trip.
            self.new_work.notify_one();
        }
        Ok(outcome)
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

/// Writes a batch of keyed orders in one transaction: the keys go in, replacing expired
/// ones of the same names (a live key, or an earlier order of the batch with the same
/// key, wins, and its order writes nothing), then the orders whose keys went in.
/// An order whose id is taken rolls the batch back; it is answered alone and the rest
/// are written again without it, so that its key is never kept without its order.
pub(super) async fn insert_keyed_batch(
    pool: &PgPool,
    batch: &[KeyedOrder],
) -> Result<Vec<KeyedOutcome>, StoreError> {
    let mut outcomes: Vec<Option<KeyedOutcome>> = vec![None; batch.len()];
    loop {
        let pending: Vec<usize> = (0..batch.len())
            .filter(|&i| outcomes[i].is_none())
            .collect();
        if pending.is_empty() {
            break;
        }
        let items: Vec<&KeyedOrder> = pending.iter().map(|&i| &batch[i]).collect();
        let mut tx = begin(pool).await?;
        // Every key's lock is taken here, in one statement and in key order, as every
        // instance takes them, so that two batches with keys in common wait for each
        // other rather than deadlock (a separate statement removing expired keys first
        // would lock in another order). A key that expired for the order that names it
        // (created before that order's `live_since`) is replaced.
        let stored: HashSet<(String, String, Uuid)> = sqlx::query(
            "INSERT INTO idempotency_keys \
                 (scope, key, fingerprint, order_id, status, body, created_at) \
             SELECT DISTINCT ON (scope, key) \
                    scope, key, fingerprint, order_id, status, body, created_at \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[], $5::smallint[], \
                         $6::text[], $7::timestamptz[]) WITH ORDINALITY \
                  AS t (scope, key, fingerprint, order_id, status, body, created_at, place) \
             ORDER BY scope, key, place \
             ON CONFLICT (scope, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, \
                 order_id = EXCLUDED.order_id, status = EXCLUDED.status, \
                 body = EXCLUDED.body, created_at = EXCLUDED.created_at \
             WHERE idempotency_keys.created_at < ( \
                 SELECT d.live_since \
                 FROM unnest($1::text[], $2::text[], $8::timestamptz[]) WITH ORDINALITY \
                      AS d (scope, key, live_since, place) \
                 WHERE d.scope = EXCLUDED.scope AND d.key = EXCLUDED.key \
                 ORDER BY d.place LIMIT 1) \
             RETURNING scope, key, order_id",
        )
        .bind(column(&items, |k| k.response.scope.as_str()))
        .bind(column(&items, |k| k.response.key.as_str()))
        .bind(column(&items, |k| k.response.fingerprint.as_str()))
        .bind(column(&items, |k| *k.response.order_id.as_uuid()))
        .bind(column(&items, |k| {
            i16::try_from(k.response.status).unwrap_or(i16::MAX)
        }))
        .bind(column(&items, |k| k.response.body.as_str()))
        .bind(column(&items, |k| k.response.created_at))
        .bind(column(&items, |k| k.live_since))
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| {
            Ok((
                row.try_get("scope")?,
                row.try_get("key")?,
                row.try_get("order_id")?,
            ))
        })
        .collect::<Result<_, sqlx::Error>>()?;
        // Whether each pending order's key went in, in `pending`'s order.
        let key_in: Vec<bool> = items
            .iter()
            .map(|k| {
                stored.contains(&(
                    k.response.scope.clone(),
                    k.response.key.clone(),
                    *k.response.order_id.as_uuid(),
                ))
            })
            .collect();
        let orders: Vec<Order> = items
            .iter()
            .zip(&key_in)
            .filter(|(_, went_in)| **went_in)
            .map(|(k, _)| k.order.clone())
            .collect();
        let added: HashSet<Uuid> = if orders.is_empty() {
            HashSet::new()
        } else {
            insert_orders(&orders)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect()
        };
        let taken: Vec<usize> = pending
            .iter()
            .zip(&key_in)
            .filter(|&(&i, &went_in)| went_in && !added.contains(batch[i].order.id.as_uuid()))
            .map(|(&i, _)| i)
            .collect();
        if !taken.is_empty() {
            // The keys of these orders go back with the rest, before the batch is tried
            // again (a dropped transaction would roll back only later, while the next
            // attempt could wait on its keys).
            tx.rollback().await?;
            for i in taken {
                outcomes[i] = Some(KeyedOutcome::IdTaken);
            }
            continue;
        }
        tx.commit().await?;
        for (i, went_in) in pending.into_iter().zip(key_in) {
            outcomes[i] = Some(KeyedOutcome::Stored(if went_in {
                KeyedInsert::Inserted
            } else {
                KeyedInsert::KeyTaken
            }));
        }
    }
    Ok(outcomes.into_iter().flatten().collect())
}

/// One column of a batch, as an array to bind.
fn column<'a, T>(items: &[&'a KeyedOrder], value: impl Fn(&'a KeyedOrder) -> T) -> Vec<T> {
    items.iter().map(|&k| value(k)).collect()
}
