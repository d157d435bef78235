//! The NATS JetStream relay: publishes every event of the log to JetStream, in position
//! order, moving past an event only once JetStream has acknowledged it, and records how
//! far it got as a consumer of the log; one instance relays at a time.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage, stream};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use uuid::Uuid;

use crate::domain::{EventType, OrderEvent, now};
use crate::store::Store;
use crate::wire::EventBody;

/// The relay's name as a consumer of the log.
pub const CONSUMER: &str = "nats";
/// How long one instance holds the relay without renewing it; another takes over after.
const LEASE: Duration = Duration::from_secs(30);
/// How often the holder renews its lease, and another instance asks for it.
const RENEW: Duration = Duration::from_secs(5);
/// Events read from the log at once.
const PAGE: usize = 1_000;
/// Most events awaiting their acknowledgements at once.
const BATCH: usize = 256;
/// How often the position is saved while publishing: a crash republishes at most this
/// much, which JetStream drops as duplicates (its window is two minutes).
const SAVE_EVERY: Duration = Duration::from_millis(200);
/// How often the log is read for new events when the relay has caught up.
const POLL: Duration = Duration::from_millis(50);
/// Every subject the relay publishes on.
pub const SUBJECTS: &str = "orders.events.>";

/// Where the relay publishes.
#[derive(Debug, Clone)]
pub struct NatsSettings {
    /// `nats://host:port`.
    pub url: String,
    /// The JetStream stream, created if missing, covering [`SUBJECTS`].
    pub stream: String,
}

/// The subject of an event: `orders.events.` and its type without `order.`.
pub fn subject(event_type: EventType) -> String {
    let name = event_type.as_str();
    format!(
        "orders.events.{}",
        name.strip_prefix("order.").unwrap_or(name)
    )
}

/// Relays until `stop`: connects (retrying until NATS answers), makes sure the stream
/// exists, then publishes whatever the log holds past the relay's position. A NATS
/// outage only holds the relay back: the API and the workers never wait for it.
pub async fn relay_until_stopped(
    store: Arc<dyn Store>,
    settings: NatsSettings,
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
        jetstream: jetstream::new(client),
        holder: Uuid::new_v4(),
        stop,
    };
    if relay.ensure_stream(&settings.stream).await {
        info!(stream = %settings.stream, "relaying events to NATS JetStream");
        relay.run().await;
    }
}

struct Relay {
    store: Arc<dyn Store>,
    jetstream: jetstream::Context,
    /// This instance, as the holder of the relay's lease.
    holder: Uuid,
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
    /// Creates the stream unless it exists; `false` if stopped first.
    async fn ensure_stream(&self, name: &str) -> bool {
        let config = stream::Config {
            name: name.to_owned(),
            subjects: vec![SUBJECTS.to_owned()],
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        let mut backoff = Backoff::new();
        loop {
            match self.jetstream.get_or_create_stream(config.clone()).await {
                Ok(stream) => return usable(name, &stream.cached_info().config),
                Err(err) => {
                    warn!(error = %err, stream = name, "cannot reach the JetStream stream yet")
                }
            }
            if !self.pause(backoff.next()).await {
                return false;
            }
        }
    }

    async fn run(&self) {
        let mut backoff = Backoff::new();
        // Where the relay stands, while this instance holds it.
        let mut held: Option<Held> = None;
        'relaying: loop {
            let Some(at) = self.hold(&mut held).await else {
                // Another instance relays (or the store is away): ask again soon.
                if !self.pause(RENEW).await {
                    return;
                }
                continue;
            };
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
        }
    }

    /// Takes or renews the relay's lease when due; where the relay stands if this
    /// instance holds it. A lease it could not renew for two thirds of its length is
    /// given up here, before another instance may take it.
    async fn hold(&self, held: &mut Option<Held>) -> Option<Held> {
        if let Some(at) = held
            && at.renewed_at.elapsed() < RENEW
        {
            return Some(*at);
        }
        match self
            .store
            .hold_consumer(CONSUMER, self.holder, now(), LEASE)
            .await
        {
            Ok(Some(stored)) => {
                // A position of our own not saved yet is newer than the stored one.
                let position = held.map_or(stored, |at| at.position.max(stored));
                *held = Some(Held {
                    position,
                    saved_position: stored,
                    saved_at: Instant::now(),
                    renewed_at: Instant::now(),
                });
            }
            Ok(None) => *held = None,
            Err(err) => {
                warn!(error = %err, "holding the relay's place in the log failed");
                if held.is_some_and(|at| at.renewed_at.elapsed() >= LEASE * 2 / 3) {
                    *held = None;
                }
            }
        }
        *held
    }

    /// Saves the position if it moved (renewing the lease); forgets the position if
    /// the lease was lost.
    async fn save(&self, held: &mut Option<Held>) {
        let Some(at) = held.as_mut() else {
            return;
        };
        if at.position == at.saved_position {
            return;
        }
        match self
            .store
            .advance_consumer(CONSUMER, self.holder, at.position, now(), LEASE)
            .await
        {
            Ok(true) => {
                at.saved_position = at.position;
                at.saved_at = Instant::now();
                at.renewed_at = Instant::now();
            }
            Ok(false) => {
                warn!("another instance took over relaying events to NATS");
                *held = None;
            }
            Err(err) => warn!(error = %err, "saving the relay's place in the log failed"),
        }
    }

