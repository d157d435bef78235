//! What every handler shares.

use std::sync::Arc;
use std::time::Duration;

use super::idempotency::InFlight;
use super::rate_limit::Limiter;
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
    /// How long idempotency keys are remembered.
    pub idempotency_ttl: Duration,
    /// Idempotency keys whose first request this instance is handling now.
    pub idempotency_in_flight: InFlight,
    /// `None` when rate limiting is off.
    pub rate_limiter: Option<Limiter>,
}
