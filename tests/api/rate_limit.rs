//! Rate limiting: the burst passes, the next request gets 429 with `Retry-After`, the
//! bucket refills, and callers do not share buckets.

use std::time::Duration;

use order_processor::auth::AuthConfig;
use serde_json::Value;

use crate::helpers::{Options, TestDb, on_every_backend, spawn_app_with};

on_every_backend!(
    the_burst_passes_then_429_with_retry_after_then_recovery,
    each_user_has_a_bucket_of_their_own,
);

async fn the_burst_passes_then_429_with_retry_after_then_recovery(db: TestDb) {
    let app = spawn_app_with(
        db,
        Options {
            rate_limit: Some((2, 4)),
            ..Options::default()
        },
    )
    .await;
    for n in 0..4 {
        assert_eq!(
            app.get("/orders").await.status(),
            200,
            "request {n} of the burst"
        );
    }
    let refused = app.get("/orders").await;
    assert_eq!(refused.status(), 429);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        retry_after, 1,
        "half a second to the next token, rounded up"
    );
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["type"], "/problems/rate-limited");
    // Probes are never limited.
    assert_eq!(app.get("/healthz").await.status(), 200);

    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(
        app.get("/orders").await.status(),
        200,
        "recovered after Retry-After"
    );
}

async fn each_user_has_a_bucket_of_their_own(db: TestDb) {
    let secret = "rate-limit-test-secret-32-bytes-x";
    let app = spawn_app_with(
        db,
        Options {
            rate_limit: Some((1, 2)),
            auth: AuthConfig {
                auth_jwt_secret: Some(secret.into()),
                ..AuthConfig::default()
            },
            ..Options::default()
        },
    )
    .await;
    let config = AuthConfig {
        auth_jwt_secret: Some(secret.into()),
        ..AuthConfig::default()
    };
    let token = |user: &str| {
        order_processor::auth::mint(
            &config,
            user,
            order_processor::auth::Reach::Own,
            Duration::from_secs(600),
        )
        .unwrap()
    };
    let (alice, bob) = (token("alice"), token("bob"));
    let get = |token: String| {
        let app = &app;
        async move {
            app.client
                .get(app.url("/orders"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(get(alice.clone()).await, 200);
    assert_eq!(get(alice.clone()).await, 200);
    assert_eq!(get(alice.clone()).await, 429);
    assert_eq!(get(bob.clone()).await, 200, "bob's bucket is full");
    assert_eq!(get(bob).await, 200);
}
