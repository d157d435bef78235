//! Configuration: every setting is a flag and an environment variable, typed and
//! checked at start-up so a bad value fails before anything runs.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::auth::AuthConfig;
use crate::domain::{DeliverySchedule, RetryPolicy};
use crate::relay::NatsSettings;
use crate::signature::SigningSecret;
use crate::webhooks::{NetworkPolicy, WebhookSettings};
use crate::worker::WorkerSettings;

/// The longest any duration setting may be: a day, far past any sensible value and
/// far inside what timestamps can hold.
const DAY_MS: u64 = 86_400_000;

/// `90s`, `15m`, `12h`, `7d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text.len().saturating_sub(1);
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a number followed by s, m, h or d"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("{text:?} does not end in s, m, h or d")),
    };
    if number == 0 || number > 365 * 86_400 / seconds {
        return Err(format!("{text:?} must be between one second and a year"));
    }
    Ok(Duration::from_secs(number * seconds))
}

/// `WEBHOOK_RETRY_SCALE`: a factor above 0, at most 1000.
fn parse_scale(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(scale) if scale > 0.0 && scale <= 1_000.0 => Ok(scale),
        _ => Err(format!("{text:?} is not a number above 0 and at most 1000")),
    }
}

/// A probability: a number from 0 to 1.
fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!("{rate} is not between 0 and 1"))
    }
}

/// Where the data lives.
#[derive(Debug, Clone, Args)]
pub struct DatabaseConfig {
    /// Database to use: `sqlite://PATH` (created if missing) or `postgres://USER@HOST/DB`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://orders.db")]
    pub database_url: String,

    /// Most connections this instance opens to the database (for SQLite: readers,
    /// beside the one writer).
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_max_connections: u32,
}

/// Everything `serve` needs.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,

    /// Port to listen on.
    #[arg(long, env = "PORT", default_value_t = 3000)]
    pub port: u16,

    #[command(flatten)]
    pub database: DatabaseConfig,

    /// Orders processed at once by this instance (1 to 1024).
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 10,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_concurrency: u16,

    /// The shop's endpoint each processing attempt is a signed `POST` to (`http` or
    /// `https`); without it, processing is simulated (`PROCESSING_TIME_MS`).
    #[arg(long, env = "PROCESSOR_URL", value_parser = parse_processor_url)]
    pub processor_url: Option<reqwest::Url>,

    /// The Standard Webhooks secret (`whsec_` and the base64 of 24 to 64 bytes) the
    /// calls to `PROCESSOR_URL` are signed with; required with it.
    #[arg(long, env = "PROCESSOR_SECRET", hide_env_values = true,
          value_parser = |text: &str| Ok::<_, String>(Redacted(text.to_owned())))]
    pub processor_secret: Option<Redacted>,

    /// Simulated processing time per order, in milliseconds [default: 1000].
    #[arg(long, env = "PROCESSING_TIME_MS",
          value_parser = clap::value_parser!(u64).range(0..=DAY_MS))]
    pub processing_time_ms: Option<u64>,

    /// Longest one processing attempt may take before it is cancelled and counted as
    /// failed, in milliseconds [default: twice the processing time, at least 10000].
    #[arg(long, env = "PROCESSING_TIMEOUT_MS",
          value_parser = clap::value_parser!(u64).range(1..=DAY_MS))]
    pub processing_timeout_ms: Option<u64>,

    /// Fraction of processing attempts the simulated processor fails (0 to 1).
    #[arg(long, env = "PROCESSING_FAILURE_RATE", default_value_t = 0.0,
          value_parser = parse_rate)]
    pub processing_failure_rate: f64,

    /// Attempts an order gets before it is dead-lettered as `Failed` (1 to 100).
    #[arg(long, env = "MAX_ATTEMPTS", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,

    /// Backoff ceiling after the first failed attempt, in milliseconds; it doubles
    /// with each further failure, and the delay is a random point in its upper half.
    #[arg(long, env = "RETRY_BASE_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=DAY_MS))]
    pub retry_base_ms: u64,

    /// Largest backoff ceiling, in milliseconds.
    #[arg(long, env = "RETRY_MAX_MS", default_value_t = 300_000,
          value_parser = clap::value_parser!(u64).range(1..=DAY_MS))]
    pub retry_max_ms: u64,

    /// How long a worker's claim on an order lasts without a heartbeat, in
    /// milliseconds [default: 30000]. A worker extends it every third of it while the
    /// attempt runs, so an attempt may take longer; an instance that dies has its
    /// orders taken back after about this long.
    #[arg(long, env = "LEASE_TIMEOUT_MS",
          value_parser = clap::value_parser!(u64).range(100..=DAY_MS))]
    pub lease_timeout_ms: Option<u64>,

    /// On SIGTERM/SIGINT, how long in-flight processing may finish before its
    /// orders are returned to the queue, in milliseconds.
    #[arg(long, env = "SHUTDOWN_GRACE_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(0..=DAY_MS))]
    pub shutdown_grace_ms: u64,

    /// Fallback poll for work when no wake-up arrives, in milliseconds.
    #[arg(long, env = "POLL_INTERVAL_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..=DAY_MS))]
    pub poll_interval_ms: u64,

    #[command(flatten)]
    pub auth: AuthConfig,

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

    /// Most open connections per instance; past it new ones are closed at once.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,

    /// Time allowed to receive a request's headers, in milliseconds (then the
    /// connection is closed).
    #[arg(long, env = "HEADER_READ_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..=DAY_MS))]
    pub header_read_timeout_ms: u64,

    /// Time allowed to receive a request's body after its headers, in milliseconds
    /// (then 408, and the connection is closed).
    #[arg(long, env = "BODY_READ_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..=DAY_MS))]
    pub body_read_timeout_ms: u64,

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

    /// Let webhook endpoints point at loopback, private and link-local addresses (off:
    /// registering one must not make the service call into its own network).
    #[arg(long, env = "WEBHOOK_ALLOW_PRIVATE_NETWORKS", default_value_t = false,
          value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub webhook_allow_private_networks: bool,

    /// Time a webhook endpoint has to answer a delivery, in milliseconds (then the
    /// attempt has failed and is retried on the schedule).
    #[arg(long, env = "WEBHOOK_TIMEOUT_MS", default_value_t = 15_000,
          value_parser = clap::value_parser!(u64).range(1..=300_000))]
    pub webhook_timeout_ms: u64,

    /// Multiplies the delivery retry schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
    /// 10 h): 0.001 runs it in milliseconds, for tests.
    #[arg(long, env = "WEBHOOK_RETRY_SCALE", default_value_t = 1.0,
          value_parser = parse_scale)]
    pub webhook_retry_scale: f64,

    /// An endpoint whose every delivery has failed for this long is disabled: a number
    /// with s, m, h or d.
    #[arg(long, env = "WEBHOOK_DISABLE_AFTER", default_value = "5d",
          value_parser = parse_duration)]
    pub webhook_disable_after: Duration,

    /// Most webhook deliveries in flight at once per instance.
    #[arg(long, env = "WEBHOOK_CONCURRENCY", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(1..=4_096))]
    pub webhook_concurrency: u16,

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

    /// Time a write to a client may wait while the client reads nothing, in
    /// milliseconds (then the connection is closed).
    #[arg(long, env = "WRITE_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..=DAY_MS))]
    pub write_timeout_ms: u64,
}

