//! The Server-Sent Events settings: how many streams may be open, and their
//! heartbeat and reconnect delay.

use clap::Args;

use super::parse::DAY_MS;

/// How event streams are served.
#[derive(Debug, Clone, Args)]
pub struct StreamConfig {
    /// Most Server-Sent Events streams open at once per instance; past it, 503.
    #[arg(long, env = "MAX_STREAMS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_streams: u64,

    /// How often an idle event stream gets a comment line, so proxies keep it open,
    /// in milliseconds.
    #[arg(long, env = "SSE_HEARTBEAT_MS", default_value_t = 15_000,
          value_parser = clap::value_parser!(u64).range(10..=DAY_MS))]
    pub sse_heartbeat_ms: u64,

    /// How long a browser waits before reconnecting a dropped event stream (the
    /// stream's `retry:` line), in milliseconds.
    #[arg(long, env = "SSE_RETRY_MS", default_value_t = 2_000,
          value_parser = clap::value_parser!(u64).range(10..=DAY_MS))]
    pub sse_retry_ms: u64,
}
