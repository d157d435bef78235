//! The background thread: the event log's consumers (webhook deliveries, the NATS
//! relay) and its retention run at `BACKGROUND_NICE`, below the API's priority, and the
//! consumers step aside while the API is busy (`BACKGROUND_YIELD_AT`).

use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::binary::Server;
use crate::deliveries::register;
use crate::helpers::{
    Options, TestApp, TestDb, eventually, on_every_backend, order_body, spawn_app_with,
};
use crate::receiver::{Receiver, Reply};
use crate::slow_clients::{HALF_BODY, socket_address, stall};

on_every_backend!(
    the_log_consumers_run_on_a_thread_at_background_nice_and_the_api_at_its_own,
    deliveries_step_aside_while_the_api_is_busy_and_go_out_once_it_eases,
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

/// Requests that stay in flight: each sends the head of a `POST /orders` and the start
/// of a body that never ends, so the service holds it (until the body's deadline) as it
/// would a request waiting for its commit.
async fn requests_in_flight(app: &TestApp, n: usize) -> Vec<TcpStream> {
    let address = socket_address(app);
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(stall(&address, HALF_BODY).await);
    }
    held
}

/// Creates `n` orders, one every 100 ms, and answers how long after its creation each
/// one's `order.created` reached `receiver`.
async fn delivery_delays(app: &TestApp, receiver: &Receiver, n: usize) -> Vec<Duration> {
    let mut created = Vec::with_capacity(n);
    for _ in 0..n {
        created.push((Instant::now(), app.new_order().await));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let arrival = |id: &str| {
        receiver
            .calls()
            .into_iter()
            .find(|call| call.json()["data"]["order_id"] == id)
            .map(|call| call.at)
    };
    eventually(
        Duration::from_secs(20),
        "every order.created delivered",
        || async { created.iter().all(|(_, id)| arrival(id).is_some()) },
    )
    .await;
    created
        .iter()
        .map(|(at, id)| arrival(id).expect("delivered") - *at)
        .collect()
}

async fn deliveries_step_aside_while_the_api_is_busy_and_go_out_once_it_eases(db: TestDb) {
    let app = spawn_app_with(
        db,
        Options {
            webhook_allow_private_networks: true,
            background_yield_at: 32,
            ..Options::default()
        },
    )
    .await;
    let receiver = Receiver::start(|_| Reply::status(200, "")).await;
    register(&app, &receiver.url, Some(&["order.created"])).await;
    let median = |mut delays: Vec<Duration>| {
        delays.sort();
        delays[delays.len() / 2]
    };

    // Quiet: each event goes out as it commits.
    let quiet = median(delivery_delays(&app, &receiver, 11).await);
    assert!(
        quiet < Duration::from_millis(300),
        "quiet: median {quiet:?}"
    );

    // 40 requests in flight, more than BACKGROUND_YIELD_AT: the consumer reads a page
    // of the log only about once a second, so orders created one every 100 ms wait
    // for the next page, half a second on the median.
    let held = requests_in_flight(&app, 40).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let busy = median(delivery_delays(&app, &receiver, 25).await);
    assert!(
        busy >= Duration::from_millis(300),
        "while busy, deliveries wait for the next page: median {busy:?}"
    );

    // The load gone, they go out at once again.
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let eased = median(delivery_delays(&app, &receiver, 11).await);
    assert!(
        eased < Duration::from_millis(300),
        "eased: median {eased:?}"
    );
    app.stop().await;
}
