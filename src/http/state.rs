//! What every handler shares.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use super::in_flight::InFlight;
use super::rate_limit::Limiter;
use super::streams::Streams;
use crate::api_load::ApiLoad;
use crate::auth::Authenticator;
use crate::store::Store;
use crate::webhooks::NetworkPolicy;

/// Shared by all handlers; one reference count to clone per request, not one per field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The store, the token verifier, and limits.
pub struct Shared {
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
    /// `orders_created_total`, registered once rather than looked up per order.
    pub orders_created: metrics::Counter,
    /// Server-Sent Events: the live feed and the open streams.
    pub streams: Streams,
    /// Whether webhook endpoints may point into private networks.
    pub webhook_network: NetworkPolicy,
    /// New orders waiting for their commit, counted for the background work that steps
    /// aside for a burst of them.
    pub api_load: Arc<ApiLoad>,
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
