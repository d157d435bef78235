//! What an instance lets event streams hold: at most `MAX_STREAMS` open, a bad
//! `Last-Event-ID` refused, a reader that stops reading cut off, and (on PostgreSQL)
//! events from another instance carried.

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::binary::Server;
use crate::helpers::{Options, TestDb, eventually, on_every_backend, order_body, spawn_app_with};
use crate::streams::{WAIT, data, open, take};

on_every_backend!(
    streams_past_max_streams_are_refused_with_503_until_one_closes,
    a_bad_last_event_id_is_refused,
);

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
    let id = app.new_order().await;
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

/// Creates `count` orders on `server`, 32 at a time, sampling its resident memory
/// meanwhile; returns the peak's growth over the memory before, in MB.
async fn flood(server: &Server, count: usize) -> f64 {
    let before = server.rss_mb();
    let peak = std::sync::Mutex::new(before);
    let creating = futures::stream::iter(0..count).for_each_concurrent(32, |n| async move {
        let body = json!({"user_id": format!("flood{n}"), "item_ids": ["a"], "total_amount": 1});
        server.create_order(&body).await;
    });
    let sampling = async {
        loop {
            let now = server.rss_mb();
            {
                let mut peak = peak.lock().unwrap();
                *peak = peak.max(now);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        () = creating => {}
        () = sampling => {}
    }
    // The last orders' events are still being framed when the creators are answered.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let peak = peak.lock().unwrap().max(server.rss_mb());
    peak - before
}

/// A client that stops reading while thousands of events commit is disconnected, its
/// stream's place freed, and it costs the service no more memory than a client that
/// reads everything, but for the feed's shared backlog of frames, which it holds until
/// it is cut off (4,096 frames, 3-4 MB): far less than the flood's 15,000 events (about
/// 11 MB), which a stream buffering without bound would hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_is_cut_off_without_the_memory_growing() {
    let _flood = crate::helpers::DISK_QUIET.write().await;
    let settings = [
        ("PROCESSING_TIME_MS", "0"),
        ("WORKER_CONCURRENCY", "64"),
        ("WRITE_TIMEOUT_MS", "1000"),
    ];
    // The same flood followed by a client that reads everything: what following costs.
    let control_db = TestDb::sqlite();
    let control = Server::start(&control_db.url, &settings);
    let reading = control
        .client
        .get(format!("{}/events", control.address))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let reader = tokio::spawn(async move {
        let mut bytes = reading.bytes_stream();
        while bytes.next().await.is_some() {}
    });
    let alone = flood(&control, 5_000).await;
    reader.abort();
    drop(control);

    let db = TestDb::sqlite();
    let server = Server::start(&db.url, &settings);
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
    let followed = flood(&server, 5_000).await;
    eventually(
        Duration::from_secs(30),
        "the stalled stream closed",
        || async { open_streams().await == 0.0 },
    )
    .await;
    assert!(
        followed < alone + 7.0,
        "a stalled stream cost {followed:.1} MB against {alone:.1} MB for one that reads"
    );
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
