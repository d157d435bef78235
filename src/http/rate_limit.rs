//! Per-caller rate limiting: a token bucket per user (per client IP with
//! authentication off), from the `governor` crate. Off unless configured.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::error::ApiError;
use crate::auth::Caller;

/// One bucket per caller key.
#[derive(Clone)]
pub struct Limiter(Arc<DefaultKeyedRateLimiter<String>>);

impl Limiter {
    /// `per_second` tokens refill each second, up to `burst`.
    pub fn new(per_second: NonZeroU32, burst: NonZeroU32) -> Self {
        Self(Arc::new(RateLimiter::keyed(
            Quota::per_second(per_second).allow_burst(burst),
        )))
    }

    /// Forgets buckets that are full again, so idle callers cost no memory.
    pub fn forget_idle(&self) {
        self.0.retain_recent();
        self.0.shrink_to_fit();
    }
}

/// Takes one token from the caller's bucket, or refuses with 429 and `Retry-After`.
pub fn check(limiter: &Limiter, caller: &Caller, request: &Request) -> Result<(), ApiError> {
    let key = match caller {
        Caller::User { id, .. } => format!("user:{id}"),
        Caller::Anyone => request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(
                || "ip:unknown".to_owned(),
                |info| format!("ip:{}", info.0.ip()),
            ),
    };
    limiter.0.check_key(&key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        // Whole seconds, rounded up: a client that waits that long gets through.
        let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        ApiError::RateLimited(retry_after.max(1))
    })
}
