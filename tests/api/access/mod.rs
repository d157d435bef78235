//! Who may see and do what with authentication on: each user only their own orders
//! (someone else's answers exactly like a missing one), readers (`orders:read`)
//! everything but change only their own, admins everything, including retrying dead
//! letters; idempotency keys belong to their user. A file per concern (`isolation`,
//! `roles`); the helper they share is here.

mod isolation;
mod roles;

use reqwest::Method;
use serde_json::{Value, json};

use crate::auth::call;
use crate::helpers::TestApp;

/// Creates an order as `token`'s user; returns its id.
async fn create_as(app: &TestApp, token: &str) -> String {
    let body = json!({"item_ids": ["a"], "total_amount": 1});
    let response = call(app, Method::POST, "/orders", Some(token), Some(body)).await;
    assert_eq!(response.status(), 201);
    response.json::<Value>().await.unwrap()["order_id"]
        .as_str()
        .unwrap()
        .to_owned()
}
