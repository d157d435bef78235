//! The NATS JetStream relay against real NATS servers: every event published once, in
//! each order's order, with its id as `Nats-Msg-Id`; through a NATS outage, and across
//! a SIGKILL of the real binary.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use order_processor::store::Store;
use serde_json::{Value, json};

use crate::binary::Server;
use crate::helpers::{Options, TestDb, eventually, on_every_backend, spawn_app_with};
use crate::nats_server::NatsServer;

on_every_backend!(
    every_event_of_2000_orders_is_published_once_in_each_order_s_order,
    a_nats_outage_while_orders_flow_loses_nothing,
    a_killed_instance_s_successor_publishes_what_was_missing_and_nothing_twice,
);

/// Every event in the log, by position.
async fn log_of(store: &dyn Store) -> Vec<Value> {
    let (mut after, mut events) = (0, Vec::new());
    loop {
        let page = store.events_after(after, 1_000).await.unwrap();
        let Some(last) = page.last() else {
            return events;
        };
        after = last.position;
        events.extend(page.iter().map(|event| {
            json!({"event_id": event.event_id.to_string(), "order_id": event.order_id.to_string(),
                   "seq": event.seq, "type": event.event_type.as_str()})
        }));
    }
}

/// Waits until the stream holds as many messages as the log holds events, then checks
/// that they are the log's events, each once, each order's in `seq` order, on the
/// subject of its type and with its id as `Nats-Msg-Id`.
async fn assert_published_once_in_order(nats: &NatsServer, store: &dyn Store) {
    let log = log_of(store).await;
    eventually(Duration::from_secs(60), "every event published", || async {
        nats.count("ORDERS").await >= log.len() as u64
    })
    .await;
    let messages = nats.messages("ORDERS").await;
    assert_eq!(messages.len(), log.len(), "nothing twice");
    let published: HashSet<&str> = messages
        .iter()
        .map(|m| m["event_id"].as_str().unwrap())
        .collect();
    let logged: HashSet<&str> = log
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(published, logged);
    let mut last_seq: HashMap<&str, u64> = HashMap::new();
    for message in &messages {
        assert_eq!(message["msg_id"], message["event_id"]);
        let short = message["type"]
            .as_str()
            .unwrap()
            .trim_start_matches("order.");
        assert_eq!(message["subject"], format!("orders.events.{short}"));
        let order = message["order_id"].as_str().unwrap();
        let seq = message["seq"].as_u64().unwrap();
        let before = last_seq.insert(order, seq).unwrap_or(0);
        assert_eq!(seq, before + 1, "order {order}: seq {seq} after {before}");
    }
}

async fn create(url: String, client: reqwest::Client, n: usize) {
    let body = json!({"user_id": format!("u{n}"), "item_ids": ["a"], "total_amount": 5});
    let response = client.post(url).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201);
}

async fn every_event_of_2000_orders_is_published_once_in_each_order_s_order(db: TestDb) {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let app = spawn_app_with(
        db,
        Options {
            events_nats_url: Some(nats.url()),
            concurrency: 50,
            ..Options::default()
        },
    )
    .await;
    futures::stream::iter(0..2_000)
        .map(|n| create(app.url("/orders"), app.client.clone(), n))
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    eventually(Duration::from_secs(60), "all completed", || async {
        app.metrics().await["order_counts"]["Completed"] == 2_000
    })
    .await;
    assert_published_once_in_order(&nats, &*app.store).await;
    assert_eq!(nats.count("ORDERS").await, 6_000);
    app.stop().await;
}

async fn a_nats_outage_while_orders_flow_loses_nothing(db: TestDb) {
    let Some(mut nats) = NatsServer::start() else {
        return;
    };
    let app = spawn_app_with(
        db,
        Options {
            events_nats_url: Some(nats.url()),
            ..Options::default()
        },
    )
    .await;
    for n in 0..100 {
        create(app.url("/orders"), app.client.clone(), n).await;
    }
    nats.stop();
    // Orders go on being created and processed while NATS is away.
    for n in 100..200 {
        create(app.url("/orders"), app.client.clone(), n).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    nats.restart();
    for n in 200..300 {
        create(app.url("/orders"), app.client.clone(), n).await;
    }
    eventually(Duration::from_secs(60), "all completed", || async {
        app.metrics().await["order_counts"]["Completed"] == 300
    })
    .await;
    assert_published_once_in_order(&nats, &*app.store).await;
    app.stop().await;
}

async fn a_killed_instance_s_successor_publishes_what_was_missing_and_nothing_twice(db: TestDb) {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let url = nats.url();
    let settings = [
        ("EVENTS_NATS_URL", url.as_str()),
        ("PROCESSING_TIME_MS", "20"),
        ("WORKER_CONCURRENCY", "4"),
        ("LEASE_TIMEOUT_MS", "1000"),
        ("POLL_INTERVAL_MS", "100"),
    ];
    let first = Server::start(&db.url, &settings);
    let mut ids = Vec::new();
    for n in 0..300 {
        let body = json!({"user_id": format!("u{n}"), "item_ids": ["a"], "total_amount": 5});
        ids.push(first.create_order(&body).await);
    }
    // Killed mid-stream: most events published, more waiting.
    eventually(Duration::from_secs(30), "events published", || async {
        nats.count("ORDERS").await >= 600
    })
    .await;
    first.kill();
    // The successor takes the relay over once the killed one's lease (30 s) runs out,
    // from the last position saved: what was published since is published again, and
    // dropped by JetStream as a duplicate.
    let second = Server::start(&db.url, &settings);
    eventually(Duration::from_secs(60), "all completed", || async {
        second.completed().await == 300
    })
    .await;
    let store = db.store().await;
    assert_published_once_in_order(&nats, &*store).await;
    // It resumed from the saved position, not from the start of the log: at most a
    // batch and 200 ms of events were sent again.
    let text = reqwest::get(format!("{}/metrics/prometheus", second.address))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let counter = |name: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .map_or(0.0, |value| value.trim().parse().unwrap())
    };
    let resent = counter("events_relay_duplicates_total");
    assert!(resent < 500.0, "{resent} events sent again of 900");
    assert!(counter("events_relayed_total") < 900.0);
}
