//! Identity: verifying bearer JWTs (HS256 with a shared secret, or RS256/ES256 with a
//! public key) into a `Caller`; minting development tokens is in `mint`.

mod mint;

use std::path::PathBuf;

use clap::Args;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

pub use mint::mint;

/// The scope that lets a token read and change everything: every order, the event
/// feed, metrics, dead letters, webhook endpoints.
pub const ADMIN_SCOPE: &str = "orders:admin";

/// The scope that lets a token read everything an admin reads, and change nothing
/// but its own orders: an on-call operator's, or the dashboard's read-only view.
pub const READ_SCOPE: &str = "orders:read";

/// How far a token reaches beyond its own orders, from its `scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reach {
    /// Its own orders only.
    Own,
    /// Reads everything (`orders:read`); changes only its own orders.
    ReadAll,
    /// Reads and changes everything (`orders:admin`).
    Admin,
}

impl Reach {
    /// The reach a token's space-separated `scope` claim grants.
    pub fn of_scope(scope: Option<&str>) -> Self {
        let scopes: Vec<&str> = scope.unwrap_or_default().split_whitespace().collect();
        if scopes.contains(&ADMIN_SCOPE) {
            Self::Admin
        } else if scopes.contains(&READ_SCOPE) {
            Self::ReadAll
        } else {
            Self::Own
        }
    }

    /// The `scope` claim that grants it.
    pub fn scope(self) -> Option<&'static str> {
        match self {
            Self::Own => None,
            Self::ReadAll => Some(READ_SCOPE),
            Self::Admin => Some(ADMIN_SCOPE),
        }
    }
}

/// How callers prove who they are. Authentication is on when a key is configured.
#[derive(Clone, Default, Args)]
pub struct AuthConfig {
    /// HMAC secret for HS256 bearer tokens; setting it turns authentication on.
    #[arg(
        long,
        env = "AUTH_JWT_SECRET",
        hide_env_values = true,
        conflicts_with = "auth_jwt_public_key"
    )]
    pub auth_jwt_secret: Option<String>,

    /// PEM public key file (RSA for RS256, EC P-256 for ES256); setting it turns
    /// authentication on.
    #[arg(long, env = "AUTH_JWT_PUBLIC_KEY")]
    pub auth_jwt_public_key: Option<PathBuf>,

    /// Required `iss` claim, when set.
    #[arg(long, env = "AUTH_JWT_ISSUER")]
    pub auth_jwt_issuer: Option<String>,

    /// Required `aud` claim, when set.
    #[arg(long, env = "AUTH_JWT_AUDIENCE")]
    pub auth_jwt_audience: Option<String>,
}

/// Never prints the secret, wherever a configuration is logged.
impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field(
                "auth_jwt_secret",
                &self.auth_jwt_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("auth_jwt_public_key", &self.auth_jwt_public_key)
            .field("auth_jwt_issuer", &self.auth_jwt_issuer)
            .field("auth_jwt_audience", &self.auth_jwt_audience)
            .finish()
    }
}

/// Shortest HMAC secret accepted: 256 bits, as RFC 7518 asks of HS256 keys.
pub const MIN_SECRET_BYTES: usize = 32;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Authentication is off: the embedded quick start, open to anyone who can reach it.
    Anyone,
    /// A verified token's subject, and how far its scope reaches.
    User { id: String, reach: Reach },
}

impl Caller {
    /// Whether the caller may act on everyone's orders.
    pub fn is_admin(&self) -> bool {
        match self {
            Self::Anyone => true,
            Self::User { reach, .. } => *reach == Reach::Admin,
        }
    }

    /// Whether the caller may read everyone's orders, the feed, metrics and endpoints.
    pub fn reads_all(&self) -> bool {
        match self {
            Self::Anyone => true,
            Self::User { reach, .. } => *reach >= Reach::ReadAll,
        }
    }

    /// The user the caller is bound to, if any: admins are bound too, for creating.
    pub fn subject(&self) -> Option<&str> {
        match self {
            Self::Anyone => None,
            Self::User { id, .. } => Some(id),
        }
    }

    /// Whether the caller may see an order of `owner`.
    pub fn may_see(&self, owner: &str) -> bool {
        self.reads_all() || self.subject() == Some(owner)
    }

    /// Whether the caller may change an order of `owner` (cancel it).
    pub fn may_change(&self, owner: &str) -> bool {
        self.is_admin() || self.subject() == Some(owner)
    }
}

