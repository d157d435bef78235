//! One attempt of one delivery: the `POST` signed as Standard Webhooks says, through a
//! client that follows no redirect, uses no proxy from the environment and connects
//! only to addresses the network policy allows.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderValue};

use super::network::{CheckedResolver, NetworkPolicy, refused};
use crate::domain::{Timestamp, WebhookEndpoint, WebhookHost, WebhookId};
use crate::outbound::{error_text, read_up_to, retry_after, unreachable};
use crate::signature::SigningSecret;
use crate::store::{Store, StoreError};

/// Most of a success's body read (and dropped); a longer one costs its connection.
const SUCCESS_BODY_BYTES: usize = 64 * 1024;

/// Where an endpoint's deliveries go and what signs them.
pub struct Target {
    pub url: Url,
    host: WebhookHost,
    /// The current secret, and during a rotation's overlap the previous one.
    secrets: Vec<SigningSecret>,
}

impl Target {
    /// The endpoint as deliveries at `now` see it.
    pub fn of(endpoint: &WebhookEndpoint, now: Timestamp) -> Result<Self, String> {
        let mut secrets = vec![SigningSecret::parse(&endpoint.secret)?];
        if let Some((previous, until)) = &endpoint.previous_secret
            && *until > now
        {
            secrets.push(SigningSecret::parse(previous)?);
        }
        Ok(Self {
            url: Url::parse(endpoint.url.as_str()).map_err(|err| err.to_string())?,
            host: endpoint.url.host(),
            secrets,
        })
    }
}

/// Every endpoint as deliveries at `now` see it, read at the time of the call: a caller
/// reads them after it has learnt what it will send (events, claims), so a delivery of
/// anything that happened after a change to its endpoint (a rotated secret, a new URL)
/// goes out as the endpoint is since that change.
pub async fn current_targets(
    store: &dyn Store,
    now: Timestamp,
    wanted: impl IntoIterator<Item = WebhookId>,
) -> Result<HashMap<WebhookId, Arc<Result<Target, String>>>, StoreError> {
    Ok(targets_of(&store.endpoints().await?, now, wanted))
}

/// `endpoints` as deliveries at `now` see them. An endpoint in `wanted` that is not
/// among them was removed meanwhile, and its attempts fail with that reason.
pub fn targets_of(
    endpoints: &[WebhookEndpoint],
    now: Timestamp,
    wanted: impl IntoIterator<Item = WebhookId>,
) -> HashMap<WebhookId, Arc<Result<Target, String>>> {
    let mut targets: HashMap<WebhookId, Arc<Result<Target, String>>> = endpoints
        .iter()
        .map(|endpoint| (endpoint.id, Arc::new(Target::of(endpoint, now))))
        .collect();
    for id in wanted {
        targets
            .entry(id)
            .or_insert_with(|| Arc::new(Err("the endpoint was removed".to_owned())));
    }
    targets
}

/// What an attempt got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// An answer: its status, the `Retry-After` it asked for, and (unless `2xx`) the
    /// start of its body.
    Answered {
        status: u16,
        retry_after: Option<Duration>,
        text: Option<String>,
    },
    /// No answer: the connection failed, timed out, or was not allowed.
    NoAnswer(String),
}

/// Sends deliveries through one pooled client.
pub struct Sender {
    client: reqwest::Client,
    timeout: Duration,
    policy: NetworkPolicy,
}

impl Sender {
    pub fn new(timeout: Duration, policy: NetworkPolicy) -> reqwest::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment would connect where the policy cannot see.
            .no_proxy()
            .dns_resolver(Arc::new(CheckedResolver(policy)))
            .connect_timeout(timeout)
            .user_agent(concat!(
                "order-processor-webhooks/",
                env!("CARGO_PKG_VERSION")
            ))
            .use_rustls_tls()
            .build()?;
        Ok(Self {
            client,
            timeout,
            policy,
        })
    }

    /// One attempt: `body` posted to the target, signed for message `id` at this second.
    pub async fn send(&self, target: &Target, id: &str, body: &[u8]) -> Sent {
        if let WebhookHost::Address(ip) = target.host
            && let Some(why) = refused(ip, self.policy)
        {
            return Sent::NoAnswer(why);
        }
        let timestamp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs() as i64);
        let signatures: Vec<String> = target
            .secrets
            .iter()
            .map(|secret| secret.sign(id, timestamp, body))
            .collect();
        let request = self
            .client
            .post(target.url.clone())
            .timeout(self.timeout)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signatures.join(" "))
            .body(body.to_vec());
        match request.send().await {
            Err(err) => Sent::NoAnswer(unreachable("calling the endpoint failed", err)),
            Ok(response) => {
                let status = response.status();
                let retry_after = retry_after(response.headers());
                let text = if status.is_success() {
                    // Read to its end, so the connection can carry the next delivery.
                    read_up_to(response, SUCCESS_BODY_BYTES).await;
                    None
                } else {
                    Some(error_text(response).await)
                };
                Sent::Answered {
                    status: status.as_u16(),
                    retry_after,
                    text,
                }
            }
        }
    }
}
