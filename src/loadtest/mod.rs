//! `order-processor loadtest`: drives a running service over HTTP, measures latency
//! with an HDR histogram, verifies every answer, and optionally follows the orders
//! until they are processed.

mod follow;
mod report;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

pub use report::{Drain, Summary};

use follow::{follow, metrics};

use crate::config::parse_duration;

/// What to send, how fast, and what to check.
#[derive(Debug, Clone, Args)]
pub struct LoadtestArgs {
    /// The service's base URL.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    pub url: String,

    /// How many orders to create (ignored with --duration).
    #[arg(long, default_value_t = 1000)]
    pub orders: u64,

    /// Requests in flight at once.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub concurrency: u64,

    /// Orders per second to aim for, spread evenly, instead of as fast as possible.
    #[arg(long)]
    pub rate: Option<f64>,

    /// Send for this long (a number with s, m, h or d) instead of a fixed number of orders.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Then follow the orders until all are Completed or Failed, and report the drain.
    #[arg(long)]
    pub wait_completed: bool,

    /// Give up following the orders after this long.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub wait_timeout: Duration,

    /// A bearer token to send, when the service requires one (an admin token lets the
    /// drain check read /metrics).
    #[arg(long, env = "LOADTEST_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What the senders share.
struct Shared {
    client: reqwest::Client,
    args: LoadtestArgs,
    next: AtomicU64,
    started: Instant,
    latencies: Mutex<Histogram<u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
    accepted: Mutex<Vec<String>>,
    distinct: Mutex<HashSet<String>>,
    mismatches: AtomicU64,
    progress: ProgressBar,
}

/// Runs the load test; `Ok(summary)` even when requests failed (the summary says so).
pub async fn run(args: LoadtestArgs) -> anyhow::Result<Summary> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(usize::try_from(args.concurrency).unwrap_or(usize::MAX))
        .timeout(Duration::from_secs(30))
        .build()?;
    let before = metrics(&client, &args).await.ok();
    let progress = match (args.json, args.duration) {
        (true, _) => ProgressBar::hidden(),
        (false, Some(duration)) => bar(duration.as_secs(), "{elapsed_precise} [{bar:40}] {pos}s"),
        (false, None) => bar(
            args.orders,
            "{elapsed_precise} [{bar:40}] {pos}/{len} orders",
        ),
    };
    let shared = Arc::new(Shared {
        client,
        args: args.clone(),
        next: AtomicU64::new(0),
        started: Instant::now(),
        latencies: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3)?),
        errors: Mutex::default(),
        accepted: Mutex::default(),
        distinct: Mutex::default(),
        mismatches: AtomicU64::new(0),
        progress,
    });
    let ticker = args.duration.map(|_| {
        let shared = shared.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                shared
                    .progress
                    .set_position(shared.started.elapsed().as_secs());
            }
        })
    });
    let senders: Vec<_> = (0..args.concurrency)
        .map(|_| tokio::spawn(send_until_done(shared.clone())))
        .collect();
    for sender in senders {
        sender.await?;
    }
    if let Some(ticker) = ticker {
        ticker.abort();
    }
    shared.progress.finish_and_clear();
    let elapsed = shared.started.elapsed();

    let accepted = std::mem::take(&mut *shared.accepted.lock().expect("not poisoned"));
    let drain = if args.wait_completed && !accepted.is_empty() {
        Some(follow(&shared.client, &args, &accepted, before.as_ref()).await?)
    } else {
        None
    };
    let latencies = shared.latencies.lock().expect("not poisoned").clone();
    let errors = shared.errors.lock().expect("not poisoned").clone();
    let distinct = shared.distinct.lock().expect("not poisoned").len();
    Ok(Summary::new(
        &latencies,
        elapsed,
        accepted.len() as u64,
        errors,
        distinct == accepted.len(),
        shared.mismatches.load(Ordering::Relaxed),
        drain,
    ))
}

fn bar(length: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(length);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// One sender: takes the next order number until the count or the time is used up.
async fn send_until_done(shared: Arc<Shared>) {
    let args = &shared.args;
    loop {
        let n = shared.next.fetch_add(1, Ordering::Relaxed);
        match args.duration {
            Some(duration) if shared.started.elapsed() >= duration => return,
            None if n >= args.orders => return,
            _ => {}
        }
        if let Some(rate) = args.rate.filter(|rate| *rate > 0.0) {
            // Order n is due n/rate seconds after the start: an even stagger.
            let due = shared.started + Duration::from_secs_f64(n as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        send_one(&shared, n).await;
        if args.duration.is_none() {
            shared.progress.inc(1);
        }
    }
}

/// The order numbered `n`: deterministic, varied, and valid.
fn order_body(n: u64) -> Value {
    json!({
        "user_id": format!("load-{}", n % 100),
        "item_ids": [format!("item-{n}"), "load"],
        "total_amount": (n % 100_000 + 1) as f64 / 100.0,
    })
}

async fn send_one(shared: &Shared, n: u64) {
    let body = order_body(n);
    let mut request = shared
        .client
        .post(format!("{}/orders", shared.args.url))
        .json(&body);
    if let Some(token) = &shared.args.token {
        request = request.bearer_auth(token);
    }
    let started = Instant::now();
    let result = request.send().await;
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let _ = shared
        .latencies
        .lock()
        .expect("not poisoned")
        .record(micros.max(1));
    let response = match result {
        Ok(response) => response,
        Err(err) => {
            let kind = if err.is_timeout() {
                "timeout"
            } else {
                "connection"
            };
            *shared
                .errors
                .lock()
                .expect("not poisoned")
                .entry(kind.into())
                .or_default() += 1;
            return;
        }
    };
    let status = response.status().as_u16();
    if status != 201 {
        *shared
            .errors
            .lock()
            .expect("not poisoned")
            .entry(status.to_string())
            .or_default() += 1;
        return;
    }
    let Ok(answer) = response.json::<Value>().await else {
        shared.mismatches.fetch_add(1, Ordering::Relaxed);
        return;
    };
    // Amounts compare as numbers: 1.0 sent may come back as 1.
    let same_amount = answer["total_amount"].as_f64() == body["total_amount"].as_f64();
    let echoed = same_amount
        && answer["user_id"] == body["user_id"]
        && answer["item_ids"] == body["item_ids"]
        && answer["status"] == "Pending";
    if !echoed {
        shared.mismatches.fetch_add(1, Ordering::Relaxed);
    }
    let Some(id) = answer["order_id"].as_str() else {
        shared.mismatches.fetch_add(1, Ordering::Relaxed);
        return;
    };
    // Accepted either way: the order exists, so the drain must account for it.
    shared
        .distinct
        .lock()
        .expect("not poisoned")
        .insert(id.to_owned());
    shared
        .accepted
        .lock()
        .expect("not poisoned")
        .push(id.to_owned());
}
