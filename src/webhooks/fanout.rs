//! The webhooks consumer of the log: for each new event and each enabled endpoint that
//! takes it, one delivery is owed, written in the transaction that moves the consumer
//! past the event, so an event is owed exactly once however instances come and go.
//! One instance at a time does this, under a lease.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::warn;
use uuid::Uuid;

use crate::domain::{Delivery, now};
use crate::store::Store;

/// The consumer's name in the log.
pub const CONSUMER: &str = "webhooks";
/// How long one instance holds the consumer without renewing it.
const LEASE: Duration = Duration::from_secs(30);
/// How often the holder renews its lease, and another instance asks for it.
const RENEW: Duration = Duration::from_secs(5);
/// Events read from the log at once.
const PAGE: usize = 1_000;
/// Most deliveries owed in one transaction (at least one event's, however many
/// endpoints take it): bounds the writer's time and the memory of a page of events
/// times many endpoints.
const MOST_OWED: usize = 5_000;
/// How often the log is read when no wake-up came (one from another instance may be
/// lost while the store reconnects).
const POLL: Duration = Duration::from_millis(500);

/// Owes deliveries until `stop`, waking `senders` whenever it owed some.
pub async fn owe_until_stopped(
    store: Arc<dyn Store>,
    senders: Arc<Notify>,
    stop: CancellationToken,
) {
    let holder = Uuid::new_v4();
    let mut log_changed = store.new_events();
    // Where the consumer stands and when the lease was last renewed, while held here.
    let mut held: Option<(i64, Instant)> = None;
    loop {
        if held.is_none_or(|(_, renewed)| renewed.elapsed() >= RENEW) {
            held = match store.hold_consumer(CONSUMER, holder, now(), LEASE).await {
                Ok(position) => position.map(|p| (p, Instant::now())),
                Err(err) => {
                    warn!(error = %err, "holding the webhooks consumer failed; will retry");
                    held.filter(|(_, renewed)| renewed.elapsed() < LEASE * 2 / 3)
                }
            };
        }
        let Some((position, _)) = held else {
            if pause(&stop, RENEW).await {
                continue;
            }
            return;
        };
        log_changed.borrow_and_update();
        let owed = match owe_next(&*store, holder, position).await {
            Ok(owed) => owed,
            Err(err) => {
                warn!(error = %err, "owing webhook deliveries failed; will retry");
                if pause(&stop, Duration::from_secs(1)).await {
                    continue;
                }
                break;
            }
        };
        match owed {
            Next::Moved { to, deliveries } => {
                held = Some((to, Instant::now()));
                if deliveries > 0 {
                    metrics::counter!("webhook_deliveries_owed_total").increment(deliveries);
                    senders.notify_one();
                }
            }
            Next::Lost => held = None,
            Next::CaughtUp => {
                tokio::select! {
                    // The store gone (only at exit) leaves the poll.
                    Ok(()) = log_changed.changed() => {}
                    () = tokio::time::sleep(POLL) => {}
                    () = stop.cancelled() => break,
                }
            }
        }
    }
    // Let the lease go, so the next instance (or this one, restarted) goes on at once.
    if let Some((position, _)) = held
        && let Err(err) = store
            .advance_consumer(CONSUMER, holder, position, now(), Duration::ZERO)
            .await
    {
        warn!(error = %err, "could not hand the webhooks consumer back; another instance takes it after the lease");
    }
}

enum Next {
    /// Moved past events up to `to`, owing `deliveries`.
    Moved { to: i64, deliveries: u64 },
    /// Nothing new in the log.
    CaughtUp,
    /// Another instance holds the consumer now.
    Lost,
}

/// Owes the deliveries of the next page of events after `position`.
async fn owe_next(
    store: &dyn Store,
    holder: Uuid,
    position: i64,
) -> Result<Next, crate::store::StoreError> {
    let events = store.events_after(position, PAGE).await?;
    if events.is_empty() {
        return Ok(Next::CaughtUp);
    }
    let endpoints = store.endpoints().await?;
    let at = now();
    let (mut deliveries, mut through) = (Vec::new(), position);
    for event in &events {
        let owed: Vec<Delivery> = endpoints
            .iter()
            .filter(|endpoint| endpoint.owes(event))
            .map(|endpoint| Delivery::new(endpoint.id, event, at))
            .collect();
        if !deliveries.is_empty() && deliveries.len() + owed.len() > MOST_OWED {
            break;
        }
        deliveries.extend(owed);
        through = event.position;
    }
    let moved = store
        .enqueue_deliveries(CONSUMER, holder, through, &deliveries, at, LEASE)
        .await?;
    Ok(if moved {
        Next::Moved {
            to: through,
            deliveries: deliveries.len() as u64,
        }
    } else {
        Next::Lost
    })
}

/// Sleeps, or answers `false` at once if a stop comes first.
async fn pause(stop: &CancellationToken, wait: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(wait) => true,
        () = stop.cancelled() => false,
    }
}
