//! The page with authentication on: it asks for a token and offers actions to admins
//! only; a user sees their own orders read-only, a reader (`orders:read`) every order
//! read-only.

use order_processor::auth::AuthConfig;
use serde_json::json;

use super::{browser_available, run};
use crate::auth::{SECRET, reader_token, user_token};
use crate::helpers::{Options, TestDb, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_authentication_the_page_asks_for_a_token_and_offers_actions_to_admins_only() {
    if !browser_available() {
        return;
    }
    let options = Options {
        auth: AuthConfig {
            auth_jwt_secret: Some(SECRET.into()),
            ..AuthConfig::default()
        },
        ..Options::default()
    };
    let app = spawn_app_with(TestDb::sqlite(), options).await;
    let admin = user_token("ops", true);
    let alice = user_token("alice", false);
    let mut id = String::new();
    for user in ["alice", "bob"] {
        let answer = app
            .client
            .post(app.url("/orders"))
            .bearer_auth(user_token(user, false))
            .json(&json!({"user_id": user, "item_ids": ["sku-1"], "total_amount": 5}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 201);
        if user == "alice" {
            id = answer.json::<serde_json::Value>().await.unwrap()["order_id"]
                .as_str()
                .unwrap()
                .to_owned();
        }
    }
    run(
        &app,
        "auth",
        &[
            ("ADMIN_TOKEN", &admin),
            ("USER_TOKEN", &alice),
            ("READER_TOKEN", &reader_token("ops")),
            ("ORDER_ID", &id),
        ],
    )
    .await;
    app.stop().await;
}
