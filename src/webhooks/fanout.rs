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
//! other.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::warn;
use uuid::Uuid;

use super::dispatch::{self, Made, Shared};
use super::send::Target;
use crate::domain::{
    Delivery, DeliveryId, DeliveryStatus, OrderEvent, OrderId, Timestamp, WebhookId, from_millis,
    now,
};
use crate::store::{DeliveryClaim, FinishedAttempt, NextStep, Owed, OwedPage, Store, StoreError};

/// The consumer's name in the log.
pub const CONSUMER: &str = "webhooks";
/// How long one instance holds the consumer without renewing it.
const LEASE: Duration = Duration::from_secs(30);
/// How often the holder renews its lease, and another instance asks for it.
const RENEW: Duration = Duration::from_secs(5);
/// Events read from the log at once.
const PAGE: usize = 1_000;
/// Most deliveries owed in one page (at least one event's, however many endpoints take
/// it): bounds the writer's time and the memory of a page of events times many
/// endpoints.
const MOST_OWED: usize = 5_000;
/// How long a page waits for its first attempts before it is written: an endpoint
/// slower than this costs the others no more than this, and its attempts in flight go
/// on as claimed rows.
const SEND_WAIT: Duration = Duration::from_millis(250);
/// How often the consumer moves along the log while no endpoint is enabled: each move
/// is a write, which the log's every commit would otherwise cause.
const IDLE_MOVE: Duration = Duration::from_millis(250);
/// How often the log is read when no wake-up came (one from another instance may be
/// lost while the store reconnects).
const POLL: Duration = Duration::from_millis(500);