    /// On a stop: saves the position and lets the lease go, so the next instance (or
    /// this one, restarted) relays at once rather than after the lease.
    async fn release(&self, held: &mut Option<Held>) {
        let Some(at) = held.take() else {
            return;
        };
        if let Err(err) = self
            .store
            .advance_consumer(CONSUMER, self.holder, at.position, now(), Duration::ZERO)
            .await
        {
            warn!(error = %err, "could not hand the relay back; another instance takes it after the lease");
        }
    }

    /// Publishes a batch and waits for every acknowledgement; answers how many
    /// JetStream dropped as duplicates (sent before a crash or a lost acknowledgement).
    async fn publish(&self, batch: &[OrderEvent]) -> Result<u64, async_nats::Error> {
        let mut acks = Vec::with_capacity(batch.len());
        for event in batch {
            let body = serde_json::to_vec(&EventBody::new(event))?;
            let message = PublishMessage::build()
                .payload(body.into())
                .message_id(event.event_id.hyphenated().to_string());
            acks.push(
                self.jetstream
                    .send_publish(subject(event.event_type), message)
                    .await?,
            );
        }
        let mut duplicates = 0;
        for ack in acks {
            duplicates += u64::from(ack.await?.duplicate);
        }
        Ok(duplicates)
    }

    /// Sleeps, or returns `false` at once if a stop comes first.
    async fn pause(&self, wait: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(wait) => true,
            () = self.stop.cancelled() => false,
        }
    }
}

/// Whether an existing stream can take the relay's messages, said loudly when not: its
/// subjects must cover [`SUBJECTS`], and a duplicate window shorter than ours lets a
/// crash's republished events through twice.
fn usable(name: &str, config: &stream::Config) -> bool {
    let covers = config
        .subjects
        .iter()
        .any(|subject| [SUBJECTS, "orders.>", ">"].contains(&subject.as_str()));
    if !covers {
        error!(
            stream = name, subjects = ?config.subjects,
            "the JetStream stream does not take orders.events.>; events are NOT relayed \
             (and retention keeps them): add the subjects, or name another stream in \
             EVENTS_NATS_STREAM"
        );
        return false;
    }
    if config.duplicate_window < Duration::from_secs(120) {
        warn!(
            stream = name,
            duplicate_window_s = config.duplicate_window.as_secs(),
            "the stream's duplicate window is under two minutes: events republished after \
             a crash may be stored twice"
        );
    }
    true
}

/// The relay's place while this instance holds it.
#[derive(Debug, Clone, Copy)]
struct Held {
    /// Every event up to here is published.
    position: i64,
    /// The position as last saved.
    saved_position: i64,
    saved_at: Instant,
    renewed_at: Instant,
}

/// Consecutive runs of events, each at most `BATCH` long and holding at most one event
/// of any order.
fn batches(events: &[OrderEvent]) -> Vec<&[OrderEvent]> {
    let mut batches = Vec::new();
    let (mut start, mut orders) = (0, HashSet::new());
    for (n, event) in events.iter().enumerate() {
        if n - start == BATCH || !orders.insert(event.order_id) {
            batches.push(&events[start..n]);
            start = n;
            orders.clear();
            orders.insert(event.order_id);
        }
    }
    if start < events.len() {
        batches.push(&events[start..]);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Order, event_id};

    /// Events of the sample orders, in this order of orders (each order's seq counted).
    fn events_of(orders: &[&Order]) -> Vec<OrderEvent> {
        let mut seqs = std::collections::HashMap::new();
        orders
            .iter()
            .enumerate()
            .map(|(n, order)| {
                let seq = seqs.entry(order.id).or_insert(0);
                *seq += 1;
                OrderEvent {
                    event_id: event_id(order.id, *seq, order.created_at),
                    order_id: order.id,
                    seq: *seq,
                    event_type: EventType::Created,
                    occurred_at: order.created_at,
                    position: n as i64 + 1,
                    order: (*order).clone(),
                }
            })
            .collect()
    }

    #[test]
    fn a_batch_holds_at_most_one_event_of_an_order_and_keeps_the_log_order() {
        let samples = crate::seed::sample_orders();
        let [a, b, c] = [&samples[0], &samples[1], &samples[2]];
        let events = events_of(&[a, b, a, c, b, b, c]);
        let positions: Vec<Vec<i64>> = batches(&events)
            .iter()
            .map(|batch| batch.iter().map(|e| e.position).collect())
            .collect();
        assert_eq!(positions, [vec![1, 2], vec![3, 4, 5], vec![6, 7]]);
        let many: Vec<&Order> = (0..BATCH + 4).map(|n| &samples[n % 2]).collect();
        let alternating = events_of(&many);
        assert!(batches(&alternating).iter().all(|batch| batch.len() == 2));
        let distinct: Vec<Order> = (0..BATCH + 1)
            .map(|n| Order {
                id: crate::domain::OrderId::new_at(
                    samples[0].created_at + chrono::Duration::milliseconds(n as i64),
                ),
                ..samples[0].clone()
            })
            .collect();
        let refs: Vec<&Order> = distinct.iter().collect();
        let lengths: Vec<usize> = batches(&events_of(&refs)).iter().map(|b| b.len()).collect();
        assert_eq!(lengths, [BATCH, 1]);
    }

    #[test]
    fn subjects_name_the_type_without_its_prefix() {
        assert_eq!(subject(EventType::Completed), "orders.events.completed");
        assert_eq!(
            subject(EventType::AttemptFailed),
            "orders.events.attempt_failed"
        );
    }
}
