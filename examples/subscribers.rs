//! The benchmark's event-stream load: creates orders at a steady rate and opens, for
//! each, several Server-Sent Events streams of its events (`GET /orders/{id}/events`),
//! which stay open until the order is completed. For every `order.completed` that
//! arrives it records the delay from the event's `occurred_at` (stamped just before
//! its commit) to its arrival here, and prints a JSON summary.
//! Run: `cargo run --release --example subscribers -- http://127.0.0.1:3000 1000 10 200`
//! (base URL, orders, streams per order, orders per second).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

#[derive(Default)]
struct Tally {
    open: AtomicUsize,
    peak_open: AtomicUsize,
    errors: AtomicUsize,
    streams_done: AtomicUsize,
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let base = args
        .get(1)
        .cloned()
        .unwrap_or("http://127.0.0.1:3000".into());
    let orders: usize = args.get(2).map_or(1000, |a| a.parse().unwrap());
    let per_order: usize = args.get(3).map_or(10, |a| a.parse().unwrap());
    let rate: f64 = args.get(4).map_or(200.0, |a| a.parse().unwrap());

    let tally = Arc::new(Tally::default());
    let delays = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 600_000, 3).unwrap(),
    ));
    // One connection per stream: nothing to share while a stream is open.
    let streams = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let posts = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(orders * per_order);
    for n in 0..orders {
        let due = started + Duration::from_secs_f64(n as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let body =
            json!({"user_id": format!("subscriber{n}"), "item_ids": ["a"], "total_amount": 1});
        let created: Value = match posts
            .post(format!("{base}/orders"))
            .json(&body)
            .send()
            .await
        {
            Ok(response) if response.status() == 201 => response.json().await.unwrap(),
            _ => {
                tally.errors.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        let id = created["order_id"].as_str().unwrap().to_owned();
        for _ in 0..per_order {
            let (client, url) = (streams.clone(), format!("{base}/orders/{id}/events"));
            let (tally, delays) = (tally.clone(), delays.clone());
            tasks.push(tokio::spawn(async move {
                follow(&client, &url, &tally, &delays).await;
            }));
        }
    }
    let created_in = started.elapsed();
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(120), task).await;
    }
    let delays = delays.lock().unwrap();
    let summary = json!({
        "orders": orders,
        "streams": orders * per_order,
        "created_in_s": created_in.as_secs_f64(),
        "peak_open_streams": tally.peak_open.load(Ordering::Relaxed),
        "streams_ended": tally.streams_done.load(Ordering::Relaxed),
        "errors": tally.errors.load(Ordering::Relaxed),
        "deliveries": delays.len(),
        "delay_ms": {
            "p50": delays.value_at_quantile(0.5),
            "p99": delays.value_at_quantile(0.99),
            "max": delays.max(),
        },
    });
    println!("{summary}");
}

/// Reads one stream until it ends, recording each completion's delay.
async fn follow(
    client: &reqwest::Client,
    url: &str,
    tally: &Tally,
    delays: &Mutex<Histogram<u64>>,
) {
    let response = client
        .get(url)
        .header("accept", "text/event-stream")
        .send()
        .await;
    let response = match response {
        Ok(response) if response.status() == 200 => response,
        _ => {
            tally.errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let now_open = tally.open.fetch_add(1, Ordering::Relaxed) + 1;
    tally.peak_open.fetch_max(now_open, Ordering::Relaxed);
    let mut events = response.bytes_stream().eventsource();
    let mut completed = false;
    while let Some(event) = events.next().await {
        let Ok(event) = event else {
            tally.errors.fetch_add(1, Ordering::Relaxed);
            break;
        };
        if event.event == "order.completed" {
            let arrived = chrono::Utc::now();
            let data: Value = serde_json::from_str(&event.data).unwrap();
            let occurred =
                chrono::DateTime::parse_from_rfc3339(data["occurred_at"].as_str().unwrap())
                    .unwrap();
            let delay = (arrived - occurred.with_timezone(&chrono::Utc)).num_milliseconds();
            delays.lock().unwrap().record(delay.max(1) as u64).unwrap();
            completed = true;
        }
    }
    tally.open.fetch_sub(1, Ordering::Relaxed);
    if completed {
        tally.streams_done.fetch_add(1, Ordering::Relaxed);
    } else {
        tally.errors.fetch_add(1, Ordering::Relaxed);
    }
}
