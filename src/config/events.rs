//! The event log's settings: how long events are kept, the NATS relay, and the
//! priority of the thread its consumers run on.

use std::time::Duration;

use clap::Args;

use super::parse::parse_duration;
use crate::relay::NatsSettings;

/// `BACKGROUND_YIELD_AT`'s default: between the few new orders a steady load keeps
/// waiting for their commit and the most of its clients a saturating burst does, so
/// the consumers step aside for bursts and only for them (BENCHMARKS.md, "Deliveries
/// that step aside").
pub const DEFAULT_BACKGROUND_YIELD_AT: u32 = 16;

/// How long events are kept and where they are relayed.
#[derive(Debug, Clone, Args)]
pub struct EventConfig {
    /// How long the events of a `Completed` or `Cancelled` order are kept after it
    /// finished: a number with s, m, h or d. The orders themselves are kept.
    #[arg(long, env = "EVENT_RETENTION", default_value = "30d", value_parser = parse_duration)]
    pub event_retention: Duration,

    /// NATS server to relay every event to, through JetStream (`nats://host:port`);
    /// the relay is off unless set.
    #[arg(long, env = "EVENTS_NATS_URL", value_parser = parse_nats_url)]
    pub events_nats_url: Option<String>,

    /// The JetStream stream the relay publishes to (created if missing, covering
    /// `orders.events.>`).
    #[arg(long, env = "EVENTS_NATS_STREAM", default_value = "ORDERS",
          value_parser = parse_stream_name)]
    pub events_nats_stream: String,

    /// How much lower than the process's own the CPU priority of the background thread
    /// is (a nice increment, 0 to 19; the nice value reaches 19 at most), where the
    /// webhook deliveries, the NATS relay and the log's retention run: higher yields
    /// more to the API and the workers while the cores are saturated, at the cost of
    /// deliveries that trail until the load eases; 0 runs them on the API's runtime.
    /// Default: 19 on SQLite, 0 on PostgreSQL.
    #[arg(long, env = "BACKGROUND_NICE",
          value_parser = clap::value_parser!(u8).range(0..=19))]
    pub background_nice: Option<u8>,

    /// The API's new orders waiting for their commit, on average over a short window,
    /// at or above which the webhook deliveries and the NATS relay wait before each
    /// page of the log (for a bounded time per page): a burst goes to the API first and
    /// they catch up once it eases. 0: they never wait, and nothing is counted.
    #[arg(long, env = "BACKGROUND_YIELD_AT", default_value_t = DEFAULT_BACKGROUND_YIELD_AT)]
    pub background_yield_at: u32,
}

/// `EVENTS_NATS_URL`: `nats://` (or `tls://`) and a host.
fn parse_nats_url(text: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(text).map_err(|err| format!("{text:?} is not a URL: {err}"))?;
    if !matches!(url.scheme(), "nats" | "tls") || url.host().is_none() {
        return Err(format!("{text:?} is not a nats:// or tls:// URL"));
    }
    Ok(text.to_owned())
}

/// A JetStream stream name: letters, digits, `-` and `_`.
fn parse_stream_name(text: &str) -> Result<String, String> {
    if text.is_empty()
        || text.len() > 64
        || !text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "{text:?} is not a stream name: 1 to 64 letters, digits, - or _"
        ));
    }
    Ok(text.to_owned())
}

impl EventConfig {
    /// `BACKGROUND_NICE`, or its default for the backend: 19 on SQLite, where the API
    /// and the consumers share one machine and the consumers' work is this process's
    /// own; 0 on PostgreSQL, where much of it is the database server's, which no nice
    /// value here reaches, and each of the consumers' round trips would wait for a
    /// starved thread (BENCHMARKS.md measures both).
    pub fn background_nice(&self, sqlite: bool) -> u8 {
        self.background_nice.unwrap_or(if sqlite { 19 } else { 0 })
    }

    /// Where the NATS relay publishes, when `EVENTS_NATS_URL` is set.
    pub fn nats(&self) -> Option<NatsSettings> {
        self.events_nats_url.as_ref().map(|url| NatsSettings {
            url: url.clone(),
            stream: self.events_nats_stream.clone(),
        })
    }
}
