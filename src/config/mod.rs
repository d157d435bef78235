//! Configuration: every setting is a flag and an environment variable, typed and
//! checked at start-up so a bad value fails before anything runs. `ServeConfig` is
//! one struct of settings groups, a file each; the flags are the fields' names.

use std::net::IpAddr;

use clap::{Args, ValueEnum};

use crate::auth::AuthConfig;
use crate::signature::SigningSecret;

mod connections;
mod database;
mod events;
mod parse;
mod processing;
mod requests;
mod streams;
mod webhooks;

pub use connections::{ConnectionConfig, ServeLimits};
pub use database::DatabaseConfig;
pub use events::{DEFAULT_BACKGROUND_YIELD_AT, EventConfig};
pub use parse::{Redacted, parse_duration};
pub use processing::ProcessingConfig;
pub use requests::RequestConfig;
pub use streams::StreamConfig;
pub use webhooks::WebhookConfig;

use processing::DEFAULT_PROCESSING_TIME_MS;

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

    #[command(flatten)]
    pub processing: ProcessingConfig,

    #[command(flatten)]
    pub auth: AuthConfig,

    #[command(flatten)]
    pub requests: RequestConfig,

    #[command(flatten)]
    pub connections: ConnectionConfig,

    #[command(flatten)]
    pub events: EventConfig,

    #[command(flatten)]
    pub webhooks: WebhookConfig,

    #[command(flatten)]
    pub streams: StreamConfig,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// A setting that is valid alone but not together with another. Printed as one line,
/// and the process exits with status 2 (as for a bad flag).
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl ServeConfig {
    /// Checks what clap cannot check field by field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let processing = &self.processing;
        let time = processing
            .processing_time_ms
            .unwrap_or(DEFAULT_PROCESSING_TIME_MS);
        if let (None, Some(timeout)) = (&processing.processor_url, processing.processing_timeout_ms)
            && timeout <= time
        {
            let time_text = match processing.processing_time_ms {
                Some(_) => format!("{time}"),
                None => format!("{time}, the default"),
            };
            return Err(ConfigError(format!(
                "PROCESSING_TIMEOUT_MS ({timeout}) must be greater than PROCESSING_TIME_MS \
                     ({time_text}), or every simulated attempt would time out"
            )));
        }
        match (&processing.processor_url, &processing.processor_secret) {
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
                if processing.processing_failure_rate > 0.0 {
                    return Err(ConfigError(
                        "PROCESSING_FAILURE_RATE applies to the simulated processor, but \
                         PROCESSOR_URL is set; unset one of them"
                            .into(),
                    ));
                }
            }
            (None, None) => {}
        }
        if self.requests.rate_limit_burst.is_some() && self.requests.rate_limit_per_sec.is_none() {
            return Err(ConfigError(
                "RATE_LIMIT_BURST is set but RATE_LIMIT_PER_SEC is not; set both".into(),
            ));
        }
        if processing.retry_base_ms > processing.retry_max_ms {
            return Err(ConfigError(format!(
                "RETRY_MAX_MS ({}) must be at least RETRY_BASE_MS ({})",
                processing.retry_max_ms, processing.retry_base_ms
            )));
        }
        Ok(())
    }
}
