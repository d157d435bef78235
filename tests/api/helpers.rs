//! Spawning the app for tests: in-process on `127.0.0.1:0`, or as the real binary,
//! each on a fresh SQLite database in its own temporary directory.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use order_processor::app;
use order_processor::config::{DatabaseConfig, ServeConfig};
use order_processor::domain::Order;
use order_processor::store::{self, Store};
use order_processor::worker::{ProcessingError, Processor, SimulatedProcessor};
use serde_json::Value;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How a test wants the app configured.
#[derive(Clone)]
pub struct Options {
    pub processing_time_ms: u64,
    pub concurrency: u16,
    pub lease_ms: u64,
    pub grace_ms: u64,
    pub poll_ms: u64,
    /// Replaces the simulated processor (for example with a `Gate`).
    pub processor: Option<Arc<dyn Processor>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            processing_time_ms: 10,
            concurrency: 10,
            lease_ms: 30_000,
            grace_ms: 2_000,
            poll_ms: 1_000,
            processor: None,
        }
    }
}

/// A fresh database directory; the files go when it is dropped.
pub struct TestDb {
    pub dir: Arc<TempDir>,
    pub url: String,
}

impl TestDb {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("orders.db").display());
        Self {
            dir: Arc::new(dir),
            url,
        }
    }

    /// A store on this database, migrated.
    pub async fn store(&self) -> Arc<dyn Store> {
        let store = store::connect(&self.url).await.expect("open store");
        store.migrate().await.expect("migrate");
        store
    }
}

/// The app running in this process.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db: TestDb,
    pub store: Arc<dyn Store>,
    stop: CancellationToken,
    served: JoinHandle<std::io::Result<()>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    spawn_app_on(TestDb::new(), options).await
}

/// Starts the app on an existing database (for restart tests).
pub async fn spawn_app_on(db: TestDb, options: Options) -> TestApp {
    let config = ServeConfig {
        host: "127.0.0.1".parse().unwrap(),
        port: 0,
        database: DatabaseConfig {
            database_url: db.url.clone(),
        },
        worker_concurrency: options.concurrency,
        processing_time_ms: options.processing_time_ms,
        lease_timeout_ms: options.lease_ms,
        shutdown_grace_ms: options.grace_ms,
        poll_interval_ms: options.poll_ms,
        body_limit_bytes: 65_536,
    };
    config.validate().expect("valid test config");
    let store = db.store().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = format!("http://{}", listener.local_addr().unwrap());
    let processor = options
        .processor
        .unwrap_or_else(|| Arc::new(SimulatedProcessor::new(config.processing_time())));
    let stop = CancellationToken::new();
    let shutdown = stop.clone().cancelled_owned();
    let served = tokio::spawn({
        let store = store.clone();
        async move { app::run_with_processor(listener, store, processor, &config, shutdown).await }
    });
    TestApp {
        address,
        client: reqwest::Client::new(),
        db,
        store,
        stop,
        served,
    }
}

impl TestApp {
    /// Asks for a graceful stop and waits for it; returns the database for a restart.
    pub async fn stop(self) -> TestDb {
        self.stop.cancel();
        self.served.await.expect("join").expect("served cleanly");
        self.db
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn post_order(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/orders"))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Creates an order that must be accepted, and returns its answer.
    pub async fn create_order(&self, body: &Value) -> Value {
        let response = self.post_order(body).await;
        assert_eq!(response.status(), 201, "creating {body}");
        response.json().await.expect("json")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("json")
    }

    pub async fn status_of(&self, order_id: &str) -> String {
        let body = self.get_json(&format!("/orders/{order_id}/status")).await;
        body["status"].as_str().expect("status string").to_owned()
    }

    pub async fn metrics(&self) -> Value {
        self.get_json("/metrics").await
    }

    /// Waits until every order is `Completed`, failing the test after `timeout`.
    pub async fn wait_until_completed(&self, ids: &[String], timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        for id in ids {
            loop {
                if self.status_of(id).await == "Completed" {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "order {id} not completed within {timeout:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// A sample valid order body.
pub fn order_body() -> Value {
    serde_json::json!({"user_id": "user1", "item_ids": ["item1", "item2"], "total_amount": 100.5})
}

/// A processor that holds every order until opened, so tests can see orders
/// `Processing` (and, behind a busy worker, `Pending`) for as long as they need.
#[derive(Default)]
pub struct Gate {
    open: CancellationToken,
}

impl Gate {
    pub fn open(&self) {
        self.open.cancel();
    }
}

#[async_trait]
impl Processor for Gate {
    async fn process(&self, _order: &Order) -> Result<(), ProcessingError> {
        self.open.cancelled().await;
        Ok(())
    }
}

/// Polls `check` until it is true, failing the test after `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
