//! Graceful stop on SIGTERM: exit 0, finish what fits in the grace period, hand the
//! rest back to the queue.

use std::time::Duration;

use serde_json::{Value, json};

use crate::binary::Server;
use crate::helpers::{TestDb, eventually, on_every_backend};

on_every_backend!(
    sigterm_returns_unfinished_orders_to_the_queue_and_exits_zero,
    sigterm_lets_in_flight_processing_finish_within_the_grace_period,
);

async fn create(client: &reqwest::Client, server: &Server) -> String {
    let body = json!({"user_id": "u", "item_ids": ["a"], "total_amount": 1});
    let response = client
        .post(format!("{}/orders", server.address))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["order_id"].as_str().unwrap().to_owned()
}

async fn wait_processing(client: &reqwest::Client, server: &Server, id: &str) {
    let url = format!("{}/orders/{id}/status", server.address);
    eventually(Duration::from_secs(5), "the order processing", || async {
        let body: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
        body["status"] == "Processing"
    })
    .await;
}

async fn sigterm_returns_unfinished_orders_to_the_queue_and_exits_zero(db: TestDb) {
    let server = Server::start(
        &db.url,
        &[
            ("PROCESSING_TIME_MS", "20000"),
            ("SHUTDOWN_GRACE_MS", "200"),
        ],
    );
    let client = reqwest::Client::new();
    let id = create(&client, &server).await;
    wait_processing(&client, &server, &id).await;

    let (status, logs) = server.terminate(Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}");
    assert!(
        logs.iter()
            .any(|l| l["message"] == "returned unfinished order to the queue")
    );

    let order = db
        .store()
        .await
        .get(id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        order.status.as_str(),
        "Pending",
        "handed back, not left Processing"
    );
    assert_eq!(order.attempts, 1);
}

async fn sigterm_lets_in_flight_processing_finish_within_the_grace_period(db: TestDb) {
    let server = Server::start(
        &db.url,
        &[
            ("PROCESSING_TIME_MS", "500"),
            ("SHUTDOWN_GRACE_MS", "10000"),
        ],
    );
    let client = reqwest::Client::new();
    let id = create(&client, &server).await;
    wait_processing(&client, &server, &id).await;

    let (status, _) = server.terminate(Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}");
    let order = db
        .store()
        .await
        .get(id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(order.status.as_str(), "Completed");
}
