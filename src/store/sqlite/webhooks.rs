//! Webhook endpoints: registered, read, changed and removed.

use std::str::FromStr;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};

use super::SqliteStore;
use super::sql::millis;
use crate::domain::{Timestamp, WebhookEndpoint, WebhookId, from_millis};
use crate::store::decode::{StoredEndpoint, corrupt, event_type_names};
use crate::store::{StoreError, Webhooks};

/// The columns `endpoint_from_row` reads, in its order.
const ENDPOINT_COLUMNS: &str = "id, url, description, event_types, secret, previous_secret, \
     previous_secret_until, disabled_at, disabled_reason, created_at, updated_at, revision, \
     last_delivered_at, failing_since";

fn endpoint_from_row(row: &Row<'_>) -> Result<WebhookEndpoint, StoreError> {
    let id: String = row.get(0)?;
    let event_types: Option<String> = row.get(3)?;
    let time = |column: usize| -> rusqlite::Result<Option<_>> {
        Ok(row.get::<_, Option<i64>>(column)?.map(from_millis))
    };
    StoredEndpoint {
        id: WebhookId::from_str(&id).map_err(corrupt)?,
        url: row.get(1)?,
        description: row.get(2)?,
        event_types: event_types
            .map(|text| serde_json::from_str(&text).map_err(corrupt))
            .transpose()?,
        secret: row.get(4)?,
        previous_secret: row.get(5)?,
        previous_secret_until: time(6)?,
        disabled_at: time(7)?,
        disabled_reason: row.get(8)?,
        created_at: from_millis(row.get(9)?),
        updated_at: from_millis(row.get(10)?),
        revision: row.get(11)?,
        last_delivered_at: time(12)?,
        failing_since: time(13)?,
    }
    .into_endpoint()
}

/// The event types as stored: a JSON array of names, or NULL for every type.
fn event_types_json(endpoint: &WebhookEndpoint) -> Option<String> {
    event_type_names(endpoint)
        .map(|names| serde_json::to_string(&names).expect("a list of strings serialises"))
}

#[async_trait]
impl Webhooks for SqliteStore {
    async fn insert_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<(), StoreError> {
        let endpoint = endpoint.clone();
        self.writer
            .run(move |conn| {
                conn.prepare_cached(&format!(
                    "INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
                ))?
                .execute(params![
                    endpoint.id.to_string(),
                    endpoint.url.as_str(),
                    endpoint.description,
                    event_types_json(&endpoint),
                    endpoint.secret,
                    endpoint.previous_secret.as_ref().map(|(s, _)| s.as_str()),
                    endpoint
                        .previous_secret
                        .as_ref()
                        .map(|(_, until)| millis(*until)),
                    endpoint.disabled_at.map(millis),
                    endpoint.disabled_reason,
                    millis(endpoint.created_at),
                    millis(endpoint.updated_at),
                    endpoint.revision,
                    endpoint.last_delivered_at.map(millis),
                    endpoint.failing_since.map(millis),
                ])?;
                Ok(())
            })
            .await
    }

    async fn endpoints(&self) -> Result<Vec<WebhookEndpoint>, StoreError> {
        self.readers.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY id"
            ))?;
            let mut rows = stmt.query([])?;
            let mut endpoints = Vec::new();
            while let Some(row) = rows.next()? {
                endpoints.push(endpoint_from_row(row)?);
            }
            Ok(endpoints)
        })
    }

    async fn endpoint(&self, id: WebhookId) -> Result<Option<WebhookEndpoint>, StoreError> {
        self.readers.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ?1"
            ))?
            .query_row([id.to_string()], |row| Ok(endpoint_from_row(row)))
            .optional()?
            .transpose()
        })
    }

    async fn update_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<bool, StoreError> {
        let endpoint = endpoint.clone();
        self.writer
            .run(move |conn| {
                let changed = conn
                    .prepare_cached(
                        "UPDATE webhook_endpoints SET url = ?2, description = ?3, \
                         event_types = ?4, disabled_at = ?5, disabled_reason = ?6, \
                         updated_at = ?7, revision = revision + 1, \
                         failing_since = CASE WHEN ?5 IS NULL AND disabled_at IS NOT NULL THEN NULL \
                             ELSE failing_since END \
                         WHERE id = ?1 AND revision = ?8",
                    )?
                    .execute(params![
                        endpoint.id.to_string(),
                        endpoint.url.as_str(),
                        endpoint.description,
                        event_types_json(&endpoint),
                        endpoint.disabled_at.map(millis),
                        endpoint.disabled_reason,
                        millis(endpoint.updated_at),
                        endpoint.revision,
                    ])?;
                Ok(changed == 1)
            })
            .await
    }

    async fn rotate_secret(
        &self,
        id: WebhookId,
        secret: &str,
        previous_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        let secret = secret.to_owned();
        self.writer
            .run(move |conn| {
                conn.prepare_cached(&format!(
                    "UPDATE webhook_endpoints SET previous_secret = secret, \
                     previous_secret_until = ?3, secret = ?2, updated_at = ?4, \
                     revision = revision + 1 WHERE id = ?1 RETURNING {ENDPOINT_COLUMNS}"
                ))?
                .query_row(
                    params![id.to_string(), secret, millis(previous_until), millis(now)],
                    |row| Ok(endpoint_from_row(row)),
                )
                .optional()?
                .transpose()
            })
            .await
    }

    async fn delete_endpoint(&self, id: WebhookId) -> Result<bool, StoreError> {
        self.writer
            .transaction(move |tx| {
                // The endpoint first, then its deliveries: the order PostgreSQL needs.
                let deleted = tx
                    .prepare_cached("DELETE FROM webhook_endpoints WHERE id = ?1")?
                    .execute([id.to_string()])?;
                tx.prepare_cached("DELETE FROM webhook_deliveries WHERE endpoint_id = ?1")?
                    .execute([id.to_string()])?;
                Ok(deleted == 1)
            })
            .await
    }
}
