//! The webhooks consumer of the log: for each new event and each enabled endpoint that
//! takes it, one delivery is owed. One instance at a time, under a lease, reads the log
//! a page at a time and makes each delivery's first attempt itself (an order's
//! deliveries to an endpoint one after another, orders side by side), then writes every
//! delivery of the page once, with how its first attempt went, in the transaction that
//! moves the consumer past the page: so an event is owed exactly once however instances
//! come and go, and a delivery answered at once costs one row. What the page could not
//! settle goes to the claimers as rows: a delivery that failed (retried on the
//! schedule), those of its order behind it, those of an order that already owes one,
//! and an attempt still in flight when the page stopped waiting (written as claimed, so
//! its answer is recorded, or it is sent again once the claim lapses). An endpoint gets
//! no more first attempts in flight than its share of the slots, and none while it is
//! failing, so a hanging or failing endpoint is left to the claimers and holds up no
//! other. The loop and its lease are here; one page in `page`, one order's deliveries
//! to one endpoint in `chain`.

mod chain;
mod page;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::warn;
use uuid::Uuid;

use crate::api_load::{ApiLoad, StepAside};
use crate::domain::now;
use crate::store::Store;
use crate::webhooks::shared::Shared;
use page::{Next, owe_next};

/// The consumer's name in the log.
pub const CONSUMER: &str = "webhooks";
/// How long one instance holds the consumer without renewing it.
const LEASE: Duration = Duration::from_secs(30);
/// How often the holder renews its lease, and another instance asks for it.
const RENEW: Duration = Duration::from_secs(5);
/// How often the log is read when no wake-up came (one from another instance may be
/// lost while the store reconnects).
const POLL: Duration = Duration::from_millis(500);

/// Owes deliveries, and makes their first attempts, until `stop`.
pub(super) async fn owe_until_stopped(
    store: Arc<dyn Store>,
    shared: Arc<Shared>,
    disable_after: Duration,
    load: Arc<ApiLoad>,
    stop: CancellationToken,
) {
    let holder = Uuid::new_v4();
    let mut log_changed = store.new_events();
    let mut aside = StepAside::new(load);
    // Where the consumer stands and when the lease was last renewed, while held here.
    let mut held: Option<(i64, Instant)> = None;
    // Whether the last page saw an enabled endpoint (then the next reads the log at once).
    let mut some_enabled = false;
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
            // Not this instance's to read: when it is again, it starts afresh.
            aside.reset();
            if pause(&stop, RENEW).await {
                continue;
            }
            return;
        };
        // A burst of new orders goes first; what this page would send waits in the log.
        if !aside.before_page(&stop).await {
            break;
        }
        log_changed.borrow_and_update();
        let next = owe_next(
            &*store,
            &shared,
            holder,
            position,
            disable_after,
            &mut some_enabled,
        )
        .await;
        match next {
            Ok(Next::Moved { to, owed, at_end }) => {
                held = Some((to, Instant::now()));
                if at_end {
                    aside.reset();
                }
                if owed > 0 {
                    metrics::counter!("webhook_deliveries_owed_total").increment(owed);
                }
                if stop.is_cancelled() {
                    break;
                }
            }
            Ok(Next::Lost) => {
                held = None;
                aside.reset();
            }
            Ok(Next::CaughtUp) => {
                aside.reset();
                tokio::select! {
                    // The store gone (only at exit) leaves the poll.
                    Ok(()) = log_changed.changed() => {}
                    () = tokio::time::sleep(POLL) => {}
                    () = stop.cancelled() => break,
                }
            }
            Err(err) => {
                warn!(error = %err, "owing webhook deliveries failed; will retry");
                if !pause(&stop, Duration::from_secs(1)).await {
                    break;
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

/// Sleeps, or answers `false` at once if a stop comes first.
async fn pause(stop: &CancellationToken, wait: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(wait) => true,
        () = stop.cancelled() => false,
    }
}
