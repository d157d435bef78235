//! The one error shape of the API: RFC 9457 problem details, `application/problem+json`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::{IntoResponses, ToSchema};

use crate::auth::AuthError;
use crate::domain::FieldError;
use crate::store::StoreError;

/// Every way a request can fail, each with its status and problem type.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request body has invalid fields")]
    Validation(Vec<FieldError>),
    #[error("the query string has invalid parameters")]
    InvalidQuery(Vec<FieldError>),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unauthorized(#[from] AuthError),
    #[error("{0}")]
    Forbidden(String),
    #[error("a header is invalid")]
    InvalidHeader(Vec<FieldError>),
    #[error("a request with this Idempotency-Key is still being processed; retry shortly")]
    IdempotencyKeyInFlight,
    #[error("this Idempotency-Key was already used with a different request body")]
    IdempotencyKeyReused,
    #[error("too many requests; retry after {0} s")]
    RateLimited(u64),
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("the request body must be a JSON object")]
    NotAnObject,
    #[error("the request body must be `application/json`")]
    UnsupportedMediaType,
    #[error("the request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the request body could not be read")]
    UnreadableBody,
    #[error("the request body was not received in time; the connection is closed")]
    BodyReadTimeout,
    #[error("{0}")]
    NotFound(String),
    #[error("this method is not allowed on this resource")]
    MethodNotAllowed,
    #[error("the service is temporarily unavailable; try again shortly")]
    Unavailable(#[source] StoreError),
    #[error("not ready: {0}")]
    NotReady(String),
    #[error("this instance already holds its {0} open event streams; retry shortly")]
    TooManyStreams(usize),
    #[error("internal error")]
    Internal(#[source] StoreError),
}

/// The challenge of RFC 6750: the realm, and for a bad token why it was refused.
fn www_authenticate(reason: &AuthError) -> HeaderValue {
    let value = match reason {
        AuthError::Missing => r#"Bearer realm="order-processor""#.to_owned(),
        AuthError::Invalid(why) => format!(
            r#"Bearer realm="order-processor", error="invalid_token", error_description="{}""#,
            why.replace(['"', '\\'], "'")
        ),
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        if err.is_unavailable() {
            Self::Unavailable(err)
        } else {
            Self::Internal(err)
        }
    }
}

/// Seconds a client is asked to wait after a 503.
const RETRY_AFTER_SECS: &str = "1";

/// The problem-details body (RFC 9457), with our `errors` extension member.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem<'a> {
    /// A URI reference naming the kind of problem; stable, so clients may switch on it.
    #[serde(rename = "type")]
    #[schema(example = "/problems/validation-error")]
    kind: &'a str,
    /// A short summary of the kind of problem.
    title: &'a str,
    /// The HTTP status code.
    #[schema(example = 422)]
    status: u16,
    /// What went wrong with this request.
    detail: String,
    /// For invalid input: every offending field (or parameter, or header).
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<Vec<ProblemField<'a>>>,
}

