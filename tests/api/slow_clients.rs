//! Clients that hold connections without finishing a request: stalled headers and
//! bodies are timed out and closed, and the number of open connections is capped,
//! while ordinary clients are still answered; clients that hang up mid-request leave
//! nothing behind.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use order_processor::domain::OrderId;
use serde_json::Value;

use crate::helpers::{
    Options, TestApp, TestDb, count_rows, on_every_backend, order_body, spawn_app, spawn_app_with,
};

fn socket_address(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_owned()
}

/// Opens a connection and sends `bytes`: the start of a request it never finishes.
async fn stall(address: &str, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    stream
}

/// Headers cut off before their blank line.
const HALF_HEADERS: &[u8] = b"POST /orders HTTP/1.1\r\nHost: test\r\nContent-Type: applic";

/// Complete headers promising 200 bytes of body, and the first few of them.
const HALF_BODY: &[u8] =
    b"POST /orders HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
Content-Length: 200\r\n\r\n{\"user_id\": \"u1\", ";

/// Reads until the server closes the connection (end of stream or reset), within
/// `limit`; returns what it sent, or `None` if it was still open.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| received)
}

async fn app_with(db: TestDb, edit: impl FnOnce(&mut Options)) -> TestApp {
    let mut options = Options::default();
    edit(&mut options);
    spawn_app_with(db, options).await
}

#[tokio::test]
async fn a_body_that_stalls_is_answered_408_in_the_problem_shape_and_closed() {
    let app = app_with(TestDb::sqlite(), |o| o.body_read_timeout_ms = 300).await;
    let started = Instant::now();
    let mut stream = stall(&socket_address(&app), HALF_BODY).await;

    let answer = read_until_closed(&mut stream, Duration::from_secs(10))
        .await
        .expect("closed by the body timeout");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "not before the timeout"
    );
    let answer = String::from_utf8(answer).expect("text");
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(
        lower.contains("content-type: application/problem+json"),
        "{answer}"
    );
    assert!(lower.contains("connection: close"), "{answer}");
    let body = &answer[answer.find("\r\n\r\n").expect("a body") + 4..];
    let problem: serde_json::Value = serde_json::from_str(body).expect("problem JSON");
    assert_eq!(problem["status"], 408);
    assert_eq!(problem["type"], "/problems/request-timeout");
    assert_eq!(
        count_rows(&app.db.url, "SELECT COUNT(*) FROM orders").await,
        0
    );
}

