//! Many instances on one PostgreSQL: shared work, cross-instance wake-ups, rescue of a
//! dead instance's orders, and riding out a database outage. PostgreSQL only.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use order_processor::domain::OrderStatus;
use serde_json::{Value, json};

use crate::binary::Server;
use crate::helpers::{
    Options, TestDb, assert_metrics_match_the_table, eventually, order_body, spawn_app_with,
};
use crate::proxy::Proxy;

/// The ids each instance's log says it completed.
fn completed_by(logs: &[Value]) -> Vec<String> {
    logs.iter()
        .filter(|line| line["message"] == "order completed")
        .map(|line| line["order_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Creates `count` orders spread round-robin over `servers`, 32 at a time.
async fn create_spread(servers: &[Server], count: usize) -> Vec<String> {
    futures::stream::iter(0..count)
        .map(|n| {
            let body =
                json!({"user_id": format!("user{n}"), "item_ids": ["a"], "total_amount": 3.5});
            async move { servers[n % servers.len()].create_order(&body).await }
        })
        .buffer_unordered(32)
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_the_work_and_complete_every_order_exactly_once() {
    let _flood = crate::helpers::DISK_QUIET.write().await;
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let settings = [("PROCESSING_TIME_MS", "5"), ("WORKER_CONCURRENCY", "8")];
    let servers: Vec<Server> = (0..3).map(|_| Server::start(&db.url, &settings)).collect();
    let ids = create_spread(&servers, 2_000).await;
    eventually(
        Duration::from_secs(90),
        "2,000 orders completed",
        || async { servers[0].completed().await == 2_000 },
    )
    .await;

    // The log readers trail the processes by a moment.
    eventually(
        Duration::from_secs(5),
        "every completion logged",
        || async {
            servers
                .iter()
                .map(|s| completed_by(&s.logs()).len())
                .sum::<usize>()
                >= 2_000
        },
    )
    .await;
    let mut times_completed: HashMap<String, usize> = HashMap::new();
    for (n, server) in servers.iter().enumerate() {
        let mine = completed_by(&server.logs());
        assert!(
            mine.len() >= 100,
            "instance {n} did a share of the work: {}",
            mine.len()
        );
        for id in mine {
            *times_completed.entry(id).or_default() += 1;
        }
    }
    for id in &ids {
        assert_eq!(
            times_completed.get(id),
            Some(&1),
            "{id} completed exactly once"
        );
    }
    let store = db.store().await;
    assert_metrics_match_the_table(store.as_ref()).await;
    for id in ids.iter().step_by(50) {
        let order = store.get(id.parse().unwrap()).await.unwrap().unwrap();
        assert_eq!(order.attempts, 1, "{id} was claimed once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_created_on_one_instance_wakes_an_idle_worker_on_another() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    // Polling every minute: only a wake-up can explain a prompt start.
    let busy = Server::start(
        &db.url,
        &[
            ("WORKER_CONCURRENCY", "1"),
            ("PROCESSING_TIME_MS", "60000"),
            ("PROCESSING_TIMEOUT_MS", "90000"),
            ("LEASE_TIMEOUT_MS", "120000"),
            ("POLL_INTERVAL_MS", "60000"),
        ],
    );
    // Occupy the busy instance's only worker before the idle one exists.
    let blocker = busy.create_order(&order_body()).await;
    eventually(Duration::from_secs(5), "the busy instance busy", || async {
        busy.get_json(&format!("/orders/{blocker}/status")).await["status"] == "Processing"
    })
    .await;
    let idle = Server::start(
        &db.url,
        &[("PROCESSING_TIME_MS", "0"), ("POLL_INTERVAL_MS", "60000")],
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    for _ in 0..3 {
        let id = busy.create_order(&order_body()).await;
        let path = format!("/orders/{id}");
        eventually(Duration::from_secs(5), "completion elsewhere", || async {
            idle.get_json(&path).await["status"] == "Completed"
        })
        .await;
        let order = idle.get_json(&path).await;
        let created: chrono::DateTime<chrono::Utc> =
            order["created_at"].as_str().unwrap().parse().unwrap();
        let completed: chrono::DateTime<chrono::Utc> =
            order["completed_at"].as_str().unwrap().parse().unwrap();
        let waited = (completed - created).num_milliseconds();
        // Typically single-digit milliseconds; the bound leaves room for a loaded machine
        // (the whole suite on two cores once took over 250 ms here) while staying far
        // below the one-minute poll.
        assert!(waited < 1_000, "woken across instances after {waited} ms");
        assert!(completed_by(&idle.logs()).contains(&id));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survivors_finish_the_orders_of_a_killed_instance() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let settings = [
        ("PROCESSING_TIME_MS", "100"),
        ("WORKER_CONCURRENCY", "5"),
        ("PROCESSING_TIMEOUT_MS", "1000"),
        ("LEASE_TIMEOUT_MS", "2000"),
        ("POLL_INTERVAL_MS", "200"),
    ];
    let mut servers: Vec<Server> = (0..3).map(|_| Server::start(&db.url, &settings)).collect();
    let ids = create_spread(&servers, 600).await;

    // Kill one instance mid-drain, while it holds claims.
    eventually(
        Duration::from_secs(20),
        "the victim busy mid-drain",
        || async { completed_by(&servers[0].logs()).len() >= 10 },
    )
    .await;
    let victim_logs = servers.remove(0).kill();
    let store = db.store().await;
    let counts = store.metrics().await.unwrap().counts;
    assert!(
        counts.get(OrderStatus::Pending) > 0,
        "killed mid-drain: {counts:?}"
    );

    eventually(Duration::from_secs(60), "600 orders completed", || async {
        servers[0].completed().await == 600
    })
    .await;

    let mut times_completed: HashMap<String, usize> = HashMap::new();
    let logs: Vec<Vec<Value>> = vec![victim_logs, servers[0].logs(), servers[1].logs()];
    for id in logs.iter().flat_map(|l| completed_by(l)) {
        *times_completed.entry(id).or_default() += 1;
    }
    assert_metrics_match_the_table(store.as_ref()).await;
    let mut rescued = 0;
    for id in &ids {
        assert!(
            times_completed.get(id).copied().unwrap_or(0) <= 1,
            "{id} completed twice"
        );
        let order = store.get(id.parse().unwrap()).await.unwrap().unwrap();
        assert_eq!(order.status.as_str(), "Completed");
        assert!(order.attempts <= 2, "{id} started {} times", order.attempts);
        if order.attempts == 2 {
            rescued += 1;
        }
    }
    // Only the victim's claims (at most its 5 workers' worth) were started twice.
    assert!(
        (1..=5).contains(&rescued),
        "the victim's claims were rescued and processed again: {rescued}"
    );
    assert!(
        logs[1..]
            .iter()
            .flatten()
            .any(|l| l["message"] == "returned orders with expired leases to the queue"),
        "a survivor rescued the expired leases"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_unreachable_at_start_up_is_waited_for_and_logged() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let (proxy, db) = Proxy::in_front_of(db).await;
    proxy.cut();
    let mut server = Server::spawn(&db.url, &[]);
    eventually(
        Duration::from_secs(10),
        "a log line saying it retries",
        || async {
            server
                .logs()
                .iter()
                .any(|l| l["message"] == "database unreachable; retrying")
        },
    )
    .await;
    assert!(server.is_running(), "it waits instead of exiting");
    proxy.restore();
    server.wait_until_listening(Duration::from_secs(30));
    server.create_order(&order_body()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_and_recovers_without_a_restart() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let (proxy, store_db) = Proxy::in_front_of(db).await;
    let app = spawn_app_with(
        store_db,
        Options {
            processing_time_ms: 50,
            lease_ms: 3_000,
            poll_ms: 200,
            ..Options::default()
        },
    )
    .await;

    let mut accepted = Vec::new();
    for _ in 0..20 {
        accepted.push(
            app.create_order(&order_body()).await["order_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }

    proxy.cut();
    let mut unavailable = 0;
    for _ in 0..5 {
        for response in [
            app.post_order(&order_body()).await,
            app.get(&format!("/orders/{}/status", accepted[0])).await,
        ] {
            let status = response.status().as_u16();
            if status == 201 {
                accepted.push(
                    response.json::<Value>().await.unwrap()["order_id"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                );
                continue;
            }
            assert_eq!(status, 503, "only 503 while the database is away");
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json"
            );
            assert!(response.headers().contains_key("retry-after"));
            let problem: Value = response.json().await.unwrap();
            assert_eq!(problem["status"], 503);
            unavailable += 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        unavailable >= 8,
        "requests failed fast with 503 while down ({unavailable})"
    );

    proxy.restore();
    eventually(
        Duration::from_secs(20),
        "the service to recover",
        || async { app.post_order(&order_body()).await.status() == 201 },
    )
    .await;
    accepted.push(
        app.create_order(&order_body()).await["order_id"]
            .as_str()
            .unwrap()
            .to_owned(),
    );

    app.wait_until_completed(&accepted, Duration::from_secs(30))
        .await;
    let metrics = app.metrics().await;
    // Every acknowledged order is there and done; the recovery probes added a few more.
    assert!(metrics["total_orders"].as_u64().unwrap() >= accepted.len() as u64);
    assert_eq!(metrics["order_counts"]["Pending"], 0);
}
