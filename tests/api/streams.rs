//! Server-Sent Events read by a real client (`eventsource-stream`, not our own parser):
//! history then live events, resuming with `Last-Event-ID`, the end of an order's
//! stream, heartbeats. (The limits are in `stream_limits.rs`.)

use std::sync::Arc;
use std::time::Duration;

use eventsource_stream::{Event, Eventsource};
use futures::{Stream, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{
    Gate, Options, TestApp, TestDb, eventually, on_every_backend, spawn_app_with,
};

on_every_backend!(
    an_order_stream_sends_its_history_then_live_events_and_ends_after_the_last,
    the_stream_of_a_finished_order_sends_its_history_and_ends,
    reconnecting_with_last_event_id_loses_nothing_and_repeats_nothing,
    an_idle_stream_gets_heartbeats_and_a_retry_line,
);

pub const WAIT: Duration = Duration::from_secs(10);

/// Opens a stream at `path` (after `last_event_id`, if given).
pub async fn open(
    app: &TestApp,
    path: &str,
    last_event_id: Option<&str>,
) -> impl Stream<Item = Event> + Unpin + use<> {
    let mut request = app
        .client
        .get(app.url(path))
        .header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["cache-control"], "no-cache");
    Box::pin(
        response
            .bytes_stream()
            .eventsource()
            .map(|event| event.expect("well-formed SSE")),
    )
}

/// The next `n` events, failing the test if they do not come within `WAIT`.
pub async fn take(stream: &mut (impl Stream<Item = Event> + Unpin), n: usize) -> Vec<Event> {
    let mut events = Vec::new();
    while events.len() < n {
        let next = tokio::time::timeout(WAIT, stream.next()).await;
        match next.expect("the next event in time") {
            Some(event) => events.push(event),
            None => panic!("the stream ended after {events:?}"),
        }
    }
    events
}

pub fn data(event: &Event) -> Value {
    serde_json::from_str(&event.data).unwrap()
}

async fn gated(db: TestDb) -> (TestApp, Arc<Gate>) {
    let gate = Arc::new(Gate::default());
    let options = Options {
        concurrency: 1,
        processor: Some(gate.clone()),
        ..Options::default()
    };
    (spawn_app_with(db, options).await, gate)
}

async fn an_order_stream_sends_its_history_then_live_events_and_ends_after_the_last(db: TestDb) {
    let (app, gate) = gated(db).await;
    let id = app.new_order().await;
    eventually(WAIT, "the order processing", || async {
        app.status_of(&id).await == "Processing"
    })
    .await;
    let mut stream = open(&app, &format!("/orders/{id}/events"), None).await;
    let history = take(&mut stream, 2).await;
    let names: Vec<&str> = history.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names, ["order.created", "order.processing"]);
    for (n, event) in history.iter().enumerate() {
        let body = data(event);
        assert_eq!(
            event.id,
            body["position"].to_string(),
            "id: is the position"
        );
        assert_eq!(body["type"], event.event);
        assert_eq!(body["seq"], n + 1);
        assert_eq!(body["order_id"], id.as_str());
    }

    gate.open();
    let live = take(&mut stream, 1).await;
    assert_eq!(live[0].event, "order.completed");
    assert_eq!(data(&live[0])["data"]["status"], "Completed");
    let end = tokio::time::timeout(WAIT, stream.next()).await;
    assert!(
        matches!(end, Ok(None)),
        "the stream ends after the last event"
    );
}

async fn the_stream_of_a_finished_order_sends_its_history_and_ends(db: TestDb) {
    let (app, _gate) = gated(db).await;
    app.new_order().await; // the one the worker holds
    let id = app.new_order().await;
    let cancelled = app
        .client
        .post(app.url(&format!("/orders/{id}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);
    let mut stream = open(&app, &format!("/orders/{id}/events"), None).await;
    let all: Vec<Event> = tokio::time::timeout(WAIT, (&mut stream).collect::<Vec<_>>())
        .await
        .expect("the stream ends");
    let names: Vec<&str> = all.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names, ["order.created", "order.cancelled"]);
    // Resuming after the last event: nothing more will come, and 204 says so (a
    // browser's EventSource stops reconnecting on it).
    let resumed = app
        .client
        .get(app.url(&format!("/orders/{id}/events")))
        .header("accept", "text/event-stream")
        .header("last-event-id", &all[1].id)
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 204);
}

async fn reconnecting_with_last_event_id_loses_nothing_and_repeats_nothing(db: TestDb) {
    let app = spawn_app_with(db, Options::default()).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(app.new_order().await);
    }
    app.wait_until_completed(&ids, WAIT).await;
    // Nine events exist; read five, then drop the connection.
    let mut stream = open(&app, "/events", None).await;
    let first = take(&mut stream, 5).await;
    drop(stream);
    // More events commit while the client is away.
    for _ in 0..3 {
        ids.push(app.new_order().await);
    }
    app.wait_until_completed(&ids, WAIT).await;
    let mut resumed = open(&app, "/events", Some(&first[4].id)).await;
    let rest = take(&mut resumed, 13).await;
    // And events committed after the reconnect arrive live.
    ids.push(app.new_order().await);
    let live = take(&mut resumed, 3).await;
    let names: Vec<&str> = live.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        names,
        ["order.created", "order.processing", "order.completed"]
    );

    let seen: Vec<i64> = first
        .iter()
        .chain(&rest)
        .chain(&live)
        .map(|e| e.id.parse().unwrap())
        .collect();
    let feed = app.get_json("/events?limit=1000").await;
    let stored: Vec<i64> = feed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["position"].as_i64().unwrap())
        .collect();
    assert_eq!(seen, stored, "every event once, in position order");
}

async fn an_idle_stream_gets_heartbeats_and_a_retry_line(db: TestDb) {
    let app = spawn_app_with(
        db,
        Options {
            sse_heartbeat_ms: 100,
            ..Options::default()
        },
    )
    .await;
    // Raw bytes: comment lines are invisible to an SSE client, by design.
    let address = app.address.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    socket
        .write_all(
            format!("GET /events HTTP/1.1\r\nhost: {address}\r\naccept: text/event-stream\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut received = Vec::new();
    let _ = tokio::time::timeout(Duration::from_millis(700), async {
        let mut buffer = [0u8; 1024];
        loop {
            let n = socket.read(&mut buffer).await.unwrap();
            if n == 0 {
                break;
            }
            received.extend_from_slice(&buffer[..n]);
        }
    })
    .await;
    let text = String::from_utf8(received).unwrap();
    assert!(text.contains("retry: 2000\n\n"), "{text}");
    let beats = text.matches(": keep-alive\n\n").count();
    assert!(
        (3..=8).contains(&beats),
        "{beats} heartbeats in 700 ms: {text}"
    );
}
