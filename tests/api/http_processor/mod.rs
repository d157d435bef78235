//! The HTTP processor against a real receiver: what each answer does to the order,
//! the signed headers of every call (checked with the `standardwebhooks` library, not
//! the service's own code), deadlines and refused connections. A file per concern
//! (`answers`, `no_answer`, `example`); the helpers they share (and `leases` uses) are
//! here.

mod answers;
mod example;
mod no_answer;

use serde_json::{Value, json};

use crate::helpers::{Options, TestApp};
use crate::receiver::{Call, Receiver};

/// 32 bytes, as `whsec_` base64.
pub const SECRET: &str = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

pub fn options(receiver: &Receiver) -> Options {
    Options {
        processor_url: Some(receiver.url.clone()),
        processor_secret: Some(SECRET.into()),
        retry_base_ms: 50,
        retry_max_ms: 1_000,
        poll_ms: 100,
        ..Options::default()
    }
}

pub fn attempt(call: &Call) -> u64 {
    call.json()["attempt"].as_u64().expect("attempt")
}

pub fn user(call: &Call) -> String {
    call.json()["user_id"].as_str().expect("user_id").to_owned()
}

pub async fn order_for(app: &TestApp, user: &str) -> String {
    let body = json!({"user_id": user, "item_ids": ["sku-1", "sku-2"], "total_amount": 10.25});
    app.create_order(&body).await["order_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub async fn events_of(app: &TestApp, id: &str) -> Vec<Value> {
    let history = app.get_json(&format!("/orders/{id}/events")).await;
    history["events"].as_array().unwrap().clone()
}
