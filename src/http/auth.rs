//! The authentication middleware: every API route learns who is calling, or the
//! request ends here with 401.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::state::AppState;
use crate::auth::Caller;

/// Puts the `Caller` in the request's extensions: `Anyone` when authentication is
/// off, the token's user when it is on and the token verifies.
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
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
    request.extensions_mut().insert(caller);
    next.run(request).await
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
