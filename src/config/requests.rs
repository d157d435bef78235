//! The per-request settings: rate limits, how long an `Idempotency-Key` is
//! remembered, and the largest body.

use std::num::NonZeroU32;
use std::time::Duration;

use clap::Args;

use super::parse::parse_duration;

/// What one request may do.
#[derive(Debug, Clone, Args)]
pub struct RequestConfig {
    /// Requests per second each user (each client IP with authentication off) may
    /// make; rate limiting is off unless set.
    #[arg(long, env = "RATE_LIMIT_PER_SEC")]
    pub rate_limit_per_sec: Option<NonZeroU32>,

    /// How many requests a caller may make at once before the per-second rate
    /// applies (defaults to the rate).
    #[arg(long, env = "RATE_LIMIT_BURST")]
    pub rate_limit_burst: Option<NonZeroU32>,

    /// How long an `Idempotency-Key` is remembered: a number with s, m, h or d.
    #[arg(long, env = "IDEMPOTENCY_TTL", default_value = "24h", value_parser = parse_duration)]
    pub idempotency_ttl: Duration,

    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "BODY_LIMIT_BYTES", default_value_t = 65_536,
          value_parser = clap::value_parser!(u64).range(1024..=16_777_216))]
    pub body_limit_bytes: u64,
}

impl RequestConfig {
    /// The body limit as a length in bytes.
    pub fn body_limit(&self) -> usize {
        usize::try_from(self.body_limit_bytes).unwrap_or(usize::MAX)
    }
}
