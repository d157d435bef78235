//! Crash: SIGKILL the real binary mid-drain, start it again, and every acknowledged
//! order ends `Completed` exactly once.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use order_processor::domain::OrderStatus;
use order_processor::store::ListQuery;
use serde_json::{Value, json};

use crate::binary::Server;
use crate::helpers::{TestDb, eventually, on_every_backend};

on_every_backend!(a_killed_server_loses_nothing_and_completes_nothing_twice);

const ORDERS: usize = 60;

fn completions(logs: &[Value]) -> Vec<String> {
    logs.iter()
        .filter(|line| line["message"] == "order completed")
        .map(|line| line["order_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn a_killed_server_loses_nothing_and_completes_nothing_twice(db: TestDb) {
    let settings = [
        ("PROCESSING_TIME_MS", "200"),
        ("WORKER_CONCURRENCY", "4"),
        ("PROCESSING_TIMEOUT_MS", "1000"),
        ("LEASE_TIMEOUT_MS", "1500"),
        ("POLL_INTERVAL_MS", "100"),
    ];
    let server = Server::start(&db.url, &settings);
    let mut ids = Vec::new();
    for n in 0..ORDERS {
        let body = json!({"user_id": format!("crash{n}"), "item_ids": ["a"], "total_amount": 5});
        ids.push(server.create_order(&body).await);
    }
    // Kill it mid-drain: some orders done, some being processed, most waiting.
    eventually(Duration::from_secs(10), "a few completions", || async {
        server.completed().await >= 8
    })
    .await;
    let first_logs = server.kill();

    let store = db.store().await;
    let in_flight: HashSet<String> = store
        .list(&ListQuery {
            status: Some(OrderStatus::Processing),
            limit: ORDERS,
            ..ListQuery::default()
        })
        .await
        .unwrap()
        .iter()
        .map(|order| order.id.to_string())
        .collect();
    let counts = store.metrics().await.unwrap().counts;
    assert_eq!(
        counts.total(),
        ORDERS as u64,
        "every acknowledged order is on disk"
    );
    assert!(
        counts.get(OrderStatus::Processing) > 0,
        "killed while orders were in flight: {counts:?}"
    );
    assert!(
        counts.get(OrderStatus::Pending) > 0,
        "killed mid-drain: {counts:?}"
    );

    let server = Server::start(&db.url, &settings);
    eventually(Duration::from_secs(30), "all orders completed", || async {
        server.completed().await == ORDERS as u64
    })
    .await;
    let second_logs = server.logs();

    let mut completed: HashMap<String, usize> = HashMap::new();
    for id in completions(&first_logs)
        .into_iter()
        .chain(completions(&second_logs))
    {
        *completed.entry(id).or_default() += 1;
    }
    for id in &ids {
        let order = store
            .get(id.parse().unwrap())
            .await
            .unwrap()
            .expect("the order exists");
        assert_eq!(order.status.as_str(), "Completed", "{id}");
        assert!(order.completed_at.is_some());
        assert!(
            completed.get(id).copied().unwrap_or(0) <= 1,
            "{id} completed {} times",
            completed[id]
        );
        // Only the orders a worker held when the process died were started twice.
        let expected_attempts = if in_flight.contains(id) { 2 } else { 1 };
        assert_eq!(order.attempts, expected_attempts, "{id}");
        let once = ["order.created", "order.processing"];
        let expected: Vec<&str> = if in_flight.contains(id) {
            // The lease ran out under the dead process: requeued, then done.
            once.into_iter()
                .chain(["order.requeued", "order.processing", "order.completed"])
                .collect()
        } else {
            once.into_iter().chain(["order.completed"]).collect()
        };
        assert_eq!(
            crate::events::event_types(&*store, id).await,
            expected,
            "{id}"
        );
    }
    let rescued = second_logs
        .iter()
        .any(|line| line["message"] == "returned orders with expired leases to the queue");
    assert!(
        rescued,
        "the orders the dead process held were rescued after their lease"
    );
}
