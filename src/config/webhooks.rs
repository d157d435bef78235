//! The webhook settings: where endpoints may point, and how deliveries are timed,
//! retried, given up on and run at once.

use std::time::Duration;

use clap::Args;

use super::parse::parse_duration;
use crate::domain::DeliverySchedule;
use crate::webhooks::{NetworkPolicy, WebhookSettings};

/// How webhook deliveries are made, as set.
#[derive(Debug, Clone, Args)]
pub struct WebhookConfig {
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
}

/// `WEBHOOK_RETRY_SCALE`: a factor above 0, at most 1000.
fn parse_scale(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(scale) if scale > 0.0 && scale <= 1_000.0 => Ok(scale),
        _ => Err(format!("{text:?} is not a number above 0 and at most 1000")),
    }
}

impl WebhookConfig {
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
}
