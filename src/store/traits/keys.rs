//! Idempotency keys, each committed with its order.

use async_trait::async_trait;

use crate::domain::{Order, Timestamp};
use crate::store::{IdempotentResponse, KeyedInsert, StoreError};

/// Idempotency keys, each committed with its order.
#[async_trait]
pub trait Keys: Send + Sync + 'static {
    /// Commits a new order together with its idempotency key, in one transaction, unless
    /// a key with the same scope and name created after `live_since` exists (an older,
    /// expired one is replaced).
    async fn insert_keyed(
        &self,
        order: &Order,
        response: &IdempotentResponse,
        live_since: Timestamp,
    ) -> Result<KeyedInsert, StoreError>;

    /// The stored answer for a key, if it was created after `live_since`.
    async fn find_keyed(
        &self,
        scope: &str,
        key: &str,
        live_since: Timestamp,
    ) -> Result<Option<IdempotentResponse>, StoreError>;

    /// Deletes keys created before `before`; returns how many.
    async fn prune_keys(&self, before: Timestamp) -> Result<u64, StoreError>;
}
