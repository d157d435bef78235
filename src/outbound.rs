//! What every outbound HTTP call shares (the HTTP processor's, webhook deliveries'):
//! reading the start of an answer, `Retry-After`, and an error told with its causes
//! but without the URL.

use std::time::{Duration, SystemTime};

use reqwest::Response;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// How much of a refusal's answer is kept as its error.
pub const ERROR_BODY_BYTES: usize = 1024;

/// The start of a refusal's body, for `last_error`.
pub async fn error_text(response: Response) -> String {
    let (bytes, _) = read_up_to(response, ERROR_BODY_BYTES).await;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(ERROR_BODY_BYTES)]);
    if text.trim().is_empty() {
        "(no body)".to_owned()
    } else {
        text.into_owned()
    }
}

/// Reads at most about `limit` bytes of the body (never more than a chunk past it);
/// says whether the whole body was read without error.
pub async fn read_up_to(mut response: Response, limit: usize) -> (Vec<u8>, bool) {
    let mut bytes = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                bytes.extend_from_slice(&chunk);
                if bytes.len() >= limit {
                    return (bytes, false);
                }
            }
            Ok(None) => return (bytes, true),
            Err(_) => return (bytes, false),
        }
    }
}

/// `Retry-After` as seconds or as an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

/// Why the endpoint could not be reached or did not answer, with the causes; without
/// the URL, which may hold credentials and goes into `last_error`, which the order's
/// owner reads.
pub fn unreachable(what: &str, err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut text = format!("{what}: {err}");
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        headers.insert(RETRY_AFTER, HeaderValue::try_from(later).unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(wait > Duration::from_secs(110) && wait <= Duration::from_secs(120));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }
}
