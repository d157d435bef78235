//! The processing settings: the worker pool, the processor it calls (simulated or
//! `PROCESSOR_URL`), attempts and their backoff, leases and the shutdown grace.

use std::time::Duration;

use clap::Args;

use super::ConfigError;
use super::parse::{DAY_MS, Redacted};
use crate::domain::RetryPolicy;
use crate::signature::SigningSecret;
use crate::worker::WorkerSettings;

/// How orders are processed.
#[derive(Debug, Clone, Args)]
pub struct ProcessingConfig {
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

/// `PROCESSOR_URL`: an absolute `http` or `https` URL.
fn parse_processor_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text).map_err(|err| format!("{text:?} is not a URL: {err}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("{text:?} is not an http or https URL"));
    }
    Ok(url)
}

/// The simulated processing time when `PROCESSING_TIME_MS` is not set.
pub(super) const DEFAULT_PROCESSING_TIME_MS: u64 = 1000;
/// The shortest processing timeout derived from the processing time.
const MIN_DERIVED_TIMEOUT_MS: u64 = 10_000;
/// The lease when `LEASE_TIMEOUT_MS` is not set: heartbeats keep it alive however long
/// an attempt runs, so it bounds only how long a dead instance's orders wait.
const DEFAULT_LEASE_MS: u64 = 30_000;

impl ProcessingConfig {
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
}
