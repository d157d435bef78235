//! Cancelling an order: from `Pending` and `Failed` only, for good, idempotently, by its
//! owner or an admin; a bad body is refused and changes nothing. A file per concern
//! (`statuses`: which orders can be cancelled and what follows; `requests`: bad bodies
//! and who may ask); the helpers they share are here.

mod requests;
mod statuses;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{Gate, Options, TestApp, TestDb, eventually, spawn_app_with};

async fn cancel(app: &TestApp, id: &str, body: Option<Value>) -> reqwest::Response {
    let mut request = app.client.post(app.url(&format!("/orders/{id}/cancel")));
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

/// The app with one worker held at a gate: the first order stays `Processing`, the
/// rest `Pending`, until the gate opens.
async fn gated_app(db: TestDb) -> (TestApp, Arc<Gate>) {
    let gate = Arc::new(Gate::default());
    let app = spawn_app_with(
        db,
        Options {
            concurrency: 1,
            processor: Some(gate.clone()),
            ..Options::default()
        },
    )
    .await;
    (app, gate)
}

/// Creates an order and waits until the held worker has it.
async fn held_order(app: &TestApp) -> String {
    let id = app.new_order().await;
    eventually(Duration::from_secs(5), "the order processing", || async {
        app.status_of(&id).await == "Processing"
    })
    .await;
    id
}
