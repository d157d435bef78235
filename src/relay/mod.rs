//! The NATS JetStream relay: publishes every event of the log to JetStream, in position
//! order, moving past an event only once JetStream has acknowledged it, and records how
//! far it got as a consumer of the log; one instance relays at a time. The relay's loop
//! is here; its lease on the log in `lease`, what it asks of JetStream in `jetstream`,
//! how events are cut into batches in `batches`.

mod batches;
mod jetstream;
mod lease;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::Context;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

use crate::api_load::{ApiLoad, StepAside};
use crate::store::Store;
use batches::batches;
use lease::Held;

pub use jetstream::{SUBJECTS, subject};

/// The relay's name as a consumer of the log.
pub const CONSUMER: &str = "nats";
/// How long one instance holds the relay without renewing it; another takes over after.
const LEASE: Duration = Duration::from_secs(30);
/// How often the holder renews its lease, and another instance asks for it.
const RENEW: Duration = Duration::from_secs(5);
/// Events read from the log at once.
const PAGE: usize = 1_000;
/// How often the position is saved while publishing: a crash republishes at most this
/// much, which JetStream drops as duplicates (its window is two minutes).
const SAVE_EVERY: Duration = Duration::from_millis(200);
/// How often the log is read for new events when the relay has caught up.
const POLL: Duration = Duration::from_millis(50);

/// Where the relay publishes.
#[derive(Debug, Clone)]
pub struct NatsSettings {
    /// `nats://host:port`.
    pub url: String,
    /// The JetStream stream, created if missing, covering [`SUBJECTS`].
    pub stream: String,
}

/// Relays until `stop`: connects (retrying until NATS answers), makes sure the stream
/// exists, then publishes whatever the log holds past the relay's position. A NATS
/// outage only holds the relay back: the API and the workers never wait for it.
pub async fn relay_until_stopped(
    store: Arc<dyn Store>,
    settings: NatsSettings,
    load: Arc<ApiLoad>,
    stop: CancellationToken,
) {
    let options = async_nats::ConnectOptions::new()
        .name("order-processor")
        .retry_on_initial_connect();
    let client = match async_nats::connect_with_options(settings.url.as_str(), options).await {
        Ok(client) => client,
        Err(err) => {
            warn!(error = %err, "EVENTS_NATS_URL cannot be used; events are not relayed");
            return;
        }
    };
    let relay = Relay {
        store,
        jetstream: async_nats::jetstream::new(client),
        holder: Uuid::new_v4(),
        load,
        stop,
    };
    if relay.ensure_stream(&settings.stream).await {
        info!(stream = %settings.stream, "relaying events to NATS JetStream");
        relay.run().await;
    }
}

struct Relay {
    store: Arc<dyn Store>,
    jetstream: Context,
    /// This instance, as the holder of the relay's lease.
    holder: Uuid,
    /// The API's new orders waiting for their commit: the relay steps aside while there
    /// are many.
    load: Arc<ApiLoad>,
    stop: CancellationToken,
}

/// Waits that grow while something keeps failing.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Self(Duration::from_millis(100))
    }

    fn next(&mut self) -> Duration {
        let wait = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
        wait + wait.mul_f64(fastrand::f64() / 2.0)
    }
}

impl Relay {
    async fn run(&self) {
        let mut backoff = Backoff::new();
        // Where the relay stands, while this instance holds it.
        let mut held: Option<Held> = None;
        let mut aside = StepAside::new(self.load.clone());
        'relaying: loop {
            let Some(at) = self.hold(&mut held).await else {
                // Another instance relays (or the store is away): ask again soon, and
                // start afresh when this one relays again.
                aside.reset();
                if !self.pause(RENEW).await {
                    return;
                }
                continue;
            };
            // A burst of new orders goes first; what this page would publish waits in
            // the log.
            if !aside.before_page(&self.stop).await {
                self.release(&mut held).await;
                return;
            }
            let events = match self.store.events_after(at.position, PAGE).await {
                Ok(events) => events,
                Err(err) => {
                    warn!(error = %err, "reading the event log failed; will retry");
                    if !self.pause(backoff.next()).await {
                        return;
                    }
                    continue;
                }
            };
            if events.is_empty() {
                aside.reset();
                self.save(&mut held).await;
                if !self.pause(POLL).await {
                    self.release(&mut held).await;
                    return;
                }
                continue;
            }
            for batch in batches(&events) {
                // A batch holds at most one event of an order, and the next starts only
                // once all of it is acknowledged: a batch sent again after a failure
                // can never put an order's events out of their order.
                let from = held.map_or(at.position, |h| h.position);
                loop {
                    match self.publish(batch).await {
                        Ok(duplicates) => {
                            metrics::counter!("events_relayed_total").increment(batch.len() as u64);
                            metrics::counter!("events_relay_duplicates_total")
                                .increment(duplicates);
                            break;
                        }
                        Err(err) => {
                            metrics::counter!("events_relay_failures_total").increment(1);
                            warn!(error = %err, "publishing to NATS failed; will retry");
                        }
                    }
                    if !self.pause(backoff.next()).await {
                        self.release(&mut held).await;
                        return;
                    }
                    // Keeps the lease while NATS is away, so nobody else starts
                    // relaying; if it was lost, or someone else moved the relay on
                    // meanwhile, start again from where the relay stands now.
                    match self.hold(&mut held).await {
                        Some(now_at) if now_at.position == from => {}
                        _ => continue 'relaying,
                    }
                }
                backoff = Backoff::new();
                let Some(at) = held.as_mut() else {
                    continue 'relaying;
                };
                at.position = batch.last().map_or(at.position, |event| event.position);
                if at.saved_at.elapsed() >= SAVE_EVERY {
                    self.save(&mut held).await;
                }
            }
            // A short page, all of it published: the relay is at the end of the log.
            if events.len() < PAGE {
                aside.reset();
            }
        }
    }

    /// Sleeps, or returns `false` at once if a stop comes first.
    async fn pause(&self, wait: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(wait) => true,
            () = self.stop.cancelled() => false,
        }
    }
}