/// What one instance lets its clients hold: connections, and time to send a request.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Open connections at most; past it a new connection is closed as soon as it is
    /// accepted (never queued), so stalled clients cannot take every file descriptor.
    pub max_connections: usize,
    /// Time from a connection's accept (or the end of its last response) to the end
    /// of a request's headers; past it hyper closes the connection.
    pub header_read_timeout: Duration,
    /// Time from the end of a request's headers to the end of its body; past it the
    /// request is answered 408 and the connection closed.
    pub body_read_timeout: Duration,
    /// Time a write to the client may wait for room in the socket (the client not
    /// reading); past it the connection is closed.
    pub write_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// A secret setting, which `Debug` (and so any dump of the configuration) never shows.
#[derive(Clone, PartialEq, Eq)]
pub struct Redacted(pub String);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
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

/// `PROCESSOR_URL`: an absolute `http` or `https` URL.
fn parse_processor_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text).map_err(|err| format!("{text:?} is not a URL: {err}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("{text:?} is not an http or https URL"));
    }
    Ok(url)
}

/// A setting that is valid alone but not together with another. Printed as one line,
/// and the process exits with status 2 (as for a bad flag).
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

/// The simulated processing time when `PROCESSING_TIME_MS` is not set.
const DEFAULT_PROCESSING_TIME_MS: u64 = 1000;
/// The shortest processing timeout derived from the processing time.
const MIN_DERIVED_TIMEOUT_MS: u64 = 10_000;
/// The lease when `LEASE_TIMEOUT_MS` is not set: heartbeats keep it alive however long
/// an attempt runs, so it bounds only how long a dead instance's orders wait.
const DEFAULT_LEASE_MS: u64 = 30_000;

