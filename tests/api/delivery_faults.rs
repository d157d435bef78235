//! Deliveries under faults: a receiver failing at random keeps every order's events in
//! order while one failing order holds up no other; an instance killed with deliveries
//! in flight, and one of three instances on PostgreSQL killed, lose no event.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use order_processor::store::Store;
use serde_json::{Value, json};

use crate::binary::Server;
use crate::deliveries::{register, verified, webhook_app};
use crate::helpers::{TestDb, eventually, on_every_backend};
use crate::receiver::{Receiver, Reply};

on_every_backend!(
    a_hanging_endpoint_holds_up_no_other,
    each_orders_events_arrive_in_order_and_a_failing_order_holds_up_no_other,
    a_killed_instance_s_deliveries_all_arrive_after_a_restart,
);

/// Every event id in the log.
async fn logged_event_ids(store: &dyn Store) -> HashSet<String> {
    let mut ids = HashSet::new();
    let mut after = 0;
    loop {
        let page = store.events_after(after, 1_000).await.unwrap();
        let Some(last) = page.last() else {
            return ids;
        };
        after = last.position;
        ids.extend(page.iter().map(|e| e.event_id.hyphenated().to_string()));
    }
}

async fn a_hanging_endpoint_holds_up_no_other(db: TestDb) {
    let app = crate::helpers::spawn_app_with(
        db,
        crate::helpers::Options {
            webhook_allow_private_networks: true,
            webhook_timeout_ms: 8_000,
            ..crate::helpers::Options::default()
        },
    )
    .await;
    let hanging = Receiver::start(|_| Reply::Hang).await;
    let healthy = Receiver::start(|_| Reply::status(200, "")).await;
    let (stuck, _) = register(&app, &hanging.url, None).await;
    let (_, secret) = register(&app, &healthy.url, None).await;
    let started = std::time::Instant::now();
    // More orders than there are slots: a hanging endpoint must not come to hold them
    // all while its attempts wait out their timeout.
    let mut ids = Vec::new();
    for _ in 0..80 {
        ids.push(app.new_order().await);
    }
    app.wait_until_completed(&ids, Duration::from_secs(20))
        .await;
    eventually(Duration::from_secs(20), "240 events delivered", || async {
        healthy.calls().len() >= 240
    })
    .await;
    // Well within the hanging endpoint's first timeout.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "{took:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let calls = verified(&healthy, &secret);
    assert_eq!(calls.len(), 240, "each event once");
    // Each order's events in their order.
    let mut last: HashMap<String, String> = HashMap::new();
    for call in &calls {
        let body = call.json();
        let order = body["data"]["order_id"].as_str().unwrap().to_owned();
        let kind = body["type"].as_str().unwrap().to_owned();
        let before = last.insert(order, kind.clone());
        let expected = match kind.as_str() {
            "order.created" => None,
            "order.processing" => Some("order.created"),
            _ => Some("order.processing"),
        };
        assert_eq!(before.as_deref(), expected, "{kind}");
    }
    // Every event is owed to the hanging endpoint too (first attempts claimed, in
    // flight, or left to the claimers; the rest of each order's waiting behind them).
    let pending = format!("/webhooks/{stuck}/deliveries?status=pending&limit=500");
    eventually(
        Duration::from_secs(10),
        "240 owed to the hanging one",
        || async {
            app.get_json(&pending).await["deliveries"]
                .as_array()
                .is_some_and(|d| d.len() == 240)
        },
    )
    .await;
}

