//! One page of the log: owes its events' deliveries, makes their first attempts for a
//! while, then writes every delivery of the page once, with how its first attempt
//! went, in the transaction that moves the consumer past the page.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::warn;
use uuid::Uuid;

use super::chain::{Chain, Sending, send_chain};
use super::{CONSUMER, LEASE};
use crate::domain::{
    Delivery, DeliveryId, DeliveryStatus, OrderEvent, OrderId, Timestamp, WebhookEndpoint,
    WebhookId, from_millis, now,
};
use crate::store::{FinishedAttempt, NextStep, Owed, OwedPage, Store, StoreError};
use crate::webhooks::record::observe;
use crate::webhooks::send::targets_of;
use crate::webhooks::shared::{Made, Shared};

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

pub(super) enum Next {
    /// Moved past events up to `to`, owing `owed` deliveries; `at_end` if that was as
    /// far as the log went when it was read.
    Moved { to: i64, owed: u64, at_end: bool },
    /// Nothing new in the log.
    CaughtUp,
    /// Another instance holds the consumer now.
    Lost,
}

/// Owes the deliveries of the next page of events after `position`, making their
/// first attempts. `some_enabled` is what the last page saw of the endpoints, and is
/// brought up to date.
pub(super) async fn owe_next(
    store: &dyn Store,
    shared: &Arc<Shared>,
    holder: Uuid,
    position: i64,
    disable_after: Duration,
    some_enabled: &mut bool,
) -> Result<Next, StoreError> {
    if !*some_enabled {
        if let Some(next) = move_while_none_enabled(store, holder, position).await? {
            return Ok(next);
        }
        *some_enabled = true;
    }
    // While endpoints are enabled, the log is read at once: two round trips fewer on
    // every page and every wake-up than asking first whether any is. The endpoints
    // read below, after the events, are the ones that count either way.
    let events = store.events_after(position, PAGE).await?;
    if events.is_empty() {
        return Ok(Next::CaughtUp);
    }
    // From here on the endpoints as they are now, read after the events: one
    // registered since the events were read is owed what happened once it existed
    // (`owes` compares the times), and an event committed after a change to its
    // endpoint (a new secret, a new URL) goes out as the endpoint is since. If none is
    // enabled any more, the page moves past its events owing nothing, and the next page
    // asks first, as above, while none is.
    let endpoints = store.endpoints().await?;
    *some_enabled = endpoints.iter().any(WebhookEndpoint::is_enabled);
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
    // A short page taken whole: the consumer is at the end of the log as it was read.
    let at_end = events.len() < PAGE && events.last().is_some_and(|e| e.position == through);
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
    let targets = targets_of(&endpoints, at, std::iter::empty());
    // A failing endpoint is left to the claimers: they give each endpoint its share.
    let failing: HashSet<WebhookId> = endpoints
        .iter()
        .filter(|e| e.failing_since.is_some())
        .map(|e| e.id)
        .collect();
    let enabled = endpoints.iter().filter(|e| e.is_enabled()).count();
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
        observe(&Made {
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
        at_end,
    })
}

/// With no endpoint enabled, nothing in the log so far is owed to anyone: an event
/// committed before the endpoints were read happened before any endpoint registered
/// after (one owes only what happens once it exists; so the end is read first). So the
/// consumer moves to the end without reading the log, and no more often than
/// IDLE_MOVE. `None` when some endpoint is enabled.
async fn move_while_none_enabled(
    store: &dyn Store,
    holder: Uuid,
    position: i64,
) -> Result<Option<Next>, StoreError> {
    let end = store.last_position().await?;
    let endpoints = store.endpoints().await?;
    if !endpoints.iter().any(WebhookEndpoint::is_enabled) {
        if end <= position {
            return Ok(Some(Next::CaughtUp));
        }
        tokio::time::sleep(IDLE_MOVE).await;
        let page = OwedPage {
            through: end,
            owed: Vec::new(),
            attempts: Vec::new(),
            failing_too_long: now(),
        };
        return Ok(Some(
            if store
                .enqueue_deliveries(CONSUMER, holder, &page, now(), LEASE)
                .await?
            {
                Next::Moved {
                    to: end,
                    owed: 0,
                    at_end: true,
                }
            } else {
                Next::Lost
            },
        ));
    }
    Ok(None)
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
