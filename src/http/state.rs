//! What every handler shares.

use std::sync::Arc;

use crate::store::Store;

/// Shared by all handlers: the store and limits.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Largest accepted request body, in bytes (named in 413 answers).
    pub body_limit: usize,
}
