//! What a request says about an event stream: whether it asks for one (`Accept:
//! text/event-stream`), and the position it resumes after (`Last-Event-ID`).

use axum::http::{HeaderMap, header};

use super::error::ApiError;
use crate::domain::FieldError;

/// Whether the client asked for Server-Sent Events rather than JSON.
pub fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|kind| {
            kind.split(';')
                .next()
                .is_some_and(|kind| kind.trim().eq_ignore_ascii_case("text/event-stream"))
        })
}

/// The position a reconnecting client has seen (`Last-Event-ID`), if it sent one.
pub fn last_event_id(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    match value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse::<i64>().ok())
    {
        Some(position) if position >= 0 => Ok(Some(position)),
        _ => Err(ApiError::InvalidHeader(vec![FieldError::new(
            "Last-Event-ID",
            "must be a position this service sent: an integer of 0 or more",
        )])),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    header::HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    #[test]
    fn event_streams_are_chosen_by_the_accept_header() {
        assert!(wants_stream(&headers(&[("accept", "text/event-stream")])));
        assert!(wants_stream(&headers(&[(
            "accept",
            "application/json;q=0.5, Text/Event-Stream"
        )])));
        assert!(!wants_stream(&headers(&[("accept", "application/json")])));
        assert!(!wants_stream(&headers(&[("accept", "*/*")])));
        assert!(!wants_stream(&headers(&[])));
    }

    #[test]
    fn a_last_event_id_is_a_position() {
        assert_eq!(last_event_id(&headers(&[])).unwrap(), None);
        assert_eq!(
            last_event_id(&headers(&[("last-event-id", "42")])).unwrap(),
            Some(42)
        );
        for bad in ["-1", "x", ""] {
            let value = HeaderValue::from_str(bad).unwrap();
            let mut map = HeaderMap::new();
            map.insert("last-event-id", value);
            assert!(last_event_id(&map).is_err(), "{bad:?}");
        }
    }
}
