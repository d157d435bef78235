//! Webhook endpoints as the domain sees them: what a registration may say (where
//! events go, which of them, a description) and which network addresses an endpoint
//! must not reach unless an operator allows it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use uuid::Uuid;

use super::{EventType, FieldError, Timestamp};

/// Longest endpoint URL accepted, in bytes.
const MAX_URL_BYTES: usize = 2_048;
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
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl WebhookEndpoint {
    /// Whether it receives events of this type.
    pub fn wants(&self, event_type: EventType) -> bool {
        self.event_types
            .as_ref()
            .is_none_or(|types| types.contains(&event_type))
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

/// Where an endpoint's deliveries go: an absolute `http` or `https` URL with a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

/// An endpoint URL's host, as a delivery would reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookHost {
    /// A literal address: checked as it is.
    Address(IpAddr),
    /// A name: checked by what it resolves to.
    Name(String),
}

impl WebhookUrl {
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        const FIELD: &str = "url";
        if text.len() > MAX_URL_BYTES {
            return Err(FieldError::new(
                FIELD,
                format!("must be at most {MAX_URL_BYTES} bytes"),
            ));
        }
        let url = url::Url::parse(text)
            .map_err(|err| FieldError::new(FIELD, format!("is not an absolute URL: {err}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FieldError::new(FIELD, "must be an http or https URL"));
        }
        if url.host().is_none() {
            return Err(FieldError::new(FIELD, "must name a host"));
        }
        if url.fragment().is_some() {
            return Err(FieldError::new(FIELD, "must not have a #fragment"));
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The URL as the endpoint's owner wrote it, read back from storage.
    pub fn from_stored(text: &str) -> Result<Self, FieldError> {
        Self::parse(text)
    }

    /// The host a delivery connects to.
    pub fn host(&self) -> WebhookHost {
        match self.0.host() {
            Some(url::Host::Ipv4(ip)) => WebhookHost::Address(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => WebhookHost::Address(IpAddr::V6(ip)),
            Some(url::Host::Domain(name)) => WebhookHost::Name(name.to_owned()),
            None => unreachable!("checked when parsed"),
        }
    }

    /// The port a delivery connects to (the scheme's when none is written).
    pub fn port(&self) -> u16 {
        self.0.port_or_known_default().unwrap_or(443)
    }
}

/// Why an address is one a webhook must not reach by default (a request forged to the
/// service's own network, or to a cloud's metadata service, which hands out
/// credentials), or `None` for a public address.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => non_public_v4(ip),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => non_public_v4(v4),
            None => non_public_v6(ip),
        },
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) || ip == Ipv4Addr::new(100, 100, 100, 200) {
        Some("a cloud metadata address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_private() {
        Some("a private address")
    } else if ip.is_link_local() {
        Some("a link-local address")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a shared (carrier-grade NAT) address")
    } else if ip.is_unspecified() || ip.is_broadcast() || a == 0 {
        Some("not a routable address")
    } else if ip.is_multicast() || a >= 240 {
        Some("not a unicast address")
    } else {
        None
    }
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254) {
        Some("a cloud metadata address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if first & 0xfe00 == 0xfc00 {
        Some("a private (unique local) address")
    } else if first & 0xffc0 == 0xfe80 {
        Some("a link-local address")
    } else if ip.is_unspecified() {
        Some("not a routable address")
    } else if ip.is_multicast() {
        Some("not a unicast address")
    } else {
        None
    }
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
    fn urls_must_be_absolute_http_or_https_with_a_host() {
        let url = WebhookUrl::parse("https://shop.example/hooks?x=1").unwrap();
        assert_eq!(url.host(), WebhookHost::Name("shop.example".into()));
        assert_eq!(url.port(), 443);
        let url = WebhookUrl::parse("http://[::1]:8080/").unwrap();
        assert_eq!(url.host(), WebhookHost::Address("::1".parse().unwrap()));
        assert_eq!(url.port(), 8080);
        for bad in [
            "ftp://shop.example/",
            "shop.example/hooks",
            "http://",
            "https://:443/",
            "file:///etc/passwd",
            "https://shop.example/#frag",
            "",
        ] {
            let err = WebhookUrl::parse(bad).unwrap_err();
            assert_eq!(err.field, "url", "{bad}");
        }
        let long = format!("https://shop.example/{}", "a".repeat(MAX_URL_BYTES));
        assert!(WebhookUrl::parse(&long).is_err());
    }

    #[test]
    fn loopback_private_link_local_and_metadata_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "224.0.0.1",
        ] {
            assert!(non_public(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "100.128.0.1",
        ] {
            assert_eq!(non_public(ip.parse().unwrap()), None, "{ip}");
        }
        assert_eq!(
            non_public("169.254.169.254".parse().unwrap()),
            Some("a cloud metadata address")
        );
    }

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
            created_at: now,
            updated_at: now,
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
