//! The webhooks page: an endpoint added (its secret shown once), switched off and on,
//! its secret rotated, and its failed deliveries recovered.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::json;

use super::{browser_available, run};
use crate::helpers::{Options, TestDb, spawn_app_with};
use crate::receiver::{Receiver, Reply};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_endpoints_are_added_switched_rotated_and_recovered_from_the_page() {
    if !browser_available() {
        return;
    }
    let options = Options {
        webhook_allow_private_networks: true,
        ..Options::default()
    };
    let options = Options {
        // The schedule's eight attempts in about 5 s.
        webhook_retry_scale: 0.00005,
        ..options
    };
    let app = spawn_app_with(TestDb::sqlite(), options).await;
    // Fails a delivery's eight attempts (one webhook-id throughout), takes the next.
    let seen: Mutex<HashMap<String, u32>> = Mutex::default();
    let receiver = Receiver::start(move |call| {
        let mut seen = seen.lock().unwrap();
        let calls = seen
            .entry(call.header("webhook-id").to_owned())
            .or_default();
        *calls += 1;
        Reply::status(if *calls <= 8 { 500 } else { 200 }, "")
    })
    .await;
    run(&app, "webhooks", &[("RECEIVER_URL", &receiver.url)]).await;
    let list = app.get_json("/webhooks").await;
    let endpoints = list["webhooks"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1);
    let endpoint = &endpoints[0];
    assert_eq!(endpoint["url"], receiver.url.as_str());
    assert_eq!(endpoint["description"], "the ERP");
    assert_eq!(endpoint["event_types"], json!(["order.completed"]));
    assert_eq!(endpoint["disabled"], false);
    assert!(
        endpoint["previous_secret_expires_at"].is_string(),
        "the secret was rotated"
    );
    // Only the completed event: eight failed attempts, then the recovered one.
    let calls = receiver.calls();
    assert_eq!(calls.len(), 9);
    assert!(calls.iter().all(|c| c.json()["type"] == "order.completed"));
    assert!(
        calls
            .iter()
            .all(|c| c.header("webhook-id") == calls[0].header("webhook-id"))
    );
    app.stop().await;
}
