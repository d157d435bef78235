//! Webhook endpoints: registered, read, changed and removed by operators.

use async_trait::async_trait;

use crate::domain::{Timestamp, WebhookEndpoint, WebhookId};
use crate::store::StoreError;

/// Webhook endpoints: registered, read, changed and removed by operators.
#[async_trait]
pub trait Webhooks: Send + Sync + 'static {
    /// Registers a new endpoint.
    async fn insert_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<(), StoreError>;

    /// Every endpoint, oldest first.
    async fn endpoints(&self) -> Result<Vec<WebhookEndpoint>, StoreError>;

    /// One endpoint, if it exists.
    async fn endpoint(&self, id: WebhookId) -> Result<Option<WebhookEndpoint>, StoreError>;

    /// Replaces everything about an endpoint but its id, its secrets, its health and
    /// registration time, if it is still at `endpoint.revision`, and moves it to the
    /// next revision; `false` if it was changed meanwhile or removed. Enabling a
    /// disabled endpoint starts its failure count afresh.
    async fn update_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<bool, StoreError>;

    /// Makes `secret` the endpoint's secret, the current one its previous secret
    /// (signing until `previous_until`), in one statement; the endpoint as it is now,
    /// or `None` if there is none.
    async fn rotate_secret(
        &self,
        id: WebhookId,
        secret: &str,
        previous_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<WebhookEndpoint>, StoreError>;

    /// Removes an endpoint and its deliveries; `false` if there was none.
    async fn delete_endpoint(&self, id: WebhookId) -> Result<bool, StoreError>;
}
