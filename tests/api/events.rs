//! The event log over HTTP: every path writes exactly its events, numbered 1..n; an
//! order's history; and the feed of every order's events by position, which a reader
//! paging through it while three instances write sees whole, each event once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use order_processor::store::Store;
use order_processor::worker::SimulatedProcessor;
use serde_json::{Value, json};

use crate::auth::{SECRET, call, user_token};
use crate::binary::Server;
use crate::helpers::{
    Options, TestApp, TestDb, eventually, on_every_backend, order_body, spawn_app_with,
};

on_every_backend!(
    a_processed_order_logs_created_processing_completed_as_its_history,
    failed_attempts_a_dead_letter_and_an_operator_retry_are_each_logged,
    the_feed_pages_through_every_event_by_position,
    the_feed_is_for_admins_and_its_parameters_are_checked,
);

/// An order's event types in `seq` order, after checking that the log numbers them 1..n
/// with positions rising and shows the order's status as each type implies.
pub async fn event_types(store: &dyn Store, id: &str) -> Vec<String> {
    let events = store.order_events(id.parse().unwrap(), 0).await.unwrap();
    for (n, event) in events.iter().enumerate() {
        assert_eq!(event.seq as usize, n + 1, "{id}: {events:?}");
        assert_eq!(event.order_id.to_string(), id);
        if n > 0 {
            assert!(event.position > events[n - 1].position, "{events:?}");
        }
    }
    events
        .iter()
        .map(|event| event.event_type.as_str().to_owned())
        .collect()
}

async fn new_order(app: &TestApp) -> String {
    app.create_order(&order_body()).await["order_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn types(events: &Value) -> Vec<&str> {
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect()
}

async fn a_processed_order_logs_created_processing_completed_as_its_history(db: TestDb) {
    let app = spawn_app_with(db, Options::default()).await;
    let id = new_order(&app).await;
    app.wait_until_completed(std::slice::from_ref(&id), Duration::from_secs(10))
        .await;
    let history = app.get_json(&format!("/orders/{id}/events")).await;
    let events = history["events"].as_array().unwrap();
    assert_eq!(
        types(&history["events"]),
        ["order.created", "order.processing", "order.completed"]
    );
    let statuses: Vec<&str> = events
        .iter()
        .map(|e| e["data"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["Pending", "Processing", "Completed"]);
    let mut event_ids = HashSet::new();
    for (n, event) in events.iter().enumerate() {
        assert_eq!(event["seq"], n + 1);
        assert_eq!(event["order_id"], id.as_str());
        let event_id: uuid::Uuid = event["event_id"].as_str().unwrap().parse().unwrap();
        assert_eq!(event_id.get_version_num(), 7);
        assert!(event_ids.insert(event_id));
        let at = event["occurred_at"].as_str().unwrap();
        assert!(at.ends_with('Z') && at.len() == 24, "RFC 3339 in ms: {at}");
        assert!(event["position"].as_i64().unwrap() > 0);
    }
    assert_eq!(events[1]["data"]["attempts"], 1, "the attempt's number");
    assert_eq!(
        events[2]["data"],
        app.get_json(&format!("/orders/{id}")).await,
        "the last event shows the order as it is"
    );
    assert_eq!(events[2]["occurred_at"], events[2]["data"]["completed_at"]);
    assert_eq!(events[0]["occurred_at"], events[0]["data"]["created_at"]);
    let missing = app
        .get("/orders/0190b6a0-0000-7000-8000-000000000000/events")
        .await;
    assert_eq!(missing.status(), 404);
}

async fn failed_attempts_a_dead_letter_and_an_operator_retry_are_each_logged(db: TestDb) {
    let app = spawn_app_with(
        db,
        Options {
            max_attempts: 2,
            retry_base_ms: 50,
            retry_max_ms: 100,
            processor: Some(Arc::new(SimulatedProcessor::new(Duration::ZERO, 1.0))),
            ..Options::default()
        },
    )
    .await;
    let id = new_order(&app).await;
    let failed = ["order.created", "order.processing", "order.attempt_failed"]
        .into_iter()
        .chain(["order.processing", "order.failed"]);
    let once: Vec<&str> = failed.collect();
    eventually(Duration::from_secs(10), "dead-lettered", || async {
        event_types(&*app.store, &id).await == once
    })
    .await;
    let history = app.get_json(&format!("/orders/{id}/events")).await;
    let attempt_failed = &history["events"][2];
    assert_eq!(attempt_failed["data"]["status"], "Pending");
    assert_eq!(attempt_failed["data"]["attempts"], 1);
    assert!(
        attempt_failed["data"]["last_error"]
            .as_str()
            .unwrap()
            .contains("simulated transient failure")
    );
    let next = attempt_failed["data"]["next_attempt_at"].as_str().unwrap();
    assert!(
        next > attempt_failed["occurred_at"].as_str().unwrap(),
        "the next attempt is after a backoff: {attempt_failed}"
    );
    let dead = &history["events"][4];
    assert_eq!(dead["data"]["status"], "Failed");
    assert_eq!(dead["data"]["attempts"], 2);
    assert_eq!(dead["data"]["failed_at"], dead["occurred_at"]);

    let retry = app
        .client
        .post(app.url(&format!("/orders/{id}/retry")))
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), 200);
    let mut twice = once.clone();
    twice.push("order.retried");
    twice.extend(&once[1..]);
    eventually(Duration::from_secs(10), "dead-lettered again", || async {
        event_types(&*app.store, &id).await == twice
    })
    .await;
    let history = app.get_json(&format!("/orders/{id}/events")).await;
    assert_eq!(
        history["events"][5]["data"]["attempts"], 0,
        "a fresh budget"
    );
}

