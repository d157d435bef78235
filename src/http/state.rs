//! What every handler shares.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::store::Store;

/// Shared by all handlers: the store, the wake-up for idle workers, and limits.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Notified after an order is committed, so an idle worker claims it at once.
    pub new_work: Arc<Notify>,
    /// Largest accepted request body, in bytes (named in 413 answers).
    pub body_limit: usize,
}
