//! `GET /events`, the feed of every order's events by position: paging, access and
//! parameters, and a reader paging through it while three instances write, which must
//! see every event once.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use crate::auth::{SECRET, call, user_token};
use crate::binary::Server;
use crate::helpers::{Options, TestApp, TestDb, eventually, on_every_backend, spawn_app_with};

on_every_backend!(
    the_feed_pages_through_every_event_by_position,
    the_feed_is_for_admins_and_its_parameters_are_checked,
);

/// The feed after position `after`, a page of `limit` at a time, until `expected`
/// events are read; then it must hold no more. An empty page on the way is not the end:
/// on PostgreSQL a transaction still open anywhere in the cluster (another test's)
/// holds the feed back until it ends.
async fn read_feed(app: &TestApp, mut after: i64, limit: usize, expected: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut all = Vec::new();
    while all.len() < expected {
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
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of {expected} events in 30 s",
                all.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        after = page["next_after"].as_i64().unwrap();
        assert_eq!(after, events.last().unwrap()["position"]);
        all.extend(events);
    }
    assert_eq!(all.len(), expected, "no more events than expected");
    let rest = app.get_json(&format!("/events?after={after}")).await;
    assert_eq!(rest["events"], json!([]), "nothing past the last event");
    all
}

async fn the_feed_pages_through_every_event_by_position(db: TestDb) {
    let app = spawn_app_with(db, Options::default()).await;
    let mut ids = Vec::new();
    for _ in 0..7 {
        ids.push(app.new_order().await);
    }
    app.wait_until_completed(&ids, Duration::from_secs(10))
        .await;
    let all = read_feed(&app, 0, 2, 21).await;
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

    // `after=latest`: nothing yet, and the position to follow what comes next from.
    let latest = app.get_json("/events?after=latest").await;
    assert_eq!(latest["events"], serde_json::json!([]));
    assert_eq!(latest["next_after"], positions[20]);
    let id = app.new_order().await;
    app.wait_until_completed(std::slice::from_ref(&id), Duration::from_secs(10))
        .await;
    let after = latest["next_after"].as_i64().unwrap();
    let events = read_feed(&app, after, 100, 3).await;
    assert!(events.iter().all(|e| e["order_id"] == id.as_str()));
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
    let _flood = crate::helpers::DISK_QUIET.write().await;
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    // Workers that fall behind the creators, so cancels find orders still waiting.
    let settings = [("PROCESSING_TIME_MS", "10"), ("WORKER_CONCURRENCY", "4")];
    let servers: Vec<Server> = (0..3).map(|_| Server::start(&db.url, &settings)).collect();
    let client = reqwest::Client::new();
    let reader_address = servers[0].address.clone();
    // How many events the store holds once every order has finished: the reader stops
    // when it has seen as many. An empty page does not mean it has caught up: a
    // transaction still open anywhere in the cluster (another test's) holds the
    // horizon back, and the rest of the log comes once it ends.
    let (stored_tx, mut stored_rx) = tokio::sync::watch::channel(None::<usize>);
    let reader = tokio::spawn({
        let client = client.clone();
        async move {
            let mut after = 0;
            let mut seen = Vec::new();
            loop {
                let answer = client
                    .get(format!("{reader_address}/events?after={after}&limit=50"))
                    .send()
                    .await
                    .expect("a page of the feed");
                let status = answer.status();
                let page: Value = answer.json().await.expect("a page as JSON");
                assert_eq!(status, 200, "a page of the feed: {page}");
                let events = page["events"].as_array().expect("events").clone();
                after = page["next_after"].as_i64().expect("next_after");
                let caught_up = events.is_empty();
                seen.extend(events);
                if (*stored_rx.borrow_and_update()).is_some_and(|stored| seen.len() >= stored) {
                    return seen;
                }
                if caught_up {
                    tokio::select! {
                        _ = stored_rx.changed() => {}
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
    let mut expected = 0;
    for id in &ids {
        expected += store
            .order_events(id.parse().unwrap(), 0)
            .await
            .unwrap()
            .len();
    }
    // A reader that has failed has dropped its receiver: its own panic is reported below.
    stored_tx.send_replace(Some(expected));
    let seen = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .unwrap_or_else(|_| panic!("the reader did not see all {expected} events in 60 s"))
        .unwrap();

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