async fn each_orders_events_arrive_in_order_and_a_failing_order_holds_up_no_other(db: TestDb) {
    // Scaled to three ten-thousandths: the first retries within milliseconds, failed
    // for good after ~30 s.
    let app = webhook_app(db, 0.0003).await;
    // Each call's (event id, answered 200), in arrival order.
    let answers: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
    // Each event's refusals so far. At random, but twice at most: an event refused
    // five or six times waits seconds for its next attempt (the schedule's later
    // steps), and the whole run must stay well inside the ~30 s after which the stuck
    // order's first event has failed for good and its second may go.
    let refused: Arc<Mutex<HashMap<String, u8>>> = Arc::default();
    let receiver = Receiver::start({
        let answers = answers.clone();
        move |call| {
            let body = call.json();
            let id = call.header("webhook-id").to_owned();
            // The stuck order is known by its user, so even its first event, sent as
            // soon as it commits, is refused.
            let stuck = body["data"]["user_id"] == "stuck";
            let mut refused = refused.lock().unwrap();
            let times = refused.entry(id.clone()).or_default();
            let ok = !stuck && (*times >= 2 || fastrand::u8(0..10) >= 3);
            if !ok {
                *times += 1;
            }
            answers.lock().unwrap().push((id, ok));
            Reply::status(if ok { 200 } else { 500 }, "")
        }
    })
    .await;
    let (hook, secret) = register(&app, &receiver.url, None).await;
    let stuck_order = app
        .create_order(&json!({"user_id": "stuck", "item_ids": ["i"], "total_amount": 1}))
        .await["order_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(app.new_order().await);
    }
    app.wait_until_completed(&ids, Duration::from_secs(30))
        .await;
    // Each event's id and seq, by order.
    let mut seq_of: HashMap<String, (String, u64)> = HashMap::new();
    for id in ids.iter().chain([&stuck_order]) {
        let history = app.get_json(&format!("/orders/{id}/events")).await;
        for event in history["events"].as_array().unwrap() {
            seq_of.insert(
                event["event_id"].as_str().unwrap().to_owned(),
                (id.clone(), event["seq"].as_u64().unwrap()),
            );
        }
    }
    let delivered = |answers: &[(String, bool)]| -> HashSet<String> {
        answers
            .iter()
            .filter(|(_, ok)| *ok)
            .map(|(id, _)| id.clone())
            .collect()
    };
    eventually(
        Duration::from_secs(30),
        "the 60 events delivered",
        || async {
            let done = delivered(&answers.lock().unwrap());
            seq_of
                .iter()
                .filter(|(_, (order, _))| *order != stuck_order)
                .all(|(id, _)| done.contains(id))
        },
    )
    .await;

    // Not held up: the failing order is still on its first event, and nothing later of
    // it has been sent.
    let answers = answers.lock().unwrap().clone();
    let stuck_calls: HashSet<u64> = answers
        .iter()
        .filter(|(id, _)| seq_of[id].0 == stuck_order)
        .map(|(id, _)| seq_of[id].1)
        .collect();
    assert_eq!(stuck_calls, HashSet::from([1]));
    let pending = app
        .get_json(&format!("/webhooks/{hook}/deliveries?status=pending"))
        .await;
    assert!(
        pending["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["order_id"] == json!(stuck_order) && d["seq"] == 1),
        "{pending}"
    );

    // In order: no call of an order's event before its previous event was answered 200.
    let mut done: HashMap<&str, u64> = HashMap::new();
    for (id, ok) in &answers {
        let (order, seq) = &seq_of[id];
        let before = done.get(order.as_str()).copied().unwrap_or(0);
        assert!(
            *seq <= before + 1,
            "order {order}: event {seq} sent before event {} was delivered",
            before + 1
        );
        if *ok {
            done.insert(order, (*seq).max(before));
        }
    }
    assert!(answers.iter().any(|(_, ok)| !ok), "some attempts failed");
    verified(&receiver, &secret);
}

async fn a_killed_instance_s_deliveries_all_arrive_after_a_restart(db: TestDb) {
    let receiver =
        Receiver::start(|_| Reply::status(200, "").after(Duration::from_millis(50))).await;
    let settings = [
        ("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true"),
        ("WEBHOOK_TIMEOUT_MS", "1000"),
        ("PROCESSING_TIME_MS", "10"),
        ("WORKER_CONCURRENCY", "8"),
        ("LEASE_TIMEOUT_MS", "1000"),
    ];
    let first = Server::start(&db.url, &settings);
    let secret = register_on(&first, &receiver.url).await;
    create_spread(std::slice::from_ref(&first), 100).await;
    // Killed with deliveries in flight and more owed.
    eventually(Duration::from_secs(30), "deliveries under way", || async {
        receiver.calls().len() >= 60
    })
    .await;
    first.kill();
    let second = Server::start(&db.url, &settings);
    eventually(Duration::from_secs(30), "all completed", || async {
        second.completed().await == 100
    })
    .await;
    let store = db.store().await;
    let logged = logged_event_ids(&*store).await;
    // Three per order, and a requeue and another claim for each one killed mid-attempt.
    assert!(logged.len() >= 300, "{}", logged.len());
    // The successor owes the rest once the killed one's hold on the log lapses (30 s),
    // and sends again what the killed one had in flight once those claims lapse.
    eventually(Duration::from_secs(90), "every event delivered", || async {
        let received: HashSet<String> = receiver
            .calls()
            .iter()
            .map(|c| c.header("webhook-id").to_owned())
            .collect();
        logged.is_subset(&received)
    })
    .await;
    verified(&receiver, &secret);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_one_killed_deliver_every_event() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let receiver =
        Receiver::start(|_| Reply::status(200, "").after(Duration::from_millis(20))).await;
    let settings = [
        ("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true"),
        ("WEBHOOK_TIMEOUT_MS", "1000"),
        ("PROCESSING_TIME_MS", "10"),
        ("WORKER_CONCURRENCY", "8"),
        ("LEASE_TIMEOUT_MS", "1000"),
    ];
    let mut servers: Vec<Server> = (0..3).map(|_| Server::start(&db.url, &settings)).collect();
    let secret = register_on(&servers[0], &receiver.url).await;
    create_spread(&servers, 300).await;
    eventually(Duration::from_secs(30), "deliveries under way", || async {
        receiver.calls().len() >= 300
    })
    .await;
    servers.remove(1).kill();
    eventually(Duration::from_secs(60), "all completed", || async {
        servers[0].completed().await == 300
    })
    .await;
    let store = db.store().await;
    let logged = logged_event_ids(&*store).await;
    assert!(logged.len() >= 900, "{}", logged.len());
    eventually(Duration::from_secs(90), "every event delivered", || async {
        let received: HashSet<String> = receiver
            .calls()
            .iter()
            .map(|c| c.header("webhook-id").to_owned())
            .collect();
        logged.is_subset(&received)
    })
    .await;
    let calls = verified(&receiver, &secret);
    // Shared, not repeated: only what the killed instance had in flight goes twice.
    assert!(
        calls.len() < 900 + 200,
        "{} calls for 900 events",
        calls.len()
    );
}

/// Registers an endpoint on a running binary; answers its secret.
async fn register_on(server: &Server, url: &str) -> String {
    let response = server
        .client
        .post(format!("{}/webhooks", server.address))
        .json(&json!({ "url": url }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    created["secret"].as_str().unwrap().to_owned()
}

/// Creates `count` orders spread round-robin over `servers`, 16 at a time.
async fn create_spread(servers: &[Server], count: usize) {
    futures::stream::iter(0..count)
        .map(|n| {
            let body = json!({"user_id": format!("u{n}"), "item_ids": ["a"], "total_amount": 2});
            async move { servers[n % servers.len()].create_order(&body).await }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
}