/// One offending field and what is wrong with it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemField<'a> {
    #[schema(example = "total_amount")]
    field: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::InvalidQuery(_) => StatusCode::BAD_REQUEST,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::InvalidHeader(_) => StatusCode::BAD_REQUEST,
            Self::IdempotencyKeyInFlight => StatusCode::CONFLICT,
            Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::MalformedJson(_) | Self::NotAnObject | Self::UnreadableBody => {
                StatusCode::BAD_REQUEST
            }
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyReadTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable(_) | Self::NotReady(_) | Self::TooManyStreams(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable URI per kind of problem, relative to the API; clients may switch on it.
    fn problem_type(&self) -> &'static str {
        match self {
            Self::Validation(_) => "/problems/validation-error",
            Self::InvalidQuery(_) => "/problems/invalid-query",
            Self::Conflict(_) => "/problems/conflict",
            Self::Unauthorized(_) => "/problems/unauthorized",
            Self::Forbidden(_) => "/problems/forbidden",
            Self::InvalidHeader(_) => "/problems/invalid-header",
            Self::IdempotencyKeyInFlight => "/problems/idempotency-key-in-flight",
            Self::IdempotencyKeyReused => "/problems/idempotency-key-reused",
            Self::RateLimited(_) => "/problems/rate-limited",
            Self::MalformedJson(_) | Self::NotAnObject => "/problems/malformed-json",
            Self::UnsupportedMediaType => "/problems/unsupported-media-type",
            Self::PayloadTooLarge(_) => "/problems/payload-too-large",
            Self::UnreadableBody => "/problems/unreadable-body",
            Self::BodyReadTimeout => "/problems/request-timeout",
            Self::NotFound(_) => "/problems/not-found",
            Self::MethodNotAllowed => "/problems/method-not-allowed",
            Self::Unavailable(_) => "/problems/service-unavailable",
            Self::NotReady(_) => "/problems/not-ready",
            Self::TooManyStreams(_) => "/problems/too-many-streams",
            Self::Internal(_) => "/problems/internal-error",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Self::Validation(_) => "Your request has invalid fields",
            Self::InvalidQuery(_) => "Your request has invalid query parameters",
            Self::Conflict(_) => "The order is not in a state that allows this",
            Self::MalformedJson(_) | Self::NotAnObject => "Malformed JSON",
            Self::UnreadableBody => "Unreadable request body",
            // The reason phrase for the rest is the right short summary.
            other => other.status_code().canonical_reason().unwrap_or("Error"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        match &self {
            // Logged once, here; the client learns only that something went wrong.
            Self::Internal(cause) => tracing::error!(error = ?cause, "request failed"),
            Self::Unavailable(cause) => tracing::warn!(error = ?cause, "database unavailable"),
            _ => {}
        }
        let errors = match &self {
            Self::Validation(fields) | Self::InvalidQuery(fields) | Self::InvalidHeader(fields) => {
                Some(
                    fields
                        .iter()
                        .map(|f| ProblemField {
                            field: &f.field,
                            message: &f.message,
                        })
                        .collect(),
                )
            }
            _ => None,
        };
        let detail = match &self {
            Self::Validation(fields) | Self::InvalidQuery(fields) | Self::InvalidHeader(fields) => {
                fields
                    .iter()
                    .map(|f| format!("{} {}", f.field, f.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            }
            Self::Internal(_) => "something went wrong on our side; it has been logged".into(),
            other => other.to_string(),
        };
        let problem = Problem {
            kind: self.problem_type(),
            title: self.title(),
            status: status.as_u16(),
            detail,
            errors,
        };
        let body = serde_json::to_vec(&problem).expect("problem serialises");
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        if let Self::RateLimited(seconds) = &self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(*seconds));
        }
        if let Self::BodyReadTimeout = &self {
            // The rest of the body may still come; the connection cannot be reused.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Self::Unauthorized(reason) = &self {
            headers.insert(header::WWW_AUTHENTICATE, www_authenticate(reason));
        }
        response
    }
}

/// Problems any API route can answer besides its own.
#[derive(IntoResponses)]
#[expect(
    dead_code,
    reason = "Documents answers; built by `ApiError`, not from here."
)]
pub enum CommonProblems {
    /// The bearer token is missing or invalid (only when authentication is on).
    #[response(
        status = 401,
        content_type = "application/problem+json",
        headers(("WWW-Authenticate" = String,
                 description = "The bearer challenge (RFC 6750): the realm, and for a bad \
                                token `error=\"invalid_token\"` with the reason"))
    )]
    Unauthorized(#[to_schema] Problem<'static>),
    /// The token's user may not do this.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(#[to_schema] Problem<'static>),
    /// Too many requests from this caller; see `Retry-After`.
    #[response(
        status = 429,
        content_type = "application/problem+json",
        headers(("Retry-After" = u64,
                 description = "Whole seconds until this caller's next request is allowed"))
    )]
    TooManyRequests(#[to_schema] Problem<'static>),
    /// Something failed on our side; the cause is logged.
    #[response(status = 500, content_type = "application/problem+json")]
    Internal(#[to_schema] Problem<'static>),
    /// The database is unreachable for now; see `Retry-After`.
    #[response(
        status = 503,
        content_type = "application/problem+json",
        headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))
    )]
    Unavailable(#[to_schema] Problem<'static>),
}
