//! The background thread: the event log's consumers (webhook deliveries, the NATS
//! relay) and its retention run at `BACKGROUND_NICE`, below the API's priority.

use std::time::Duration;

use crate::binary::Server;
use crate::helpers::{TestDb, eventually, on_every_backend, order_body};
use crate::receiver::{Receiver, Reply};

on_every_backend!(the_log_consumers_run_on_a_thread_at_background_nice_and_the_api_at_its_own,);

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
