//! Tokens signed with a private key: RS256 and ES256 verified with the public key, and
//! the issuer and audience required when set.

use jsonwebtoken::{Algorithm, EncodingKey};
use order_processor::auth::AuthConfig;
use reqwest::Method;
use serde_json::json;

use crate::auth::{call, now, sign};
use crate::helpers::{Options, TestDb, on_every_backend, spawn_app_with};

on_every_backend!(public_keys_verify_rs256_and_es256_tokens,);

async fn public_keys_verify_rs256_and_es256_tokens(db: TestDb) {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let rs_private =
        EncodingKey::from_rsa_pem(&std::fs::read(fixtures.join("rs256-private.pem")).unwrap())
            .unwrap();
    let es_private =
        EncodingKey::from_ec_pem(&std::fs::read(fixtures.join("es256-private-pkcs8.pem")).unwrap())
            .unwrap();
    let claims =
        json!({"sub": "dora", "exp": now() + 600, "iss": "https://id.example", "aud": "orders"});
    let app = spawn_app_with(
        db,
        Options {
            auth: AuthConfig {
                auth_jwt_public_key: Some(fixtures.join("es256-public.pem")),
                auth_jwt_issuer: Some("https://id.example".into()),
                auth_jwt_audience: Some("orders".into()),
                ..AuthConfig::default()
            },
            ..Options::default()
        },
    )
    .await;
    let es = sign(claims.clone(), Algorithm::ES256, &es_private);
    assert_eq!(
        call(&app, Method::GET, "/orders", Some(&es), None)
            .await
            .status(),
        200
    );
    let rs = sign(claims.clone(), Algorithm::RS256, &rs_private);
    assert_eq!(
        call(&app, Method::GET, "/orders", Some(&rs), None)
            .await
            .status(),
        401,
        "an RS256 token against an EC key"
    );
    let mut wrong_issuer = claims.clone();
    wrong_issuer["iss"] = json!("https://elsewhere");
    let token = sign(wrong_issuer, Algorithm::ES256, &es_private);
    assert_eq!(
        call(&app, Method::GET, "/orders", Some(&token), None)
            .await
            .status(),
        401
    );
    let mut wrong_audience = claims.clone();
    wrong_audience["aud"] = json!("billing");
    let token = sign(wrong_audience, Algorithm::ES256, &es_private);
    assert_eq!(
        call(&app, Method::GET, "/orders", Some(&token), None)
            .await
            .status(),
        401
    );
    // An HS256 token made with the public key as its secret: the classic confusion.
    let public_pem = std::fs::read(fixtures.join("es256-public.pem")).unwrap();
    let confused = sign(
        claims.clone(),
        Algorithm::HS256,
        &EncodingKey::from_secret(&public_pem),
    );
    assert_eq!(
        call(&app, Method::GET, "/orders", Some(&confused), None)
            .await
            .status(),
        401
    );
    drop(app);

    // The same with an RSA key.
    let db = TestDb::sqlite();
    let app = spawn_app_with(
        db,
        Options {
            auth: AuthConfig {
                auth_jwt_public_key: Some(fixtures.join("rs256-public.pem")),
                ..AuthConfig::default()
            },
            ..Options::default()
        },
    )
    .await;
    assert_eq!(
        call(&app, Method::GET, "/orders", Some(&rs), None)
            .await
            .status(),
        200
    );
}
