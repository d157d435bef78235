//! Bearer JWT authentication: which tokens are accepted, the `token` subcommand, and
//! the start-up warning when authentication is off (public keys: `auth_keys.rs`). (Who may see what, once
//! authenticated, is in `access/`.)

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use order_processor::auth::AuthConfig;
use reqwest::Method;
use serde_json::{Value, json};

use crate::binary::{Server, run};
use crate::helpers::{Options, TestApp, TestDb, on_every_backend, order_body, spawn_app_with};

on_every_backend!(
    tokens_are_checked_and_refusals_are_401_with_a_challenge,
    the_token_subcommand_mints_tokens_the_service_accepts,
);

pub const SECRET: &str = "test-secret-do-not-use-anywhere-else";

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A token with `claims`, signed by `key` with `algorithm`.
pub fn sign(claims: Value, algorithm: Algorithm, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&Header::new(algorithm), &claims, key).unwrap()
}

fn hs256(claims: Value) -> String {
    sign(
        claims,
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
}

/// A valid HS256 token for `user`, with the admin scope if `admin`.
pub fn user_token(user: &str, admin: bool) -> String {
    let mut claims = json!({"sub": user, "exp": now() + 600});
    if admin {
        claims["scope"] = json!("orders:read orders:admin");
    }
    hs256(claims)
}

/// A valid HS256 token for `user` with the read scope only (`orders:read`).
pub fn reader_token(user: &str) -> String {
    hs256(json!({"sub": user, "exp": now() + 600, "scope": "orders:read"}))
}

/// The app with authentication on (HS256 with `SECRET`).
pub async fn secured_app(db: TestDb) -> TestApp {
    spawn_app_with(
        db,
        Options {
            auth: AuthConfig {
                auth_jwt_secret: Some(SECRET.into()),
                ..AuthConfig::default()
            },
            ..Options::default()
        },
    )
    .await
}

/// `method path`, with `token` as the bearer if given and `body` as JSON if given.
pub async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app.client.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn tokens_are_checked_and_refusals_are_401_with_a_challenge(db: TestDb) {
    let app = secured_app(db).await;
    let good = user_token("alice", false);
    let response = call(
        &app,
        Method::POST,
        "/orders",
        Some(&good),
        Some(order_body()),
    )
    .await;
    assert_eq!(response.status(), 403, "user1 in the body is not alice");
    let body = json!({"item_ids": ["a"], "total_amount": 1});
    let response = call(
        &app,
        Method::POST,
        "/orders",
        Some(&good),
        Some(body.clone()),
    )
    .await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.json::<Value>().await.unwrap()["user_id"], "alice");

    let none_header = r#"{"alg":"none","typ":"JWT"}"#;
    let payload = json!({"sub": "alice", "exp": now() + 600}).to_string();
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(none_header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let other_key = EncodingKey::from_secret(b"another-secret");
    let refused = [
        (
            "expired",
            hs256(json!({"sub": "alice", "exp": now() - 3600})),
        ),
        (
            "not yet valid",
            hs256(json!({"sub": "alice", "exp": now() + 7200, "nbf": now() + 3600})),
        ),
        (
            "wrong signature",
            sign(
                json!({"sub": "alice", "exp": now() + 600}),
                Algorithm::HS256,
                &other_key,
            ),
        ),
        (
            "wrong algorithm",
            sign(
                json!({"sub": "alice", "exp": now() + 600}),
                Algorithm::HS512,
                &EncodingKey::from_secret(SECRET.as_bytes()),
            ),
        ),
        ("alg none", unsigned),
        ("no exp", hs256(json!({"sub": "alice"}))),
        ("no sub", hs256(json!({"exp": now() + 600}))),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (what, token) in refused {
        let response = call(&app, Method::GET, "/orders", Some(&token), None).await;
        assert_eq!(response.status(), 401, "{what}");
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.starts_with("Bearer realm=\"order-processor\""),
            "{what}: {challenge}"
        );
        assert!(challenge.contains("invalid_token"), "{what}: {challenge}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["status"], 401, "{what}");
    }
    let response = call(&app, Method::GET, "/orders", None, None).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"order-processor\""
    );
    let response = app
        .client
        .get(app.url("/orders"))
        .header("authorization", "Basic YTpi")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // Probes stay open.
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 200);
}

/// The claims of a token, read without verifying it: what the minter wrote.
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON")
}

async fn the_token_subcommand_mints_tokens_the_service_accepts(db: TestDb) {
    let app = secured_app(db).await;
    let before = now();
    let output = run(
        &["token", "--user", "carol", "--ttl", "10m"],
        &[("AUTH_JWT_SECRET", SECRET)],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let claims = claims_of(&token);
    assert_eq!(claims["sub"], "carol");
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 600, "--ttl 10m is exp - iat: {claims}");
    assert!((before..=now()).contains(&iat), "issued now: {claims}");
    assert!(claims.get("scope").is_none(), "not an admin: {claims}");
    let response = call(
        &app,
        Method::POST,
        "/orders",
        Some(&token),
        Some(json!({"item_ids": ["c"], "total_amount": 3})),
    )
    .await;
    assert_eq!(response.status(), 201);
    assert_eq!(
        call(&app, Method::GET, "/metrics", Some(&token), None)
            .await
            .status(),
        403
    );

    let output = run(
        &["token", "--user", "ops", "--admin"],
        &[("AUTH_JWT_SECRET", SECRET)],
    );
    let admin = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let claims = claims_of(&admin);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600,
        "the default TTL is an hour: {claims}"
    );
    assert_eq!(claims["scope"], "orders:admin");
    assert_eq!(
        call(&app, Method::GET, "/metrics", Some(&admin), None)
            .await
            .status(),
        200
    );

    let output = run(
        &["token", "--user", "oncall", "--read"],
        &[("AUTH_JWT_SECRET", SECRET)],
    );
    let reader = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert_eq!(claims_of(&reader)["scope"], "orders:read");
    assert_eq!(
        call(&app, Method::GET, "/metrics", Some(&reader), None)
            .await
            .status(),
        200
    );
    let both = run(
        &["token", "--user", "x", "--read", "--admin"],
        &[("AUTH_JWT_SECRET", SECRET)],
    );
    assert!(!both.status.success(), "one scope or the other");

    let output = run(&["token", "--user", "ops"], &[]);
    assert!(!output.status.success(), "no secret, no token");
    assert!(String::from_utf8_lossy(&output.stderr).contains("AUTH_JWT_SECRET"));
}

/// The start-up warning that the API is open, if the server logged it.
fn open_api_warning(server: &Server) -> Option<String> {
    server.logs().into_iter().find_map(|line| {
        let message = line["message"].as_str()?;
        (line["level"] == "WARN" && message.starts_with("authentication is OFF"))
            .then(|| message.to_owned())
    })
}

#[tokio::test]
async fn the_service_warns_at_start_up_when_authentication_is_off_and_only_then() {
    let (open_db, secured_db) = (TestDb::sqlite(), TestDb::sqlite());
    // The warning is logged before `listening`, so once the server listens it is there.
    let open = Server::start(&open_db.url, &[]);
    let warning =
        open_api_warning(&open).unwrap_or_else(|| panic!("no warning in {:#?}", open.logs()));
    assert!(
        warning.contains("AUTH_JWT_SECRET") && warning.contains("AUTH_JWT_PUBLIC_KEY"),
        "it says how to turn authentication on: {warning}"
    );
    let secured = Server::start(&secured_db.url, &[("AUTH_JWT_SECRET", SECRET)]);
    assert_eq!(
        open_api_warning(&secured),
        None,
        "no warning with a key configured"
    );
}
