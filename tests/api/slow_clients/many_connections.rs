//! Many held connections: two thousand stalled clients closed by their timeouts while
//! an ordinary client is answered at once, and connections past `MAX_CONNECTIONS`
//! closed at once and served again once others close.

use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use super::{HALF_BODY, HALF_HEADERS, app_with, read_until_closed, socket_address, stall};
use crate::helpers::{TestDb, order_body};

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
