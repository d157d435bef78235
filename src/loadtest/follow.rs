//! After the load: following the accepted orders until each is processed, then checking
//! every order's own status and that `/metrics` moved by exactly as much.

use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use serde_json::Value;

use super::{Drain, LoadtestArgs, bar};

/// The service's `GET /metrics`.
pub(super) async fn metrics(
    client: &reqwest::Client,
    args: &LoadtestArgs,
) -> anyhow::Result<Value> {
    let mut request = client.get(format!("{}/metrics", args.url));
    if let Some(token) = &args.token {
        request = request.bearer_auth(token);
    }
    Ok(request.send().await?.error_for_status()?.json().await?)
}

fn settled(metrics: &Value) -> u64 {
    let counts = &metrics["order_counts"];
    counts["Completed"].as_u64().unwrap_or(0) + counts["Failed"].as_u64().unwrap_or(0)
}

/// Follows the accepted orders until every one is Completed or Failed, then checks
/// each order's status and that /metrics moved by exactly as much.
pub(super) async fn follow(
    client: &reqwest::Client,
    args: &LoadtestArgs,
    accepted: &[String],
    before: Option<&Value>,
) -> anyhow::Result<Drain> {
    let started = Instant::now();
    let deadline = started + args.wait_timeout;
    let target = before.map(settled).unwrap_or(0) + accepted.len() as u64;
    let progress = if args.json {
        ProgressBar::hidden()
    } else {
        bar(
            accepted.len() as u64,
            "{elapsed_precise} [{bar:40}] {pos}/{len} processed",
        )
    };
    // /metrics is one cheap read; poll it rather than every order.
    loop {
        let now = metrics(client, args).await.ok();
        let done = now.as_ref().map(settled).unwrap_or(0);
        progress.set_position(done.saturating_sub(target - accepted.len() as u64));
        if done >= target || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    progress.finish_and_clear();
    let (completed, failed) = count_statuses(client, args, accepted).await?;
    let after = metrics(client, args).await.ok();
    let metrics_agree = match (before, &after) {
        (Some(before), Some(after)) => {
            let grew = |key: &str| {
                let count = |m: &Value| m["order_counts"][key].as_u64().unwrap_or(0);
                count(after).saturating_sub(count(before))
            };
            grew("Completed") == completed && grew("Failed") == failed
        }
        _ => false,
    };
    Ok(Drain {
        seconds_after_sending: seconds,
        completed,
        failed,
        metrics_agree,
    })
}

/// Every accepted order's final status, read one by one (the truth, not a count).
async fn count_statuses(
    client: &reqwest::Client,
    args: &LoadtestArgs,
    ids: &[String],
) -> anyhow::Result<(u64, u64)> {
    use futures::StreamExt;
    let statuses: Vec<Option<String>> = futures::stream::iter(ids)
        .map(|id| async move {
            let mut request = client.get(format!("{}/orders/{id}/status", args.url));
            if let Some(token) = &args.token {
                request = request.bearer_auth(token);
            }
            let body: Value = request.send().await.ok()?.json().await.ok()?;
            body["status"].as_str().map(str::to_owned)
        })
        .buffer_unordered(usize::try_from(args.concurrency).unwrap_or(64).min(256))
        .collect()
        .await;
    let count = |wanted: &str| {
        statuses
            .iter()
            .filter(|s| s.as_deref() == Some(wanted))
            .count() as u64
    };
    Ok((count("Completed"), count("Failed")))
}
