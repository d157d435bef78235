//! Each read and write deadline alone: a stalled or trickled body answered 408 and
//! closed (and one that arrives in time, in pieces, accepted), an idle keep-alive
//! connection closed after the header timeout, and a client that never reads its
//! answers closed after the write timeout.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{HALF_BODY, app_with, read_until_closed, socket_address, stall};
use crate::helpers::{TestDb, count_rows, order_body};

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
