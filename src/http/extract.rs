//! Request extractors that turn every malformed input into an `ApiError`, so no
//! rejection escapes in another shape.

use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, Path, Request};
use axum::http::{StatusCode, header};
use serde::Deserialize;

use super::body_deadline::is_read_timeout;
use super::error::ApiError;
use super::state::AppState;

/// A JSON request body, read but not yet parsed: `Content-Type` checked (415), size
/// limited (413), received in time (408), not empty (400). [`JsonBody::parse`] reads it (400 if it is not
/// JSON), borrowing from it where the target type can.
pub struct JsonBody(Bytes);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = read(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::MalformedJson("the body is empty".into()));
        }
        Ok(Self(bytes))
    }
}

/// A request body that may be absent: none at all, or only whitespace, is `None`;
/// anything else must be a JSON body as [`JsonBody`] requires.
pub struct OptionalJsonBody(pub Option<JsonBody>);

impl FromRequest<AppState> for OptionalJsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let json = is_json(req.headers().get(header::CONTENT_TYPE));
        let bytes = read(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            Ok(Self(None))
        } else if !json {
            Err(ApiError::UnsupportedMediaType)
        } else {
            Ok(Self(Some(JsonBody(bytes))))
        }
    }
}

/// The whole body, within the size limit and the time limit.
async fn read(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state)
        .await
        .map_err(|rejection| match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(state.body_limit),
            _ if is_read_timeout(&rejection) => ApiError::BodyReadTimeout,
            _ => ApiError::UnreadableBody,
        })
}

impl JsonBody {
    /// The body as a `T`; JSON of the wrong shape (not an object, for a struct) is
    /// told apart from text that is not JSON at all.
    pub fn parse<'a, T: Deserialize<'a>>(&'a self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.0).map_err(|err| match err.classify() {
            serde_json::error::Category::Data => ApiError::NotAnObject,
            _ => ApiError::MalformedJson(err.to_string()),
        })
    }
}

/// The id a path names, as text and parsed: a malformed id (even one that is not UTF-8
/// once decoded) names nothing, so it is the same 404 as an unknown one. `what` names
/// the resource in the answer ("order", "webhook endpoint").
pub fn path_id<T: FromStr>(
    path: Result<Path<String>, PathRejection>,
    what: &str,
) -> Result<(String, T), ApiError> {
    let Ok(Path(text)) = path else {
        return Err(ApiError::NotFound(format!("no such {what}")));
    };
    match text.parse() {
        Ok(id) => Ok((text, id)),
        Err(_) => Err(no_such(what, &text)),
    }
}

/// The 404 for an id that names no `what` (or none the caller may see).
pub fn no_such(what: &str, id: &str) -> ApiError {
    ApiError::NotFound(format!("no {what} with id {id:?}"))
}

/// `application/json`, with or without parameters, or any `+json` type.
fn is_json(content_type: Option<&axum::http::HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn json_content_types_are_recognised_with_parameters_and_suffixes() {
        let ok = [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/merge-patch+json",
        ];
        for value in ok {
            assert!(is_json(Some(&HeaderValue::from_static(value))), "{value}");
        }
        let bad = ["text/plain", "application/jsonp", "multipart/form-data", ""];
        for value in bad {
            assert!(!is_json(Some(&HeaderValue::from_static(value))), "{value}");
        }
        assert!(!is_json(None));
    }
}
