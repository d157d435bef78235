//! Webhook endpoints as the domain sees them: what a registration may say (where
//! events go, which of them, a description) and which network addresses an endpoint
//! must not reach unless an operator allows it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use uuid::Uuid;

use super::{EventType, FieldError, OrderEvent, Timestamp};

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

    /// Whether `event` is owed to it: it is enabled, takes the event's type, and was
    /// registered by the time the event happened (a new endpoint gets what comes
    /// next, not the past).
    pub fn owes(&self, event: &OrderEvent) -> bool {
        self.disabled_at.is_none()
            && self.wants(event.event_type)
            && event.occurred_at >= self.created_at
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
    /// Checks a URL as written; the limit applies to its normal form (percent-encoded,
    /// punycode), which is what is stored and what a delivery sends.
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        let url = Self::checked(text)?;
        if url.as_str().len() > MAX_URL_BYTES {
            return Err(FieldError::new(
                "url",
                format!("must be at most {MAX_URL_BYTES} bytes once normalised"),
            ));
        }
        Ok(url)
    }

    /// Everything but the length, for a URL read back from storage: it passed `parse`
    /// when it was written, and a limit changed since must not make it unreadable.
    pub fn from_stored(text: &str) -> Result<Self, FieldError> {
        Self::checked(text)
    }

    fn checked(text: &str) -> Result<Self, FieldError> {
        const FIELD: &str = "url";
        if text.len() > 4 * MAX_URL_BYTES {
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
    let [a, b, c, _] = ip.octets();
    // AWS, GCP and Azure (169.254.169.254), Alibaba (100.100.100.200), Azure's
    // WireServer (168.63.129.16, a public address), Oracle's legacy one (192.0.0.192).
    let metadata = [
        Ipv4Addr::new(169, 254, 169, 254),
        Ipv4Addr::new(100, 100, 100, 200),
        Ipv4Addr::new(168, 63, 129, 16),
        Ipv4Addr::new(192, 0, 0, 192),
    ];
    if metadata.contains(&ip) {
        Some("a cloud metadata address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_private() {
        Some("a private address")
    } else if ip.is_link_local() {
        Some("a link-local address")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a shared (carrier-grade NAT) address")
    } else if (a, b, c) == (192, 0, 0) || (a == 198 && (18..20).contains(&b)) {
        Some("a reserved address")
    } else if matches!((a, b, c), (192, 0, 2) | (198, 51, 100) | (203, 0, 113)) {
        Some("a documentation address")
    } else if ip.is_unspecified() || ip.is_broadcast() || a == 0 {
        Some("not a routable address")
    } else if ip.is_multicast() || a >= 240 {
        Some("not a unicast address")
    } else {
        None
    }
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    let first = segments[0];
    let v4 = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    // IPv6 forms that carry an IPv4 address are checked by that address: IPv4-compatible
    // (::a.b.c.d), NAT64 (64:ff9b::/96, which a DNS64 resolver hands out for names whose
    // only address is IPv4) and 6to4 (2002:a.b.c.d::/48).
    if segments[..6] == [0; 6] && !ip.is_loopback() && !ip.is_unspecified() {
        return non_public_v4(v4(segments[6], segments[7]));
    }
    // SIIT's IPv4-translated form, ::ffff:0:a.b.c.d.
    if segments[..6] == [0, 0, 0, 0, 0xffff, 0] {
        return non_public_v4(v4(segments[6], segments[7]));
    }
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return non_public_v4(v4(segments[6], segments[7]));
    }
    if first == 0x2002 {
        return non_public_v4(v4(segments[1], segments[2]));
    }
    if ip == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254) {
        Some("a cloud metadata address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if first & 0xfe00 == 0xfc00 {
        Some("a private (unique local) address")
    } else if first & 0xffc0 == 0xfe80 {
        Some("a link-local address")
    } else if first & 0xffc0 == 0xfec0 {
        Some("a site-local address")
    } else if (segments[0], segments[1]) == (0x64, 0xff9b) {
        Some("a local-use NAT64 address")
    } else if (segments[0], segments[1]) == (0x2001, 0) {
        Some("a Teredo address")
    } else if first == 0 {
        // The rest of ::/16, reserved (the IPv4-mapped block is checked above, by its
        // IPv4 address).
        Some("not a routable address")
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
        // Within the limit as written, over it once percent-encoded.
        let encoded = format!("https://shop.example/{}", "é".repeat(900));
        assert!(encoded.len() <= MAX_URL_BYTES);
        let err = WebhookUrl::parse(&encoded).unwrap_err();
        assert!(err.message.contains("normalised"), "{}", err.message);
        // What was stored stays readable whatever the limit.
        let stored = WebhookUrl::parse(&format!("https://shop.example/{}", "a".repeat(2_000)))
            .unwrap()
            .as_str()
            .to_owned();
        assert!(WebhookUrl::from_stored(&format!("{stored}{}", "b".repeat(100))).is_ok());
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
            "168.63.129.16",
            "192.0.0.192",
            "198.18.0.1",
            "203.0.113.7",
            "::127.0.0.1",
            "::a9fe:a9fe",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "2002:a00:1::1",
            "2002:7f00:1::",
            "2001:0:4136:e378::1",
            "fec0::1",
            "::ffff:0:a00:1",
            "::1:0:0:1",
        ] {
            assert!(non_public(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "100.128.0.1",
            "64:ff9b::5db8:d822",
            "2002:5db8:d822::1",
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
