//! What every handler shares.

use std::sync::Arc;

use crate::auth::Authenticator;
use crate::store::Store;

/// Shared by all handlers: the store, the token verifier, and limits.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// `None` when authentication is off.
    pub auth: Option<Arc<Authenticator>>,
    /// Largest accepted request body, in bytes (named in 413 answers).
    pub body_limit: usize,
}
