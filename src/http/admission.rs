//! Admission: every API route learns who is calling (or the request ends here with
//! 401) and takes a token from that caller's rate-limit bucket (or ends with 429).

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::rate_limit;
use super::state::AppState;
use crate::auth::Caller;

/// Puts the `Caller` in the request's extensions (`Anyone` when authentication is
/// off, the token's user when it is on and the token verifies), then rate-limits.
/// Installed only when authentication or rate limiting is on.
pub async fn admit(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let caller = match &state.auth {
        None => Caller::Anyone,
        Some(auth) => {
            let header = request
                .headers()
                .get(AUTHORIZATION)
                .and_then(|value| value.to_str().ok());
            match auth.verify(header) {
                Ok(caller) => caller,
                Err(err) => return ApiError::Unauthorized(err).into_response(),
            }
        }
    };
    if let Some(limiter) = &state.rate_limiter
        && let Err(limited) = rate_limit::check(limiter, &caller, &request)
    {
        return limited.into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// The caller `admit` found. With authentication off there is no middleware to ask
/// and everyone is `Anyone`; with it on, a request that did not pass `admit` is
/// refused rather than trusted.
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if state.auth.is_none() {
            return Ok(Caller::Anyone);
        }
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::Unauthorized(crate::auth::AuthError::Missing))
    }
}

/// 403 unless the caller may read everyone's data: the read or the admin scope (always
/// true with authentication off).
pub fn require_reader(caller: &Caller) -> Result<(), ApiError> {
    if caller.reads_all() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "this needs a token with the `{}` or `{}` scope",
            crate::auth::READ_SCOPE,
            crate::auth::ADMIN_SCOPE
        )))
    }
}

/// 403 unless the caller holds the admin scope (always true with authentication off).
pub fn require_admin(caller: &Caller) -> Result<(), ApiError> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "this needs a token with the `{}` scope",
            crate::auth::ADMIN_SCOPE
        )))
    }
}
