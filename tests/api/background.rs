//! The background thread: the event log's consumers (webhook deliveries, the NATS
//! relay) and its retention run at `BACKGROUND_NICE`, below the API's priority, and the
//! consumers step aside while new orders queue for their commit (`BACKGROUND_YIELD_AT`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::binary::Server;
use crate::deliveries::register;
use crate::helpers::{
    Options, TestApp, TestDb, eventually, on_every_backend, order_body, spawn_app_with,
};
use crate::receiver::{Receiver, Reply};
use crate::slow_clients::{HALF_BODY, socket_address, stall};

on_every_backend!(
    the_log_consumers_run_on_a_thread_at_background_nice_and_the_api_at_its_own,
    deliveries_step_aside_while_new_orders_queue_for_their_commit_and_go_out_once_they_ease,
);

/// Each thread of `pid`: its name and its nice value.
fn threads(pid: u32) -> Vec<(String, i64)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the process's threads");
    tasks
        .filter_map(|task| {
            let dir = task.ok()?.path();
            let name = std::fs::read_to_string(dir.join("comm")).ok()?;
            Some((name.trim().to_owned(), nice_of(&dir.join("stat"))?))
        })
        .collect()
}

/// The nice value in a `stat` file: the 19th field, counted after the command's name
/// (which may hold spaces and parentheses).
fn nice_of(stat: &std::path::Path) -> Option<i64> {
    let text = std::fs::read_to_string(stat).ok()?;
    let (_, fields) = text.rsplit_once(')')?;
    fields.split_whitespace().nth(16)?.parse().ok()
}

async fn the_log_consumers_run_on_a_thread_at_background_nice_and_the_api_at_its_own(db: TestDb) {
    let own = nice_of("/proc/self/stat".as_ref()).expect("the test's own nice value");
    let receiver = Receiver::start(|_| Reply::status(200, "")).await;
    let server = Server::start(
        &db.url,
        &[
            ("BACKGROUND_NICE", "7"),
            ("PROCESSING_TIME_MS", "0"),
            ("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true"),
        ],
    );
    let created = server
        .client
        .post(format!("{}/webhooks", server.address))
        .json(&serde_json::json!({"url": receiver.url}))
        .send()
        .await
        .expect("request");
    assert_eq!(created.status(), 201);
    let id = server.create_order(&order_body()).await;
    // Deliveries still go out from the lower priority: the thread is not starved here.
    eventually(
        Duration::from_secs(10),
        "the order's events delivered",
        || async {
            receiver
                .calls()
                .iter()
                .filter(|call| call.json()["data"]["order_id"] == id.as_str())
                .count()
                >= 3
        },
    )
    .await;

    let threads = threads(server.pid());
    let background: Vec<i64> = threads
        .iter()
        .filter(|(name, _)| name.starts_with("background"))
        .map(|(_, nice)| *nice)
        .collect();
    assert!(!background.is_empty(), "a background thread in {threads:?}");
    assert!(
        background.iter().all(|nice| *nice == (own + 7).min(19)),
        "the background threads at BACKGROUND_NICE above the process's: {threads:?}"
    );
    let api: Vec<&(String, i64)> = threads
        .iter()
        .filter(|(name, _)| !name.starts_with("background"))
        .collect();
    assert!(
        api.iter().any(|(name, _)| name.starts_with("tokio-")),
        "the API's runtime threads in {threads:?}"
    );
    assert!(
        api.iter().all(|(_, nice)| *nice == own),
        "every other thread (the API's, the SQLite writer) at the process's own priority: \
         {threads:?}"
    );
}

/// The nice values of the threads named `background…` of `server`.
fn background_nices(server: &Server) -> Vec<i64> {
    threads(server.pid())
        .into_iter()
        .filter(|(name, _)| name.starts_with("background"))
        .map(|(_, nice)| nice)
        .collect()
}

#[test]
fn by_default_the_consumers_run_at_nice_19_on_sqlite() {
    let own = nice_of("/proc/self/stat".as_ref()).expect("the test's own nice value");
    let db = TestDb::sqlite();
    let server = Server::start(&db.url, &[]);
    // The thread lowers its own priority as it starts, which may be just after the
    // server listens.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let nices = background_nices(&server);
        if !nices.is_empty() && nices.iter().all(|nice| *nice == (own + 19).min(19)) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{nices:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn by_default_the_consumers_run_on_the_apis_runtime_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let server = Server::start(&db.url, &[]);
    // Given as long as the thread would take to start.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(background_nices(&server), Vec::<i64>::new());
}

/// Clients creating orders as fast as the service takes them, until stopped: many new
/// orders always wait for their commit. Every other client sends an `Idempotency-Key`
/// of its own with each order, so keyed orders are counted too.
struct Burst {
    stop: Arc<AtomicBool>,
    clients: JoinSet<()>,
}

impl Burst {
    fn start(app: &TestApp, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut set = JoinSet::new();
        for n in 0..clients {
            let (client, url, stop) = (app.client.clone(), app.url("/orders"), stop.clone());
            set.spawn(async move {
                for sent in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let mut request = client.post(&url).json(&order_body());
                    if n % 2 == 1 {
                        request = request.header("Idempotency-Key", format!("burst-{n}-{sent}"));
                    }
                    let answer = request.send().await.expect("request");
                    assert_eq!(answer.status(), 201);
                }
            });
        }
        Self { stop, clients: set }
    }

    async fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let ended = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(client) = self.clients.join_next().await {
                client.expect("a client of the burst");
            }
        });
        ended.await.expect("the burst's clients end");
    }
}