#[tokio::test]
async fn a_body_trickled_slower_than_declared_is_timed_out_though_bytes_keep_coming() {
    let app = app_with(TestDb::sqlite(), |o| o.body_read_timeout_ms = 400).await;
    let started = Instant::now();
    let stream = stall(&socket_address(&app), HALF_BODY).await;
    let (mut reader, mut writer) = stream.into_split();
    // Read all along, so the answer is taken before the server's close can reset
    // the connection under bytes it never read.
    let reading = tokio::spawn(async move {
        let mut received = Vec::new();
        let _ = reader.read_to_end(&mut received).await;
        (received, started.elapsed())
    });
    // A byte every 50 ms: never idle long, never finished.
    for _ in 0..100 {
        if reading.is_finished() || writer.write_all(b" ").await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (received, closed_after) = tokio::time::timeout(Duration::from_secs(10), reading)
        .await
        .expect("closed")
        .expect("reader");
    let answer = String::from_utf8_lossy(&received);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(
        closed_after >= Duration::from_millis(400),
        "{closed_after:?}"
    );
    assert!(closed_after < Duration::from_secs(3), "{closed_after:?}");
}

#[tokio::test]
async fn a_body_that_arrives_in_time_in_pieces_is_accepted() {
    let app = app_with(TestDb::sqlite(), |o| o.body_read_timeout_ms = 2_000).await;
    let body = order_body().to_string();
    let head = format!(
        "POST /orders HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut stream = stall(&socket_address(&app), head.as_bytes()).await;
    for piece in body.as_bytes().chunks(8) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        stream.write_all(piece).await.expect("write");
    }
    let answer = read_until_closed(&mut stream, Duration::from_secs(10))
        .await
        .expect("answered and closed");
    let answer = String::from_utf8(answer).expect("text");
    assert!(answer.starts_with("HTTP/1.1 201 "), "{answer}");
}

#[tokio::test]
async fn stalled_clients_are_closed_by_the_timeouts_while_others_are_answered_at_once() {
    let _timed = crate::helpers::DISK_QUIET.read().await;
    const EACH: usize = 1_000;
    // Two sockets per connection in this process (client and server side).
    let limit = rlimit::increase_nofile_limit(u64::MAX).expect("raise the open-file limit");
    assert!(
        limit >= 4 * EACH as u64 + 256,
        "open-file limit {limit} too low"
    );
    let timeout = Duration::from_millis(2_000);
    let app = app_with(TestDb::sqlite(), |o| {
        o.header_read_timeout_ms = timeout.as_millis() as u64;
        o.body_read_timeout_ms = timeout.as_millis() as u64;
    })
    .await;
    let address = socket_address(&app);
    // Warm the ordinary client's connection and the database.
    app.create_order(&order_body()).await;

    // (stream, when it was opened, whether its headers were complete)
    let mut stalled = Vec::with_capacity(2 * EACH);
    for i in 0..EACH {
        // Stalled in the headers: half of them silent from the start.
        let headers: &[u8] = if i % 2 == 0 { b"" } else { HALF_HEADERS };
        stalled.push((stall(&address, headers).await, Instant::now(), false));
        stalled.push((stall(&address, HALF_BODY).await, Instant::now(), true));
    }
    let opened = stalled[0].1.elapsed();
    assert!(
        opened < timeout / 2,
        "opening took {opened:?}; the test needs it quick"
    );

    // Answered as if nothing were held: each within 100 ms (a server held up by
    // stalled clients would answer only after their timeouts).
    for _ in 0..5 {
        let asked = Instant::now();
        let created = app.create_order(&order_body()).await;
        let posted = asked.elapsed();
        let id = created["order_id"].as_str().expect("id");
        let asked = Instant::now();
        app.get_json(&format!("/orders/{id}")).await;
        let got = asked.elapsed();
        assert!(
            posted < Duration::from_millis(100) && got < Duration::from_millis(100),
            "POST took {posted:?} and GET {got:?} beside {} stalled connections",
            2 * EACH
        );
    }

    let closes = stalled
        .into_iter()
        .map(|(mut stream, opened, had_headers)| async move {
            let answer = read_until_closed(&mut stream, Duration::from_secs(30)).await;
            (answer, opened.elapsed(), had_headers)
        });
    for (answer, held, had_headers) in futures::future::join_all(closes).await {
        let answer = answer.expect("closed by its timeout");
        // Timers fire on the millisecond; allow for the clock's rounding.
        assert!(
            held >= timeout - Duration::from_millis(5),
            "closed after {held:?}"
        );
        if had_headers {
            assert!(answer.starts_with(b"HTTP/1.1 408 "), "{answer:?}");
        }
    }
}

#[tokio::test]
async fn connections_past_max_connections_are_closed_at_once_and_served_again_later() {
    let app = app_with(TestDb::sqlite(), |o| o.max_connections = 10).await;
    let address = socket_address(&app);
    let held: Vec<TcpStream> =
        futures::future::join_all((0..10).map(|_| stall(&address, HALF_HEADERS))).await;
    // The accept loop takes them in order; give it a moment to have taken all ten.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut extra = stall(&address, b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n").await;
    let answer = read_until_closed(&mut extra, Duration::from_secs(2))
        .await
        .expect("closed at once, not queued");
    assert!(answer.is_empty(), "no answer past the cap: {answer:?}");

    drop(held);
    let mut served = false;
    for _ in 0..50 {
        let mut again = stall(
            &address,
            b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
        )
        .await;
        let answer = read_until_closed(&mut again, Duration::from_secs(2)).await;
        if answer.is_some_and(|a| a.starts_with(b"HTTP/1.1 200 ")) {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "answered again once the held connections closed");
    let exposition = app.get("/metrics/prometheus").await.text().await.unwrap();
    let refused = exposition
        .lines()
        .find_map(|line| line.strip_prefix("http_connections_refused_total "))
        .and_then(|count| count.trim().parse::<u64>().ok());
    assert!(refused.is_some_and(|n| n >= 1), "counted: {refused:?}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let app = app_with(TestDb::sqlite(), |o| o.header_read_timeout_ms = 500).await;
    let mut stream = stall(
        &socket_address(&app),
        b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n",
    )
    .await;
    let mut buffer = [0u8; 1024];
    let n = stream.read(&mut buffer).await.expect("an answer");
    assert!(
        buffer[..n].starts_with(b"HTTP/1.1 200 "),
        "kept alive after it"
    );
    let answered = Instant::now();
    read_until_closed(&mut stream, Duration::from_secs(10))
        .await
        .expect("closed while idle");
    let idle = answered.elapsed();
    assert!(
        idle >= Duration::from_millis(450),
        "not before the timeout: {idle:?}"
    );
}

#[tokio::test]
async fn a_client_that_never_reads_its_answers_is_closed_after_the_write_timeout() {
    let app = app_with(TestDb::sqlite(), |o| o.write_timeout_ms = 300).await;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    // A small receive window, so the server's writes have to wait soon.
    socket.set_recv_buffer_size(4096).expect("buffer size");
    let stream = socket
        .connect(socket_address(&app).parse().expect("address"))
        .await
        .expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    // Pipelined requests, far more answers than the buffers hold (the kernel may give
    // the server's side of the connection a send buffer of several megabytes), none of
    // them read.
    let sending = tokio::spawn(async move {
        let request = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";
        for _ in 0..100_000 {
            if writer.write_all(request).await.is_err() {
                return;
            }
        }
        // Keep the sending side open: dropping it would tell the server we are done.
        std::future::pending::<()>().await;
        drop(writer);
    });
    // Long enough for the server to fill its send buffer (it may be megabytes, which
    // take a debug build on a shared runtime more than a second) and wait out the
    // timeout after it.
    tokio::time::sleep(Duration::from_millis(4_000)).await;
    // Reading now drains what was sent before the close, then ends: without the
    // timeout the server would still be answering (and the sender still sending).
    let drained = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(drained.is_ok(), "the connection was still open");
    sending.abort();
}

on_every_backend!(clients_that_hang_up_mid_request_leave_every_connection_usable);

/// A client that hangs up while its request waits on the database drops the request's
/// work wherever it is. On PostgreSQL that once left a pooled connection inside a
/// transaction (sqlx 0.8 cannot be cancelled safely inside `BEGIN`): its next users'
/// statements then failed ("current transaction is aborted") or were answered and
/// never committed. Hundreds of keyed `POST`s cut off at spread-out moments, then every
/// connection must serve ordinary requests, and every order answered 201 must be
/// committed (seen by a connection of another pool).
async fn clients_that_hang_up_mid_request_leave_every_connection_usable(db: TestDb) {
    let app = spawn_app(db).await;
    let store = app.db.store().await;
    let impatient = reqwest::Client::new();
    for wave in 0..40u64 {
        let mut calls = tokio::task::JoinSet::new();
        for n in 0..64u64 {
            let request = impatient
                .post(app.url("/orders"))
                .header("Idempotency-Key", format!("hang-up-{wave}-{n}"))
                .json(&order_body())
                // From 0.1 to 6.4 ms: before, during and after each step of the insert.
                .timeout(Duration::from_micros(100 * ((n * 37 + wave * 11) % 64 + 1)));
            calls.spawn(request.send());
        }
        calls.join_all().await;
        // A connection left in a transaction is mended by the next transaction that
        // happens to take it, so the plain requests go after every wave.
        for _ in 0..10 {
            let created = app.post_order(&order_body()).await;
            assert_eq!(created.status(), 201, "{:?}", created.text().await);
            let id: Value = created.json().await.unwrap();
            let id = OrderId::from_uuid(id["order_id"].as_str().unwrap().parse().unwrap());
            assert!(
                store.get(id).await.unwrap().is_some(),
                "an order answered 201 is not committed"
            );
            let metrics = app.get("/metrics").await;
            assert_eq!(metrics.status(), 200, "{:?}", metrics.text().await);
        }
    }
}