impl ServeConfig {
    /// Checks what clap cannot check field by field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let time = self
            .processing_time_ms
            .unwrap_or(DEFAULT_PROCESSING_TIME_MS);
        if let (None, Some(timeout)) = (&self.processor_url, self.processing_timeout_ms)
            && timeout <= time
        {
            let time_text = match self.processing_time_ms {
                Some(_) => format!("{time}"),
                None => format!("{time}, the default"),
            };
            return Err(ConfigError(format!(
                "PROCESSING_TIMEOUT_MS ({timeout}) must be greater than PROCESSING_TIME_MS \
                     ({time_text}), or every simulated attempt would time out"
            )));
        }
        match (&self.processor_url, &self.processor_secret) {
            (Some(_), None) => {
                return Err(ConfigError(
                    "PROCESSOR_URL is set but PROCESSOR_SECRET is not: calls to the processor \
                     are signed; set PROCESSOR_SECRET to a whsec_ secret"
                        .into(),
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError(
                    "PROCESSOR_SECRET is set but PROCESSOR_URL is not; set both".into(),
                ));
            }
            (Some(_), Some(secret)) => {
                SigningSecret::parse(&secret.0)
                    .map_err(|err| ConfigError(format!("PROCESSOR_SECRET: {err}")))?;
                if self.processing_failure_rate > 0.0 {
                    return Err(ConfigError(
                        "PROCESSING_FAILURE_RATE applies to the simulated processor, but \
                         PROCESSOR_URL is set; unset one of them"
                            .into(),
                    ));
                }
            }
            (None, None) => {}
        }
        if self.rate_limit_burst.is_some() && self.rate_limit_per_sec.is_none() {
            return Err(ConfigError(
                "RATE_LIMIT_BURST is set but RATE_LIMIT_PER_SEC is not; set both".into(),
            ));
        }
        if self.retry_base_ms > self.retry_max_ms {
            return Err(ConfigError(format!(
                "RETRY_MAX_MS ({}) must be at least RETRY_BASE_MS ({})",
                self.retry_max_ms, self.retry_base_ms
            )));
        }
        Ok(())
    }

    /// The worker pool's part of the configuration.
    pub fn worker_settings(&self) -> WorkerSettings {
        WorkerSettings {
            concurrency: usize::from(self.worker_concurrency),
            lease: Duration::from_millis(self.lease_timeout_ms.unwrap_or(DEFAULT_LEASE_MS)),
            poll_interval: Duration::from_millis(self.poll_interval_ms),
            shutdown_grace: Duration::from_millis(self.shutdown_grace_ms),
            processing_timeout: self.processing_timeout(),
            retry: RetryPolicy {
                max_attempts: self.max_attempts,
                base: Duration::from_millis(self.retry_base_ms),
                max: Duration::from_millis(self.retry_max_ms),
            },
        }
    }

    /// How long the simulated processing step takes.
    pub fn processing_time(&self) -> Duration {
        Duration::from_millis(
            self.processing_time_ms
                .unwrap_or(DEFAULT_PROCESSING_TIME_MS),
        )
    }

    /// The deadline of one attempt: as set, or twice the simulated processing time
    /// (at least 10 s), so `PROCESSING_TIME_MS` alone is enough.
    pub fn processing_timeout(&self) -> Duration {
        Duration::from_millis(self.processing_timeout_ms.unwrap_or_else(|| {
            let time = self
                .processing_time_ms
                .unwrap_or(DEFAULT_PROCESSING_TIME_MS);
            time.saturating_mul(2).max(MIN_DERIVED_TIMEOUT_MS)
        }))
    }

    /// The HTTP processor's endpoint and signing secret, when `PROCESSOR_URL` is set
    /// (`validate` has checked the secret).
    pub fn http_processor(&self) -> Result<Option<(reqwest::Url, SigningSecret)>, ConfigError> {
        let (Some(url), Some(secret)) = (&self.processor_url, &self.processor_secret) else {
            return Ok(None);
        };
        let secret = SigningSecret::parse(&secret.0)
            .map_err(|err| ConfigError(format!("PROCESSOR_SECRET: {err}")))?;
        Ok(Some((url.clone(), secret)))
    }

    /// What a client may hold of the HTTP server: connections and time.
    pub fn serve_limits(&self) -> ServeLimits {
        ServeLimits {
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            body_read_timeout: Duration::from_millis(self.body_read_timeout_ms),
            write_timeout: Duration::from_millis(self.write_timeout_ms),
        }
    }

    /// Where the NATS relay publishes, when `EVENTS_NATS_URL` is set.
    pub fn nats(&self) -> Option<NatsSettings> {
        self.events_nats_url.as_ref().map(|url| NatsSettings {
            url: url.clone(),
            stream: self.events_nats_stream.clone(),
        })
    }

    /// Where webhook endpoints may point.
    pub fn webhook_network(&self) -> NetworkPolicy {
        if self.webhook_allow_private_networks {
            NetworkPolicy::AllowPrivate
        } else {
            NetworkPolicy::PublicOnly
        }
    }

    /// How webhook deliveries are made.
    pub fn webhook_settings(&self) -> WebhookSettings {
        WebhookSettings {
            timeout: Duration::from_millis(self.webhook_timeout_ms),
            schedule: DeliverySchedule {
                scale: self.webhook_retry_scale,
            },
            disable_after: self.webhook_disable_after,
            concurrency: usize::from(self.webhook_concurrency),
            network: self.webhook_network(),
        }
    }

    /// The body limit as a length in bytes.
    pub fn body_limit(&self) -> usize {
        usize::try_from(self.body_limit_bytes).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_take_a_unit() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7_200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("0m").is_err());
        assert!(parse_duration("400d").is_err());
        assert!(parse_duration("").is_err());
    }
}