/// Why a token was refused; the text is safe to show the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("a bearer token is required")]
    Missing,
    #[error("the token is invalid: {0}")]
    Invalid(String),
}

/// Why authentication could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("AUTH_JWT_PUBLIC_KEY {path:?} cannot be read: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("AUTH_JWT_PUBLIC_KEY {0:?} holds neither an RSA nor an EC P-256 public key in PEM")]
    UnknownKey(PathBuf),
    #[error("`token` needs AUTH_JWT_SECRET: it signs with the shared secret")]
    NoSecret,
    #[error("AUTH_JWT_SECRET must be at least 32 bytes (256 bits); it is {0}")]
    ShortSecret(usize),
    #[error("the token could not be signed: {0}")]
    Signing(#[from] jsonwebtoken::errors::Error),
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

/// Refuses an HS256 secret shorter than [`MIN_SECRET_BYTES`].
fn check_secret(secret: &str) -> Result<(), AuthConfigError> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(AuthConfigError::ShortSecret(secret.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn with_secret(secret: &str) -> AuthConfig {
        AuthConfig {
            auth_jwt_secret: Some(secret.into()),
            ..AuthConfig::default()
        }
    }

    #[test]
    fn minted_tokens_verify_and_carry_the_admin_scope() {
        let config = with_secret("s3cret-s3cret-s3cret-s3cret-s3cret");
        let auth = Authenticator::from_config(&config).unwrap().unwrap();
        let token = mint(&config, "alice", Reach::Admin, Duration::from_secs(60)).unwrap();
        let caller = auth.verify(Some(&format!("Bearer {token}"))).unwrap();
        assert_eq!(
            caller,
            Caller::User {
                id: "alice".into(),
                reach: Reach::Admin
            }
        );
        let token = mint(&config, "carol", Reach::ReadAll, Duration::from_secs(60)).unwrap();
        let reader = auth.verify(Some(&format!("Bearer {token}"))).unwrap();
        assert!(reader.reads_all() && !reader.is_admin());
        assert!(reader.may_see("someone") && !reader.may_change("someone"));
        assert!(reader.may_change("carol"));
        let token = mint(&config, "bob", Reach::Own, Duration::from_secs(60)).unwrap();
        assert!(
            !auth
                .verify(Some(&format!("Bearer {token}")))
                .unwrap()
                .is_admin()
        );
    }

    #[test]
    fn short_secrets_are_refused_and_schemes_are_case_insensitive() {
        assert!(matches!(
            Authenticator::from_config(&with_secret("")),
            Err(AuthConfigError::ShortSecret(0))
        ));
        let config = with_secret(&"k".repeat(32));
        let auth = Authenticator::from_config(&config).unwrap().unwrap();
        let token = mint(&config, "eve", Reach::Own, Duration::from_secs(60)).unwrap();
        assert!(auth.verify(Some(&format!("BEARER {token}"))).is_ok());
        assert!(
            !format!("{config:?}").contains("kkkk"),
            "the secret is redacted"
        );
    }

    #[test]
    fn the_widest_scope_named_decides_the_reach() {
        assert_eq!(Reach::of_scope(None), Reach::Own);
        assert_eq!(Reach::of_scope(Some("profile orders:read")), Reach::ReadAll);
        assert_eq!(
            Reach::of_scope(Some("orders:read orders:admin")),
            Reach::Admin
        );
        assert_eq!(Reach::of_scope(Some("orders:readx")), Reach::Own);
        for reach in [Reach::Own, Reach::ReadAll, Reach::Admin] {
            assert_eq!(Reach::of_scope(reach.scope()), reach);
        }
    }

    #[test]
    fn no_key_means_authentication_is_off() {
        assert!(
            Authenticator::from_config(&AuthConfig::default())
                .unwrap()
                .is_none()
        );
        assert!(Caller::Anyone.is_admin() && Caller::Anyone.reads_all());
    }

    #[test]
    fn a_missing_or_foreign_header_is_refused() {
        let auth = Authenticator::from_config(&with_secret(&"x".repeat(32)))
            .unwrap()
            .unwrap();
        assert_eq!(auth.verify(None), Err(AuthError::Missing));
        assert!(matches!(
            auth.verify(Some("Basic YTpi")),
            Err(AuthError::Invalid(_))
        ));
    }
}
