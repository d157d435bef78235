//! Identity: verifying bearer JWTs (HS256 with a shared secret, or RS256/ES256 with a
//! public key) into a `Caller`. Who calls is in `caller`, the settings in `settings`,
//! verifying in `verify`, minting development tokens in `mint`.

mod caller;
mod mint;
mod settings;
mod verify;

pub use caller::{ADMIN_SCOPE, Caller, READ_SCOPE, Reach};
pub use mint::mint;
pub use settings::{AuthConfig, AuthConfigError, MIN_SECRET_BYTES};
pub use verify::{AuthError, Authenticator};

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
