//! Bearer JWT authentication and per-user isolation.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use order_processor::auth::AuthConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::binary::run;
use crate::helpers::{Options, TestApp, TestDb, on_every_backend, order_body, spawn_app_with};

on_every_backend!(
    tokens_are_checked_and_refusals_are_401_with_a_challenge,
    users_see_only_their_own_orders_and_admins_see_all,
    the_token_subcommand_mints_tokens_the_service_accepts,
    public_keys_verify_rs256_and_es256_tokens,
    idempotency_keys_belong_to_their_user,
);

const SECRET: &str = "test-secret-do-not-use-anywhere-else";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A token with `claims`, signed by `key` with `algorithm`.
fn sign(claims: Value, algorithm: Algorithm, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&Header::new(algorithm), &claims, key).unwrap()
}

fn hs256(claims: Value) -> String {
    sign(
        claims,
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
}

fn user_token(user: &str, admin: bool) -> String {
    let mut claims = json!({"sub": user, "exp": now() + 600});
    if admin {
        claims["scope"] = json!("orders:read orders:admin");
    }
    hs256(claims)
}

async fn secured_app(db: TestDb) -> TestApp {
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

async fn call(
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
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let unsigned = format!("{}.{}.", b64.encode(none_header), b64.encode(payload));
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

async fn users_see_only_their_own_orders_and_admins_see_all(db: TestDb) {
    let app = secured_app(db).await;
    let (alice, bob, admin) = (
        user_token("alice", false),
        user_token("bob", false),
        user_token("root", true),
    );
    let body = json!({"user_id": "alice", "item_ids": ["a"], "total_amount": 1});
    let created = call(&app, Method::POST, "/orders", Some(&alice), Some(body)).await;
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["order_id"]
        .as_str()
        .unwrap()
        .to_owned();
    call(
        &app,
        Method::POST,
        "/orders",
        Some(&bob),
        Some(json!({"item_ids": ["b"], "total_amount": 2})),
    )
    .await;

    for path in [format!("/orders/{id}"), format!("/orders/{id}/status")] {
        assert_eq!(
            call(&app, Method::GET, &path, Some(&alice), None)
                .await
                .status(),
            200,
            "{path}"
        );
        assert_eq!(
            call(&app, Method::GET, &path, Some(&bob), None)
                .await
                .status(),
            404,
            "{path}"
        );
        assert_eq!(
            call(&app, Method::GET, &path, Some(&admin), None)
                .await
                .status(),
            200,
            "{path}"
        );
    }
    let listed = |token: String, query: &'static str| {
        let app = &app;
        async move {
            let response = call(
                app,
                Method::GET,
                &format!("/orders{query}"),
                Some(&token),
                None,
            )
            .await;
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let (status, page) = listed(bob.clone(), "").await;
    assert_eq!(status, 200);
    let owners: Vec<&str> = page["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(owners, ["bob"]);
    assert_eq!(
        listed(bob.clone(), "?user_id=alice").await.0,
        StatusCode::FORBIDDEN
    );
    let (status, page) = listed(admin.clone(), "").await;
    assert_eq!(status, 200);
    assert_eq!(page["orders"].as_array().unwrap().len(), 2);
    let (_, page) = listed(admin.clone(), "?user_id=alice").await;
    assert_eq!(page["orders"].as_array().unwrap().len(), 1);

    for path in ["/metrics", "/metrics/prometheus"] {
        assert_eq!(
            call(&app, Method::GET, path, Some(&bob), None)
                .await
                .status(),
            403,
            "{path}"
        );
        assert_eq!(
            call(&app, Method::GET, path, Some(&admin), None)
                .await
                .status(),
            200,
            "{path}"
        );
    }
    let retry = format!("/orders/{id}/retry");
    let response = call(&app, Method::POST, &retry, Some(&alice), None).await;
    assert_eq!(
        response.status(),
        403,
        "retrying dead letters is for admins"
    );
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let response = call(&app, Method::POST, &retry, Some(&admin), None).await;
    assert_eq!(
        response.status(),
        StatusCode::CONFLICT,
        "the order is not Failed"
    );
}

async fn the_token_subcommand_mints_tokens_the_service_accepts(db: TestDb) {
    let app = secured_app(db).await;
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
    assert_eq!(
        call(&app, Method::GET, "/metrics", Some(&admin), None)
            .await
            .status(),
        200
    );

    let output = run(&["token", "--user", "ops"], &[]);
    assert!(!output.status.success(), "no secret, no token");
    assert!(String::from_utf8_lossy(&output.stderr).contains("AUTH_JWT_SECRET"));
}

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

async fn idempotency_keys_belong_to_their_user(db: TestDb) {
    let app = secured_app(db).await;
    let body = json!({"item_ids": ["a"], "total_amount": 1});
    let mut ids = Vec::new();
    for user in ["alice", "bob", "alice"] {
        let response = app
            .client
            .post(app.url("/orders"))
            .bearer_auth(user_token(user, false))
            .header("idempotency-key", "shared-key")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let order: Value = response.json().await.unwrap();
        assert_eq!(order["user_id"], user, "bob never gets alice's answer");
        ids.push(order["order_id"].as_str().unwrap().to_owned());
    }
    assert_ne!(
        ids[0], ids[1],
        "the same key from two users makes two orders"
    );
    assert_eq!(ids[0], ids[2], "alice's retry is a replay");
}
