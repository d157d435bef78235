//! Verifying a bearer JWT against the one configured key and algorithm, into a
//! `Caller`, and the client-safe reason when it is refused.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::caller::{Caller, Reach};
use super::settings::{AuthConfig, AuthConfigError, check_secret};

/// Why a token was refused; the text is safe to show the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("a bearer token is required")]
    Missing,
    #[error("the token is invalid: {0}")]
    Invalid(String),
}

/// The claims this service reads; `exp`, `nbf`, `iss` and `aud` are checked by the
/// validation from the raw token (so `aud` may be a string or a list).
#[derive(Debug, Deserialize)]
struct Identity {
    sub: String,
    #[serde(default)]
    scope: Option<String>,
}

/// Verifies bearer tokens against the one configured key and algorithm.
#[derive(Clone)]
pub struct Authenticator {
    key: DecodingKey,
    validation: Validation,
}

impl Authenticator {
    /// `None` when no key is configured (authentication off).
    pub fn from_config(config: &AuthConfig) -> Result<Option<Self>, AuthConfigError> {
        let (key, algorithm) = if let Some(secret) = &config.auth_jwt_secret {
            check_secret(secret)?;
            (
                DecodingKey::from_secret(secret.as_bytes()),
                Algorithm::HS256,
            )
        } else if let Some(path) = &config.auth_jwt_public_key {
            let pem = std::fs::read(path).map_err(|source| AuthConfigError::Unreadable {
                path: path.clone(),
                source,
            })?;
            if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
                (key, Algorithm::RS256)
            } else if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
                (key, Algorithm::ES256)
            } else {
                return Err(AuthConfigError::UnknownKey(path.clone()));
            }
        } else {
            return Ok(None);
        };
        // Exactly one algorithm: a token signed any other way (or with `none`) fails.
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 5;
        match &config.auth_jwt_issuer {
            Some(issuer) => validation.set_issuer(&[issuer]),
            None => validation.iss = None,
        }
        match &config.auth_jwt_audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        Ok(Some(Self { key, validation }))
    }

    /// Checks an `Authorization` header value and names the caller.
    pub fn verify(&self, authorization: Option<&str>) -> Result<Caller, AuthError> {
        let header = authorization.ok_or(AuthError::Missing)?;
        // The scheme name is case-insensitive (RFC 7235).
        let token = header
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token)
            .ok_or_else(|| AuthError::Invalid("expected `Authorization: Bearer <token>`".into()))?;
        let data = jsonwebtoken::decode::<Identity>(token.trim(), &self.key, &self.validation)
            .map_err(|err| AuthError::Invalid(describe(&err)))?;
        let claims = data.claims;
        Ok(Caller::User {
            id: claims.sub,
            reach: Reach::of_scope(claims.scope.as_deref()),
        })
    }
}

/// A short, client-safe reason for a refused token.
fn describe(err: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match err.kind() {
        ErrorKind::ExpiredSignature => "it has expired".into(),
        ErrorKind::ImmatureSignature => "it is not valid yet (nbf)".into(),
        ErrorKind::InvalidSignature => "its signature does not verify".into(),
        ErrorKind::InvalidAlgorithm => {
            "it is signed with an algorithm this service does not accept".into()
        }
        ErrorKind::InvalidIssuer => "its issuer is not accepted".into(),
        ErrorKind::InvalidAudience => "its audience is not accepted".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("it has no `{claim}` claim"),
        _ => "it is malformed".into(),
    }
}