/// Owes deliveries, and makes their first attempts, until `stop`.
pub(super) async fn owe_until_stopped(
    store: Arc<dyn Store>,
    shared: Arc<Shared>,
    disable_after: Duration,
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
        let next = owe_next(&*store, &shared, holder, position, disable_after).await;
        match next {
            Ok(Next::Moved { to, owed }) => {
                held = Some((to, Instant::now()));
                if owed > 0 {
                    metrics::counter!("webhook_deliveries_owed_total").increment(owed);
                }
                if stop.is_cancelled() {
                    break;
                }
            }
            Ok(Next::Lost) => held = None,
            Ok(Next::CaughtUp) => {
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

enum Next {
    /// Moved past events up to `to`, owing `owed` deliveries.
    Moved { to: i64, owed: u64 },
    /// Nothing new in the log.
    CaughtUp,
    /// Another instance holds the consumer now.
    Lost,
}

/// How one order's deliveries to one endpoint in a page are going, shared by the task
/// sending them and the page.
#[derive(Default)]
struct ChainState {
    /// The attempts that ended, each with when it started, in the chain's order (all
    /// delivered but the last).
    ended: Vec<(FinishedAttempt, Timestamp)>,
    /// The delivery whose attempt is in flight (its place in the chain), and when it
    /// started.
    in_flight: Option<(usize, Timestamp)>,
    /// Set when the page stops waiting: no other attempt starts, and one that ends after
    /// it goes to the recorder (the page wrote it as claimed)...
    cut: bool,
    /// ...once the page is written: until then it waits here, so that it is never
    /// recorded before its row exists.
    written: bool,
    late: Option<Made>,
}

/// One order's deliveries to one endpoint in a page, in `seq` order.
struct Chain {
    deliveries: Vec<Delivery>,
    state: Arc<Mutex<ChainState>>,
}

/// Owes the deliveries of the next page of events after `position`, making their
/// first attempts.
async fn owe_next(
    store: &dyn Store,
    shared: &Arc<Shared>,
    holder: Uuid,
    position: i64,
    disable_after: Duration,
) -> Result<Next, StoreError> {
    // With no endpoint enabled, nothing in the log so far is owed to anyone: an event
    // committed before the endpoints were read happened before any endpoint registered
    // after (one owes only what happens once it exists). So the consumer moves to the
    // end without reading the log, and no more often than IDLE_MOVE.
    let end = store.last_position().await?;
    let endpoints = store.endpoints().await?;
    if endpoints.iter().all(|e| e.disabled_at.is_some()) {
        if end <= position {
            return Ok(Next::CaughtUp);
        }
        tokio::time::sleep(IDLE_MOVE).await;
        let page = OwedPage {
            through: end,
            owed: Vec::new(),
            attempts: Vec::new(),
            failing_too_long: now(),
        };
        return Ok(
            if store
                .enqueue_deliveries(CONSUMER, holder, &page, now(), LEASE)
                .await?
            {
                Next::Moved { to: end, owed: 0 }
            } else {
                Next::Lost
            },
        );
    }
    let events = store.events_after(position, PAGE).await?;
    if events.is_empty() {
        return Ok(Next::CaughtUp);
    }
    let at = now();
    let (mut chains, mut count, mut through) = (Vec::<Chain>::new(), 0, position);
    let mut chain_of: HashMap<(OrderId, WebhookId), usize> = HashMap::new();
    for event in &events {
        let owed: Vec<Delivery> = endpoints
            .iter()
            .filter(|endpoint| endpoint.owes(event))
            .map(|endpoint| Delivery::new(endpoint.id, event, at))
            .collect();
        if count > 0 && count + owed.len() > MOST_OWED {
            break;
        }
        count += owed.len();
        through = event.position;
        for delivery in owed {
            let key = (delivery.order_id, delivery.endpoint_id);
            let n = *chain_of.entry(key).or_insert_with(|| {
                chains.push(Chain {
                    deliveries: Vec::new(),
                    state: Arc::default(),
                });
                chains.len() - 1
            });
            chains[n].deliveries.push(delivery);
        }
    }
    let keys: Vec<(OrderId, WebhookId)> = chain_of.keys().copied().collect();
    // An order that already owes an endpoint a delivery: its new ones wait behind it.
    let owing: HashSet<(OrderId, WebhookId)> = if keys.is_empty() {
        HashSet::new()
    } else {
        store.owing(&keys).await?
    };
    let events: Arc<HashMap<i64, OrderEvent>> = Arc::new(
        events
            .into_iter()
            .filter(|e| e.position <= through)
            .map(|e| (e.position, e))
            .collect(),
    );
    let targets: HashMap<WebhookId, Arc<Result<Target, String>>> = endpoints
        .iter()
        .map(|e| (e.id, Arc::new(Target::of(e, at))))
        .collect();
    // A failing endpoint is left to the claimers: they give each endpoint its share.
    let failing: HashSet<WebhookId> = endpoints
        .iter()
        .filter(|e| e.failing_since.is_some())
        .map(|e| e.id)
        .collect();
    let enabled = endpoints.iter().filter(|e| e.disabled_at.is_none()).count();
    let share = shared.share(enabled);
    let token = Uuid::new_v4();
    let cut = CancellationToken::new();
    let mut sending = JoinSet::new();
    for chain in &chains {
        let first = &chain.deliveries[0];
        if owing.contains(&(first.order_id, first.endpoint_id))
            || failing.contains(&first.endpoint_id)
        {
            continue;
        }
        sending.spawn(send_chain(
            Sending {
                shared: shared.clone(),
                events: events.clone(),
                target: targets[&first.endpoint_id].clone(),
                token,
                share,
                cut: cut.clone(),
            },
            chain.deliveries.clone(),
            chain.state.clone(),
        ));
    }
    let deadline = tokio::time::Instant::now() + SEND_WAIT;
    while let Ok(Some(_)) = tokio::time::timeout_at(deadline, sending.join_next()).await {}
    // Chains still waiting for a slot give up theirs; attempts in flight go on in the
    // background, as claimed.
    cut.cancel();
    sending.detach_all();

    let mut page = OwedPage {
        through,
        owed: Vec::with_capacity(count),
        attempts: Vec::new(),
        failing_too_long: at
            - chrono::Duration::from_std(disable_after).unwrap_or(chrono::Duration::MAX),
    };
    for chain in &chains {
        let mut state = chain.state.lock().expect("not poisoned");
        state.cut = true;
        for (n, delivery) in chain.deliveries.iter().enumerate() {
            page.owed
                .push(if let Some((attempt, started)) = state.ended.get(n) {
                    settled(delivery, attempt, *started)
                } else if let Some((_, started)) = state.in_flight.filter(|(m, _)| *m == n) {
                    in_flight(delivery, started, token, shared.lease)
                } else {
                    Owed::unsent(delivery.clone())
                });
        }
        page.attempts
            .extend(state.ended.iter().map(|(attempt, _)| attempt.clone()));
    }
    // Written again on a failure, not sent again: the attempts are made.
    let mut wait = Duration::from_millis(100);
    let moved = loop {
        match store
            .enqueue_deliveries(CONSUMER, holder, &page, at, LEASE)
            .await
        {
            Ok(moved) => break moved,
            Err(err) if wait >= Duration::from_secs(5) => return Err(err),
            Err(err) => {
                warn!(error = %err, "writing a page of webhook deliveries failed; will retry");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    };
    if !moved {
        return Ok(Next::Lost);
    }
    for chain in &chains {
        let mut state = chain.state.lock().expect("not poisoned");
        state.written = true;
        if let Some(made) = state.late.take() {
            let _ = shared.made.send(made);
        }
    }
    let occurred: HashMap<DeliveryId, Timestamp> = page
        .owed
        .iter()
        .map(|o| (o.delivery.id, o.delivery.occurred_at))
        .collect();
    for attempt in &page.attempts {
        dispatch::observe(&Made {
            attempt: attempt.clone(),
            occurred_at: occurred[&attempt.id],
        });
    }
    if page
        .owed
        .iter()
        .any(|o| !o.settled || o.delivery.status == DeliveryStatus::Pending)
    {
        shared.wake.notify_one();
    }
    Ok(Next::Moved {
        to: through,
        owed: page.owed.len() as u64,
    })
}

/// What a chain's task needs beside its deliveries.
struct Sending {
    shared: Arc<Shared>,
    events: Arc<HashMap<i64, OrderEvent>>,
    target: Arc<Result<Target, String>>,
    /// The page's claim, under which an attempt cut off in flight is written.
    token: Uuid,
    /// Most first attempts in flight to one endpoint.
    share: usize,
    /// Cancelled when the page stops waiting.
    cut: CancellationToken,
}

/// Sends a chain's deliveries one after another, each once a slot is free, until one
/// is not delivered, the endpoint has its share in flight, or the page stops waiting.
async fn send_chain(sending: Sending, chain: Vec<Delivery>, state: Arc<Mutex<ChainState>>) {
    let Sending {
        shared,
        events,
        target,
        token,
        share,
        cut,
    } = sending;
    for (n, delivery) in chain.into_iter().enumerate() {
        let slot = tokio::select! {
            slot = shared.slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return,
            },
            () = cut.cancelled() => return,
        };
        let started = now();
        let endpoint = delivery.endpoint_id;
        let flight = {
            let mut state = state.lock().expect("not poisoned");
            if state.cut {
                return;
            }
            let Some(flight) = shared.take_off(endpoint, share) else {
                // The rest go to the claimers.
                return;
            };
            state.in_flight = Some((n, started));
            flight
        };
        let occurred_at = delivery.occurred_at;
        let event = events.get(&delivery.event_position).cloned();
        let claim = DeliveryClaim {
            delivery: Delivery {
                attempts: 1,
                last_attempt_at: Some(started),
                ..delivery
            },
            token,
        };
        let attempt = dispatch::attempt(&shared, claim, event, &target).await;
        drop(flight);
        drop(slot);
        let mut state = state.lock().expect("not poisoned");
        state.in_flight = None;
        if state.cut {
            // The page writes it as claimed and in flight: the recorder finishes it,
            // once that row is written.
            let made = Made {
                attempt,
                occurred_at,
            };
            if state.written {
                let _ = shared.made.send(made);
            } else {
                state.late = Some(made);
            }
            return;
        }
        let delivered = attempt.next == NextStep::Delivered;
        state.ended.push((attempt, started));
        if !delivered {
            return;
        }
    }
}

/// A delivery as its first attempt, started at `started`, left it.
fn settled(delivery: &Delivery, attempt: &FinishedAttempt, started: Timestamp) -> Owed {
    let (status, next_attempt_at, finished_at) = match attempt.next {
        NextStep::Delivered => (DeliveryStatus::Delivered, None, Some(attempt.at)),
        NextStep::RetryAt(at) => (DeliveryStatus::Pending, Some(at), None),
        NextStep::GiveUp => (DeliveryStatus::Failed, None, Some(attempt.at)),
    };
    Owed {
        delivery: Delivery {
            status,
            attempts: 1,
            next_attempt_at,
            last_attempt_at: Some(started),
            last_status_code: attempt.status_code,
            last_error: attempt.error.clone(),
            finished_at,
            ..delivery.clone()
        },
        settled: true,
        claim: None,
    }
}

/// A delivery whose first attempt is still in flight: claimed under `token` until the
/// lease after `started` ends.
fn in_flight(delivery: &Delivery, started: Timestamp, token: Uuid, lease: Duration) -> Owed {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 4);
    Owed {
        delivery: Delivery {
            status: DeliveryStatus::Pending,
            attempts: 1,
            next_attempt_at: Some(from_millis(
                started.timestamp_millis().saturating_add(lease_ms),
            )),
            last_attempt_at: Some(started),
            ..delivery.clone()
        },
        settled: true,
        claim: Some(token),
    }
}

/// Sleeps, or answers `false` at once if a stop comes first.
async fn pause(stop: &CancellationToken, wait: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(wait) => true,
        () = stop.cancelled() => false,
    }
}
