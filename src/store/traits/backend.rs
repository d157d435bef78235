//! What every backend does besides holding orders: wake-ups, migrations, readiness.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{Notify, watch};

use crate::store::{Store, StoreError};

/// What every backend does besides holding orders: wake-ups, migrations, readiness.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Notified when work may be waiting: an order committed through this store, one
    /// returned to the queue, or (where the backend can tell) either of those in
    /// another instance. Workers still poll as a fallback.
    fn new_work(&self) -> Arc<Notify>;

    /// Changes when events may have been added to the log, by this instance or (where
    /// the backend can tell) by another; every reader of the log subscribes its own
    /// receiver, so none takes a wake-up from another. Readers still poll as a fallback.
    fn new_events(&self) -> watch::Receiver<()>;

    /// Applies this backend's migrations; safe to run on every start.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// This store as work on another runtime (the background thread's) uses it. Where
    /// nothing of it belongs to the runtime that opened it (SQLite: a writer thread and
    /// blocking reads), the store itself; where its connections do (PostgreSQL: a
    /// socket is driven by the runtime that opened it), a small pool of its own, so
    /// that the API's queries never wait on a runtime at a lower priority, nor that
    /// runtime's on the API's. Called on the runtime that will use it.
    async fn for_background(self: Arc<Self>) -> Result<Arc<dyn Store>, StoreError>;

    /// `Ok` when the database answers and every migration this build knows is applied.
    async fn ready(&self) -> Result<(), StoreError>;
}
