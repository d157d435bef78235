//! Where a webhook endpoint's deliveries go: the URL a registration may name, and the
//! host and port a delivery connects to.

use std::net::IpAddr;

use super::FieldError;

/// Longest endpoint URL accepted, in bytes.
const MAX_URL_BYTES: usize = 2_048;

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
}
