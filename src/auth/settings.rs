//! How authentication is set up: the `AUTH_JWT_*` settings, the shortest secret
//! accepted, and why a setup is refused.

use std::path::PathBuf;

use clap::Args;

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

/// Refuses an HS256 secret shorter than [`MIN_SECRET_BYTES`].
pub(super) fn check_secret(secret: &str) -> Result<(), AuthConfigError> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(AuthConfigError::ShortSecret(secret.len()));
    }
    Ok(())
}
