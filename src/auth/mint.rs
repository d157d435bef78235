//! Minting HS256 development tokens with the configured secret (the `token`
//! subcommand), with the issuer and audience the service will require.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use super::caller::Reach;
use super::settings::{AuthConfig, AuthConfigError, check_secret};

/// The claims `token` writes.
#[derive(Debug, Serialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
}

/// Mints an HS256 token for `user` with the configured secret (and issuer/audience).
pub fn mint(
    config: &AuthConfig,
    user: &str,
    reach: Reach,
    ttl: Duration,
) -> Result<String, AuthConfigError> {
    let secret = config
        .auth_jwt_secret
        .as_deref()
        .ok_or(AuthConfigError::NoSecret)?;
    check_secret(secret)?;
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or_default();
    let claims = Claims {
        sub: user.to_owned(),
        exp: now + ttl.as_secs(),
        nbf: Some(now),
        iat: Some(now),
        scope: reach.scope().map(str::to_owned),
        iss: config.auth_jwt_issuer.clone(),
        aud: config.auth_jwt_audience.clone(),
    };
    let key = EncodingKey::from_secret(secret.as_bytes());
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &key,
    )?)
}
