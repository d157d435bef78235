//! Webhook endpoints as the domain sees them: what a registration may say (where
//! events go, which of them, a description); the URL's rules are in `webhook_url`, the
//! addresses an endpoint must not reach in `non_public`.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use super::webhook_url::WebhookUrl;
use super::{EventType, FieldError, OrderEvent, Timestamp};

/// Longest description accepted, in characters.
const MAX_DESCRIPTION_CHARS: usize = 500;

/// An endpoint's identifier: a UUIDv7, so ids sort by registration time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WebhookId(Uuid);

impl WebhookId {
    /// A new id whose timestamp part is `at`.
    pub fn new_at(at: Timestamp) -> Self {
        let ms = u64::try_from(at.timestamp_millis()).unwrap_or_default();
        let random: [u8; 10] = *Uuid::new_v4().as_bytes().first_chunk().expect("16 >= 10");
        Self(uuid::Builder::from_unix_timestamp_millis(ms, &random).into_uuid())
    }

    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl FromStr for WebhookId {
    type Err = uuid::Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Uuid::try_parse(text).map(Self)
    }
}

impl fmt::Display for WebhookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// A registered endpoint: where events go, which of them, and how they are signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub id: WebhookId,
    pub url: WebhookUrl,
    pub description: String,
    /// The event types it receives; `None` for every type.
    pub event_types: Option<Vec<EventType>>,
    /// `whsec_...`: signs every delivery.
    pub secret: String,
    /// The secret before the last rotation, which also signs deliveries until the time
    /// given, so receivers can switch without missing one.
    pub previous_secret: Option<(String, Timestamp)>,
    /// Set when the endpoint was disabled (by an operator, a `410`, or failing too long).
    pub disabled_at: Option<Timestamp>,
    pub disabled_reason: Option<String>,
    /// When a delivery last succeeded.
    pub last_delivered_at: Option<Timestamp>,
    /// Since when every attempt has failed (`None` after a success, or before any
    /// attempt): an endpoint failing for `WEBHOOK_DISABLE_AFTER` is disabled.
    pub failing_since: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// 1 when registered, one more with each change: a change made from a revision
    /// applies only if nobody changed the endpoint since.
    pub revision: u32,
}

impl WebhookEndpoint {
    /// Whether it receives events of this type.
    pub fn wants(&self, event_type: EventType) -> bool {
        self.event_types
            .as_ref()
            .is_none_or(|types| types.contains(&event_type))
    }

    /// Whether it is enabled: not disabled by an operator, by `410 Gone`, or by failing
    /// too long.
    pub fn is_enabled(&self) -> bool {
        self.disabled_at.is_none()
    }

    /// Whether `event` is owed to it: it is enabled, takes the event's type, and was
    /// registered by the time the event happened (a new endpoint gets what comes
    /// next, not the past).
    pub fn owes(&self, event: &OrderEvent) -> bool {
        self.is_enabled() && self.wants(event.event_type) && event.occurred_at >= self.created_at
    }
}

/// A new signing secret from 32 random bytes: `whsec_` and their base64.
pub fn new_secret(random: [u8; 32]) -> String {
    use base64::Engine;
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(random)
    )
}

/// The event types an endpoint receives: a non-empty list of known types, each once.
pub fn parse_event_types(names: &[String]) -> Result<Vec<EventType>, FieldError> {
    const FIELD: &str = "event_types";
    if names.is_empty() {
        return Err(FieldError::new(
            FIELD,
            "must name at least one event type (leave it out for all of them)",
        ));
    }
    let mut types = Vec::with_capacity(names.len());
    for name in names {
        let event_type: EventType = name.parse().map_err(|_| {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            FieldError::new(
                FIELD,
                format!("{name:?} is not an event type; one of {}", known.join(", ")),
            )
        })?;
        if !types.contains(&event_type) {
            types.push(event_type);
        }
    }
    Ok(types)
}

/// An endpoint's description: at most 500 characters, no NUL.
pub fn parse_description(text: &str) -> Result<String, FieldError> {
    const FIELD: &str = "description";
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        Err(FieldError::new(
            FIELD,
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ))
    } else if text.contains('\0') {
        Err(FieldError::new(
            FIELD,
            "must not contain NUL (\\u0000) characters",
        ))
    } else {
        Ok(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_are_known_types_each_once() {
        let names = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            parse_event_types(&names(&[
                "order.completed",
                "order.failed",
                "order.completed"
            ])),
            Ok(vec![EventType::Completed, EventType::Failed])
        );
        assert!(parse_event_types(&[]).is_err());
        let err = parse_event_types(&names(&["order.shipped"])).unwrap_err();
        assert_eq!(err.field, "event_types");
        assert!(err.message.contains("order.completed"), "{}", err.message);
    }

    #[test]
    fn secrets_are_whsec_and_32_bytes_and_endpoints_filter_by_type() {
        let secret = new_secret([7; 32]);
        assert!(secret.starts_with("whsec_"));
        assert!(crate::signature::SigningSecret::parse(&secret).is_ok());
        let now = crate::domain::now();
        let mut endpoint = WebhookEndpoint {
            id: WebhookId::new_at(now),
            url: WebhookUrl::parse("https://shop.example/hooks").unwrap(),
            description: String::new(),
            event_types: None,
            secret,
            previous_secret: None,
            disabled_at: None,
            disabled_reason: None,
            last_delivered_at: None,
            failing_since: None,
            created_at: now,
            updated_at: now,
            revision: 1,
        };
        assert!(endpoint.wants(EventType::Created));
        endpoint.event_types = Some(vec![EventType::Completed]);
        assert!(endpoint.wants(EventType::Completed) && !endpoint.wants(EventType::Created));
        assert_eq!(
            endpoint.id.to_string().parse::<WebhookId>(),
            Ok(endpoint.id)
        );
    }

    #[test]
    fn descriptions_are_short_and_have_no_nul() {
        assert_eq!(parse_description("ERP").unwrap(), "ERP");
        assert!(parse_description(&"é".repeat(500)).is_ok());
        assert!(parse_description(&"é".repeat(501)).is_err());
        assert!(parse_description("a\0b").is_err());
    }
}
