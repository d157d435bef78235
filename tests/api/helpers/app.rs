//! The app running in this process on `127.0.0.1:0`: how a test wants it configured
//! (`Options`, turned into the service's own `ServeConfig`), starting it on a database,
//! calling it, and stopping it gracefully.

use std::sync::Arc;
use std::time::Duration;

use order_processor::app;
use order_processor::auth::AuthConfig;
use order_processor::config::{
    ConnectionConfig, DEFAULT_BACKGROUND_YIELD_AT, DatabaseConfig, EventConfig, ProcessingConfig,
    Redacted, RequestConfig, ServeConfig, StreamConfig, WebhookConfig,
};
use order_processor::store::Store;
use order_processor::worker::Processor;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{TestDb, eventually, order_body};

/// How a test wants the app configured.
#[derive(Clone)]
pub struct Options {
    pub processing_time_ms: u64,
    pub concurrency: u16,
    pub lease_ms: u64,
    pub grace_ms: u64,
    pub poll_ms: u64,
    pub processing_timeout_ms: u64,
    pub failure_rate: f64,
    pub max_attempts: u32,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// Authentication settings (off by default, as in the quick start).
    pub auth: AuthConfig,
    pub idempotency_ttl: Duration,
    /// Rate limit (per second, burst); off by default.
    pub rate_limit: Option<(u32, u32)>,
    /// Replaces the simulated processor (for example with a `Gate`).
    pub processor: Option<Arc<dyn Processor>>,
    /// `WEBHOOK_ALLOW_PRIVATE_NETWORKS`.
    pub webhook_allow_private_networks: bool,
    /// `WEBHOOK_TIMEOUT_MS`, `WEBHOOK_RETRY_SCALE`, `WEBHOOK_DISABLE_AFTER`.
    pub webhook_timeout_ms: u64,
    pub webhook_retry_scale: f64,
    pub webhook_disable_after: Duration,
    /// `EVENTS_NATS_URL`: the NATS relay.
    pub events_nats_url: Option<String>,
    /// `PROCESSOR_URL` and `PROCESSOR_SECRET`: the HTTP processor.
    pub processor_url: Option<String>,
    pub processor_secret: Option<String>,
    pub max_connections: u64,
    pub header_read_timeout_ms: u64,
    pub body_read_timeout_ms: u64,
    pub write_timeout_ms: u64,
    pub max_streams: u64,
    pub sse_heartbeat_ms: u64,
    /// `BACKGROUND_YIELD_AT`.
    pub background_yield_at: u32,
    /// `BACKGROUND_NICE` (its default per backend when `None`).
    pub background_nice: Option<u8>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            processing_time_ms: 10,
            concurrency: 10,
            lease_ms: 30_000,
            grace_ms: 2_000,
            poll_ms: 1_000,
            processing_timeout_ms: 2_000,
            failure_rate: 0.0,
            max_attempts: 5,
            retry_base_ms: 1_000,
            retry_max_ms: 300_000,
            auth: AuthConfig::default(),
            idempotency_ttl: Duration::from_secs(86_400),
            rate_limit: None,
            processor: None,
            processor_url: None,
            processor_secret: None,
            events_nats_url: None,
            webhook_allow_private_networks: false,
            webhook_timeout_ms: 15_000,
            webhook_retry_scale: 1.0,
            webhook_disable_after: Duration::from_secs(5 * 86_400),
            max_connections: 10_000,
            header_read_timeout_ms: 30_000,
            body_read_timeout_ms: 30_000,
            write_timeout_ms: 30_000,
            max_streams: 10_000,
            sse_heartbeat_ms: 15_000,
            background_yield_at: DEFAULT_BACKGROUND_YIELD_AT,
            background_nice: None,
        }
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

/// Starts the app with default test options.
pub async fn spawn_app(db: TestDb) -> TestApp {
    spawn_app_with(db, Options::default()).await
}

/// Starts the app on `db` (fresh, or kept from an earlier run for restart tests).
pub async fn spawn_app_with(db: TestDb, options: Options) -> TestApp {
    let config = ServeConfig {
        host: "127.0.0.1".parse().unwrap(),
        port: 0,
        database: DatabaseConfig {
            database_url: db.url.clone(),
            database_max_connections: 10,
        },
        processing: ProcessingConfig {
            worker_concurrency: options.concurrency,
            processor_url: options
                .processor_url
                .as_deref()
                .map(|url| url.parse().expect("a URL")),
            processor_secret: options.processor_secret.clone().map(Redacted),
            processing_time_ms: Some(options.processing_time_ms),
            lease_timeout_ms: Some(options.lease_ms),
            shutdown_grace_ms: options.grace_ms,
            poll_interval_ms: options.poll_ms,
            processing_timeout_ms: Some(options.processing_timeout_ms),
            processing_failure_rate: options.failure_rate,
            max_attempts: options.max_attempts,
            retry_base_ms: options.retry_base_ms,
            retry_max_ms: options.retry_max_ms,
        },
        connections: ConnectionConfig {
            max_connections: options.max_connections,
            header_read_timeout_ms: options.header_read_timeout_ms,
            body_read_timeout_ms: options.body_read_timeout_ms,
            write_timeout_ms: options.write_timeout_ms,
        },
        events: EventConfig {
            event_retention: Duration::from_secs(30 * 86_400),
            events_nats_url: options.events_nats_url.clone(),
            events_nats_stream: "ORDERS".into(),
            // BACKGROUND_NICE's default for the backend, as in production.
            background_nice: options.background_nice,
            background_yield_at: options.background_yield_at,
        },
        webhooks: WebhookConfig {
            webhook_allow_private_networks: options.webhook_allow_private_networks,
            webhook_timeout_ms: options.webhook_timeout_ms,
            webhook_retry_scale: options.webhook_retry_scale,
            webhook_disable_after: options.webhook_disable_after,
            webhook_concurrency: 64,
        },
        streams: StreamConfig {
            max_streams: options.max_streams,
            sse_heartbeat_ms: options.sse_heartbeat_ms,
            sse_retry_ms: 2_000,
        },
        auth: options.auth,
        requests: RequestConfig {
            body_limit_bytes: 65_536,
            idempotency_ttl: options.idempotency_ttl,
            rate_limit_per_sec: options
                .rate_limit
                .and_then(|(rate, _)| rate.try_into().ok()),
            rate_limit_burst: options
                .rate_limit
                .and_then(|(_, burst)| burst.try_into().ok()),
        },
    };
    config.validate().expect("valid test config");
    let store = db.store().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let shutdown = stop.clone().cancelled_owned();
    let served = tokio::spawn({
        let store = store.clone();
        async move {
            // The processor the configuration names (simulated, or PROCESSOR_URL's),
            // unless the test brings its own.
            match options.processor {
                Some(processor) => {
                    app::run_with_processor(listener, store, processor, &config, shutdown).await
                }
                None => app::run(listener, store, &config, shutdown).await,
            }
        }
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
    /// Creates the sample order (`order_body`); returns its id.
    pub async fn new_order(&self) -> String {
        self.create_order(&order_body()).await["order_id"]
            .as_str()
            .expect("an order id")
            .to_owned()
    }

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

    /// Waits (up to 20 s) until the order has `status`; answers the whole order then.
    pub async fn wait_for_status(&self, id: &str, status: &str) -> Value {
        eventually(
            Duration::from_secs(20),
            &format!("{id} {status}"),
            || async { self.status_of(id).await == status },
        )
        .await;
        self.get_json(&format!("/orders/{id}")).await
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