/// Cancels each of `ids`, one every 100 ms; answers when each cancel was answered.
async fn cancel_each(app: &TestApp, ids: &[String]) -> Vec<(Instant, String)> {
    let mut cancelled = Vec::with_capacity(ids.len());
    for id in ids {
        let answer = app
            .client
            .post(app.url(&format!("/orders/{id}/cancel")))
            .send()
            .await
            .expect("request");
        assert_eq!(answer.status(), 200, "cancelling {id}");
        cancelled.push((Instant::now(), id.clone()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cancelled
}

/// How long after its cancel each order's `order.cancelled` reached `receiver`, once all
/// have, shortest first.
async fn delays(receiver: &Receiver, cancelled: &[(Instant, String)]) -> Vec<Duration> {
    let arrival = |id: &str| {
        receiver
            .calls()
            .into_iter()
            .find(|call| call.json()["data"]["order_id"] == id)
            .map(|call| call.at)
    };
    eventually(
        Duration::from_secs(30),
        "every order.cancelled delivered",
        || async { cancelled.iter().all(|(_, id)| arrival(id).is_some()) },
    )
    .await;
    let mut delays: Vec<Duration> = cancelled
        .iter()
        .map(|(at, id)| {
            arrival(id)
                .expect("delivered")
                .saturating_duration_since(*at)
        })
        .collect();
    delays.sort();
    delays
}

async fn deliveries_step_aside_while_new_orders_queue_for_their_commit_and_go_out_once_they_ease(
    db: TestDb,
) {
    // The burst writes as fast as the disk takes it: not beside tests that time things.
    let _flood = crate::helpers::DISK_QUIET.write().await;
    let app = spawn_app_with(
        db,
        Options {
            webhook_allow_private_networks: true,
            background_yield_at: 1,
            // At the API's own priority, so that only stepping aside can hold a delivery
            // back (at nice 19 a loaded machine could).
            background_nice: Some(0),
            // One worker, kept busy by the first order: the others stay `Pending`, to be
            // cancelled one by one.
            concurrency: 1,
            processing_time_ms: 600_000,
            processing_timeout_ms: 1_200_000,
            grace_ms: 100,
            ..Options::default()
        },
    )
    .await;
    let receiver = Receiver::start(|_| Reply::status(200, "")).await;
    register(&app, &receiver.url, Some(&["order.cancelled"])).await;
    let occupant = app.new_order().await;
    app.wait_for_status(&occupant, "Processing").await;
    let mut orders = Vec::new();
    for _ in 0..(11 + 25 + 11) {
        orders.push(app.new_order().await);
    }
    let (quiet, rest) = orders.split_at(11);
    let (busy, eased) = rest.split_at(25);

    // Quiet: each event goes out as it commits.
    let median = |delays: Vec<Duration>| delays[delays.len() / 2];
    let quiet = median(delays(&receiver, &cancel_each(&app, quiet).await).await);
    assert!(
        quiet < Duration::from_millis(300),
        "quiet: median {quiet:?}"
    );

    // A burst: 32 clients keep far more than BACKGROUND_YIELD_AT new orders waiting for
    // their commit, so the consumer reads a page of the log only about once a second
    // (it trails the burst) and the cancels wait for it.
    let burst = Burst::start(&app, 32);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cancelled = cancel_each(&app, busy).await;
    burst.stop().await;
    // On the mean: a cancel waits for the next page, up to a second, about half of it
    // on average.
    let busy = delays(&receiver, &cancelled).await;
    let busy = busy.iter().sum::<Duration>() / busy.len() as u32;
    assert!(
        busy >= Duration::from_millis(300),
        "while busy, deliveries wait: mean {busy:?}"
    );

    // The burst over and the log caught up with, they go out at once again; requests
    // that are only in flight (bodies that never come, more than BACKGROUND_YIELD_AT)
    // count for nothing.
    let address = socket_address(&app);
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(stall(&address, HALF_BODY).await);
    }
    let eased = median(delays(&receiver, &cancel_each(&app, eased).await).await);
    assert!(
        eased < Duration::from_millis(300),
        "eased: median {eased:?}"
    );
    drop(held);
    app.stop().await;
}
