//! Server-Sent Events read by a real client (`eventsource-stream`, not our own parser):
//! history then live events, resuming with `Last-Event-ID`, the end of an order's
//! stream, heartbeats, the cap on open streams, a slow reader cut off, and events from
//! another instance.

use std::sync::Arc;
use std::time::Duration;

use eventsource_stream::{Event, Eventsource};
use futures::{Stream, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::binary::Server;
use crate::helpers::{
    Gate, Options, TestApp, TestDb, eventually, on_every_backend, order_body, spawn_app_with,
};

on_every_backend!(
    an_order_stream_sends_its_history_then_live_events_and_ends_after_the_last,
    the_stream_of_a_finished_order_sends_its_history_and_ends,
    reconnecting_with_last_event_id_loses_nothing_and_repeats_nothing,
    an_idle_stream_gets_heartbeats_and_a_retry_line,
    streams_past_max_streams_are_refused_with_503_until_one_closes,
    a_bad_last_event_id_is_refused,
);

const WAIT: Duration = Duration::from_secs(10);

/// Opens a stream at `path` (after `last_event_id`, if given).
async fn open(
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
async fn take(stream: &mut (impl Stream<Item = Event> + Unpin), n: usize) -> Vec<Event> {
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

fn data(event: &Event) -> Value {
    serde_json::from_str(&event.data).unwrap()
}

async fn new_order(app: &TestApp) -> String {
    app.create_order(&order_body()).await["order_id"]
        .as_str()
        .unwrap()
        .to_owned()
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
    let id = new_order(&app).await;
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
    new_order(&app).await; // the one the worker holds
    let id = new_order(&app).await;
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
    // Resuming after the last event: nothing more, and the stream ends at once.
    let mut resumed = open(&app, &format!("/orders/{id}/events"), Some(&all[1].id)).await;
    let rest = tokio::time::timeout(WAIT, (&mut resumed).collect::<Vec<_>>())
        .await
        .expect("ends at once");
    assert!(rest.is_empty(), "{rest:?}");
}

async fn reconnecting_with_last_event_id_loses_nothing_and_repeats_nothing(db: TestDb) {
    let app = spawn_app_with(db, Options::default()).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(new_order(&app).await);
    }
    app.wait_until_completed(&ids, WAIT).await;
    // Nine events exist; read five, then drop the connection.
    let mut stream = open(&app, "/events", None).await;
    let first = take(&mut stream, 5).await;
    drop(stream);
    // More events commit while the client is away.
    for _ in 0..3 {
        ids.push(new_order(&app).await);
    }
    app.wait_until_completed(&ids, WAIT).await;
    let mut resumed = open(&app, "/events", Some(&first[4].id)).await;
    let rest = take(&mut resumed, 13).await;
    // And events committed after the reconnect arrive live.
    ids.push(new_order(&app).await);
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

async fn streams_past_max_streams_are_refused_with_503_until_one_closes(db: TestDb) {
    let app = spawn_app_with(
        db,
        Options {
            max_streams: 2,
            ..Options::default()
        },
    )
    .await;
    let first = open(&app, "/events", None).await;
    let _second = open(&app, "/events", None).await;
    let refused = app
        .client
        .get(app.url("/events"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["type"], "/problems/too-many-streams");
    // JSON reads are not streams, and are still answered.
    assert_eq!(app.get("/events").await.status(), 200);
    drop(first);
    eventually(WAIT, "a place freed by the closed stream", || async {
        app.client
            .get(app.url("/events"))
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap()
            .status()
            == 200
    })
    .await;
}

async fn a_bad_last_event_id_is_refused(db: TestDb) {
    let app = spawn_app_with(db, Options::default()).await;
    let id = new_order(&app).await;
    for path in ["/events".to_owned(), format!("/orders/{id}/events")] {
        let response = app
            .client
            .get(app.url(&path))
            .header("accept", "text/event-stream")
            .header("last-event-id", "yesterday")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{path}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], "Last-Event-ID");
    }
}

/// A client that stops reading while thousands of events commit is disconnected, and
/// its stream's place freed; it never holds more than a bounded backlog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_is_cut_off() {
    let db = TestDb::sqlite();
    let server = Server::start(
        &db.url,
        &[
            ("PROCESSING_TIME_MS", "0"),
            ("WORKER_CONCURRENCY", "64"),
            ("WRITE_TIMEOUT_MS", "1000"),
        ],
    );
    let address = server.address.trim_start_matches("http://").to_owned();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    // The client's own buffer is small, as a stalled phone's would be.
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(address.parse().unwrap()).await.unwrap();
    stalled
        .write_all(
            format!("GET /events HTTP/1.1\r\nhost: {address}\r\naccept: text/event-stream\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let open_streams = || async {
        let text = server
            .client
            .get(format!("{}/metrics/prometheus", server.address))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find(|line| line.starts_with("event_streams_open"))
            .and_then(|line| line.split_whitespace().last())
            .map_or(0.0, |n| n.parse::<f64>().unwrap())
    };
    eventually(WAIT, "the stream open", || async {
        open_streams().await == 1.0
    })
    .await;
    // About 10 MB of events, far more than the socket buffers hold.
    futures::stream::iter(0..5_000)
        .for_each_concurrent(32, |n| {
            let server = &server;
            async move {
                let body =
                    json!({"user_id": format!("flood{n}"), "item_ids": ["a"], "total_amount": 1});
                server.create_order(&body).await;
            }
        })
        .await;
    eventually(
        Duration::from_secs(30),
        "the stalled stream closed",
        || async { open_streams().await == 0.0 },
    )
    .await;
    // What the client can still read is bounded, and then the connection is closed.
    let mut drained = 0usize;
    let mut buffer = vec![0u8; 65_536];
    loop {
        let n = tokio::time::timeout(WAIT, stalled.read(&mut buffer))
            .await
            .expect("the server closed the connection")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        drained += n;
    }
    assert!(
        drained < 8 << 20,
        "{drained} bytes were held for the client"
    );
    let server_alive = server.get_json("/healthz").await;
    assert_eq!(server_alive["status"], "ok");
}

/// On PostgreSQL, a stream on one instance carries the events another instance writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_carries_events_written_by_another_instance() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let settings = [("PROCESSING_TIME_MS", "5")];
    let (reader, writer) = (
        Server::start(&db.url, &settings),
        Server::start(&db.url, &settings),
    );
    let response = reader
        .client
        .get(format!("{}/events", reader.address))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = Box::pin(response.bytes_stream().eventsource().map(|e| e.unwrap()));
    let id = writer.create_order(&order_body()).await;
    let events = take(&mut stream, 3).await;
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        names,
        ["order.created", "order.processing", "order.completed"]
    );
    assert!(events.iter().all(|e| data(e)["order_id"] == id.as_str()));
}
