//! The reference's load test, done properly: 1,000 concurrent creates, all accepted,
//! all distinct, all processed.

use std::collections::HashSet;
use std::time::Duration;

use futures::future::join_all;
use serde_json::json;

use crate::helpers::{Options, TestDb, eventually, on_every_backend, spawn_app_with};

on_every_backend!(a_thousand_concurrent_orders_are_all_accepted_and_completed,);

async fn a_thousand_concurrent_orders_are_all_accepted_and_completed(db: TestDb) {
    let _flood = crate::helpers::DISK_QUIET.write().await;
    let app = spawn_app_with(
        db,
        Options {
            processing_time_ms: 5,
            concurrency: 50,
            ..Options::default()
        },
    )
    .await;
    let requests = (0..1_000).map(|n| {
        let client = app.client.clone();
        let url = app.url("/orders");
        async move {
            let body = json!({"user_id": format!("load{n}"), "item_ids": [format!("item{n}")], "total_amount": 10.5});
            let response = client.post(url).json(&body).send().await.expect("request");
            let status = response.status();
            let body: serde_json::Value = response.json().await.expect("json");
            (status, body, n)
        }
    });
    let answers = join_all(requests).await;

    let mut ids = HashSet::new();
    for (status, body, n) in &answers {
        assert_eq!(*status, 201, "request {n}: {body}");
        assert_eq!(body["user_id"], format!("load{n}"));
        ids.insert(body["order_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1_000, "every order has its own id");

    eventually(
        Duration::from_secs(60),
        "all 1,000 orders completed",
        || async { app.metrics().await["order_counts"]["Completed"] == 1_000 },
    )
    .await;
    let metrics = app.metrics().await;
    assert_eq!(metrics["total_orders"], 1_000);
    for id in ids.iter().take(50) {
        let order = app.get_json(&format!("/orders/{id}")).await;
        assert_eq!(order["attempts"], 1, "processed once: {order}");
    }
}
