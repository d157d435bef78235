//! Webhook endpoints: registered, read, changed and removed.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{PostgresStore, begin};
use crate::domain::{Timestamp, WebhookEndpoint, WebhookId};
use crate::store::decode::{StoredEndpoint, event_type_names};
use crate::store::{StoreError, Webhooks};

/// The columns `endpoint_from_row` reads.
const ENDPOINT_COLUMNS: &str = "id, url, description, event_types, secret, previous_secret, \
     previous_secret_until, disabled_at, disabled_reason, created_at, updated_at, revision, \
     last_delivered_at, failing_since";

fn endpoint_from_row(row: &PgRow) -> Result<WebhookEndpoint, StoreError> {
    StoredEndpoint {
        id: WebhookId::from_uuid(row.try_get("id")?),
        url: row.try_get("url")?,
        description: row.try_get("description")?,
        event_types: row.try_get("event_types")?,
        secret: row.try_get("secret")?,
        previous_secret: row.try_get("previous_secret")?,
        previous_secret_until: row.try_get("previous_secret_until")?,
        disabled_at: row.try_get("disabled_at")?,
        disabled_reason: row.try_get("disabled_reason")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        revision: i64::from(row.try_get::<i32, _>("revision")?),
        last_delivered_at: row.try_get("last_delivered_at")?,
        failing_since: row.try_get("failing_since")?,
    }
    .into_endpoint()
}

#[async_trait]
impl Webhooks for PostgresStore {
    async fn insert_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ))
        .bind(endpoint.id.as_uuid())
        .bind(endpoint.url.as_str())
        .bind(&endpoint.description)
        .bind(event_type_names(endpoint))
        .bind(&endpoint.secret)
        .bind(endpoint.previous_secret.as_ref().map(|(s, _)| s.as_str()))
        .bind(endpoint.previous_secret.as_ref().map(|(_, until)| *until))
        .bind(endpoint.disabled_at)
        .bind(&endpoint.disabled_reason)
        .bind(endpoint.created_at)
        .bind(endpoint.updated_at)
        .bind(i32::try_from(endpoint.revision).unwrap_or(i32::MAX))
        .bind(endpoint.last_delivered_at)
        .bind(endpoint.failing_since)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn endpoints(&self) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(endpoint_from_row).collect()
    }

    async fn endpoint(&self, id: WebhookId) -> Result<Option<WebhookEndpoint>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"
        ))
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(endpoint_from_row).transpose()
    }

    async fn update_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE webhook_endpoints SET url = $2, description = $3, event_types = $4, \
             disabled_at = $5, disabled_reason = $6, updated_at = $7, \
             revision = revision + 1, \
             failing_since = CASE WHEN $5 IS NULL AND disabled_at IS NOT NULL THEN NULL \
                 ELSE failing_since END \
             WHERE id = $1 AND revision = $8",
        )
        .bind(endpoint.id.as_uuid())
        .bind(endpoint.url.as_str())
        .bind(&endpoint.description)
        .bind(event_type_names(endpoint))
        .bind(endpoint.disabled_at)
        .bind(&endpoint.disabled_reason)
        .bind(endpoint.updated_at)
        .bind(i32::try_from(endpoint.revision).unwrap_or(i32::MAX))
        .execute(&self.pool)
        .await?;
        Ok(changed.rows_affected() == 1)
    }

    async fn rotate_secret(
        &self,
        id: WebhookId,
        secret: &str,
        previous_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE webhook_endpoints SET previous_secret = secret, \
             previous_secret_until = $3, secret = $2, updated_at = $4, \
             revision = revision + 1 WHERE id = $1 RETURNING {ENDPOINT_COLUMNS}"
        ))
        .bind(id.as_uuid())
        .bind(secret)
        .bind(previous_until)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(endpoint_from_row).transpose()
    }

    async fn delete_endpoint(&self, id: WebhookId) -> Result<bool, StoreError> {
        // The endpoint's row first: whatever holds it (owing deliveries to it, recording
        // attempts) finishes before, so the next statement sees and removes every
        // delivery it wrote, and nothing is written for it after.
        let mut tx = begin(&self.pool).await?;
        let deleted = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
            .bind(id.as_uuid())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM webhook_deliveries WHERE endpoint_id = $1")
            .bind(id.as_uuid())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(deleted.rows_affected() == 1)
    }
}