/// Every event of the feed from position 0, a page of `limit` at a time.
async fn read_feed(app: &TestApp, limit: usize) -> Vec<Value> {
    let mut after = 0;
    let mut all = Vec::new();
    loop {
        let page = app
            .get_json(&format!("/events?after={after}&limit={limit}"))
            .await;
        let events = page["events"].as_array().unwrap().clone();
        assert!(events.len() <= limit);
        if events.is_empty() {
            assert_eq!(
                page["next_after"], after,
                "an empty page stays where it was"
            );
            return all;
        }
        after = page["next_after"].as_i64().unwrap();
        assert_eq!(after, events.last().unwrap()["position"]);
        all.extend(events);
    }
}

async fn the_feed_pages_through_every_event_by_position(db: TestDb) {
    let app = spawn_app_with(db, Options::default()).await;
    let mut ids = Vec::new();
    for _ in 0..7 {
        ids.push(new_order(&app).await);
    }
    app.wait_until_completed(&ids, Duration::from_secs(10))
        .await;
    let all = read_feed(&app, 2).await;
    assert_eq!(all.len(), 21, "three events for each of seven orders");
    let positions: Vec<i64> = all
        .iter()
        .map(|e| e["position"].as_i64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    let mut seqs: HashMap<&str, Vec<u64>> = HashMap::new();
    for event in &all {
        seqs.entry(event["order_id"].as_str().unwrap())
            .or_default()
            .push(event["seq"].as_u64().unwrap());
    }
    assert_eq!(seqs.len(), 7);
    assert!(seqs.values().all(|s| s == &[1, 2, 3]), "{seqs:?}");
    let tail = app
        .get_json(&format!("/events?after={}", positions[18]))
        .await;
    assert_eq!(tail["events"].as_array().unwrap().len(), 2);
}

async fn the_feed_is_for_admins_and_its_parameters_are_checked(db: TestDb) {
    let app = spawn_app_with(
        db,
        Options {
            auth: order_processor::auth::AuthConfig {
                auth_jwt_secret: Some(SECRET.into()),
                ..Default::default()
            },
            ..Options::default()
        },
    )
    .await;
    let (alice, admin) = (user_token("alice", false), user_token("root", true));
    let created = call(
        &app,
        reqwest::Method::POST,
        "/orders",
        Some(&alice),
        Some(json!({"item_ids": ["a"], "total_amount": 1})),
    )
    .await;
    let id = created.json::<Value>().await.unwrap()["order_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let get = |path: String, token: &str| {
        let (app, token) = (&app, token.to_owned());
        async move { call(app, reqwest::Method::GET, &path, Some(&token), None).await }
    };
    assert_eq!(get("/events".into(), &alice).await.status(), 403);
    assert_eq!(get("/events".into(), &admin).await.status(), 200);
    let history = format!("/orders/{id}/events");
    assert_eq!(
        get(history.clone(), &alice).await.status(),
        200,
        "her own order"
    );
    assert_eq!(get(history.clone(), &admin).await.status(), 200);
    let bob = user_token("bob", false);
    assert_eq!(get(history, &bob).await.status(), 404, "not his");
    for (query, field) in [
        ("after=-1", "after"),
        ("after=x", "after"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("since=3", "since"),
    ] {
        let response = get(format!("/events?{query}"), &admin).await;
        assert_eq!(response.status(), 400, "{query}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], field, "{query}: {problem}");
    }
}

/// Three instances on one PostgreSQL create, process and cancel orders while a reader
/// pages through `/events` from position 0: it must see every event exactly once, each
/// order's in `seq` order, though transactions in three processes commit in any order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_paging_the_feed_of_three_instances_sees_every_event_once_in_order() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    // Workers that fall behind the creators, so cancels find orders still waiting.
    let settings = [("PROCESSING_TIME_MS", "10"), ("WORKER_CONCURRENCY", "4")];
    let servers: Vec<Server> = (0..3).map(|_| Server::start(&db.url, &settings)).collect();
    let client = reqwest::Client::new();
    let reader_address = servers[0].address.clone();
    let done = Arc::new(tokio::sync::Notify::new());
    let reader = tokio::spawn({
        let (client, done) = (client.clone(), done.clone());
        async move {
            let mut after = 0;
            let mut seen = Vec::new();
            let mut finishing = false;
            loop {
                let page: Value = client
                    .get(format!("{reader_address}/events?after={after}&limit=50"))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let events = page["events"].as_array().unwrap().clone();
                after = page["next_after"].as_i64().unwrap();
                if events.is_empty() && finishing {
                    return seen;
                }
                seen.extend(events);
                if !finishing {
                    tokio::select! {
                        () = done.notified() => finishing = true,
                        () = tokio::time::sleep(Duration::from_millis(5)) => {}
                    }
                }
            }
        }
    });
    let ids: Vec<String> = futures::stream::iter(0..600)
        .map(|n| {
            let (servers, client) = (&servers, &client);
            async move {
                let server = &servers[n % 3];
                let body =
                    json!({"user_id": format!("u{n}"), "item_ids": ["a"], "total_amount": 1});
                let id = server.create_order(&body).await;
                if n % 3 == 0 {
                    // Cancelled, or too late (then 409): either way, events.
                    let other = &servers[(n + 1) % 3];
                    client
                        .post(format!("{}/orders/{id}/cancel", other.address))
                        .send()
                        .await
                        .unwrap();
                }
                id
            }
        })
        .buffer_unordered(24)
        .collect()
        .await;
    let store = db.store().await;
    eventually(Duration::from_secs(60), "every order finished", || async {
        let counts = store.metrics().await.unwrap().counts;
        counts.get(order_processor::domain::OrderStatus::Pending) == 0
            && counts.get(order_processor::domain::OrderStatus::Processing) == 0
    })
    .await;
    done.notify_one();
    let seen = reader.await.unwrap();

    let mut expected = 0;
    let mut by_order: HashMap<String, Vec<u64>> = HashMap::new();
    let mut event_ids = HashSet::new();
    for event in &seen {
        assert!(
            event_ids.insert(event["event_id"].as_str().unwrap().to_owned()),
            "{event} twice"
        );
        by_order
            .entry(event["order_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(event["seq"].as_u64().unwrap());
    }
    for id in &ids {
        let stored = store.order_events(id.parse().unwrap(), 0).await.unwrap();
        expected += stored.len();
        let seqs: Vec<u64> = (1..=stored.len() as u64).collect();
        assert_eq!(
            by_order.get(id),
            Some(&seqs),
            "{id}: seen in seq order, all of them"
        );
    }
    assert_eq!(seen.len(), expected, "nothing seen that is not stored");
    let cancelled = seen
        .iter()
        .filter(|e| e["type"] == "order.cancelled")
        .count();
    assert!(cancelled > 0, "some cancels won");
}
