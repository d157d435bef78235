//! A real HTTP receiver for the tests of what the service sends out (the HTTP
//! processor's calls): it listens on `127.0.0.1:0`, records every request it gets, and
//! answers each as the test's script says.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::task::JoinHandle;

/// One request as it arrived.
#[derive(Clone, Debug)]
pub struct Call {
    pub at: Instant,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Call {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("header {name}"))
            .to_str()
            .expect("text")
    }
}

/// How to answer one request.
pub enum Reply {
    /// This status, these headers and this body, after `delay`.
    Answer {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
        delay: Duration,
    },
    /// Never answer.
    Hang,
}

impl Reply {
    pub fn status(status: u16, body: impl Into<String>) -> Self {
        Self::Answer {
            status,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        if let Self::Answer { headers, .. } = &mut self {
            headers.push((name, value.into()));
        }
        self
    }

    pub fn after(mut self, wait: Duration) -> Self {
        if let Self::Answer { delay, .. } = &mut self {
            *delay = wait;
        }
        self
    }
}

type Script = dyn Fn(&Call) -> Reply + Send + Sync;

#[derive(Clone)]
struct Shared {
    calls: Arc<Mutex<Vec<Call>>>,
    script: Arc<Script>,
}

pub struct Receiver {
    pub url: String,
    calls: Arc<Mutex<Vec<Call>>>,
    served: JoinHandle<()>,
}

impl Receiver {
    /// Listens at `/orders` and answers with `script`.
    pub async fn start(script: impl Fn(&Call) -> Reply + Send + Sync + 'static) -> Self {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            calls: calls.clone(),
            script: Arc::new(script),
        };
        let app = axum::Router::new()
            .route("/orders", axum::routing::post(answer))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/orders", listener.local_addr().unwrap());
        let served = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, calls, served }
    }

    /// Every request so far, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// The requests so far about one order (by its `Idempotency-Key`).
    pub fn calls_for(&self, order_id: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|call| call.header("idempotency-key") == order_id)
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.served.abort();
    }
}

async fn answer(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let call = Call {
        at: Instant::now(),
        headers,
        body,
    };
    shared.calls.lock().unwrap().push(call.clone());
    match (shared.script)(&call) {
        Reply::Answer {
            status,
            headers,
            body,
            delay,
        } => {
            tokio::time::sleep(delay).await;
            let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
            for (name, value) in headers {
                response
                    .headers_mut()
                    .insert(name, value.parse().expect("a header value"));
            }
            response
        }
        Reply::Hang => std::future::pending().await,
    }
}
