//! One order's deliveries to one endpoint in a page: sent one after another as first
//! attempts, each once a slot is free, and how they are going, shared with the page.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::{Delivery, OrderEvent, Timestamp, now};
use crate::store::{DeliveryClaim, FinishedAttempt, NextStep};
use crate::webhooks::attempt::attempt;
use crate::webhooks::send::Target;
use crate::webhooks::shared::{Made, Shared};

/// How one order's deliveries to one endpoint in a page are going, shared by the task
/// sending them and the page.
#[derive(Default)]
pub(super) struct ChainState {
    /// The attempts that ended, each with when it started, in the chain's order (all
    /// delivered but the last).
    pub ended: Vec<(FinishedAttempt, Timestamp)>,
    /// The delivery whose attempt is in flight (its place in the chain), and when it
    /// started.
    pub in_flight: Option<(usize, Timestamp)>,
    /// Set when the page stops waiting: no other attempt starts, and one that ends after
    /// it goes to the recorder (the page wrote it as claimed)...
    pub cut: bool,
    /// ...once the page is written: until then it waits here, so that it is never
    /// recorded before its row exists.
    pub written: bool,
    pub late: Option<Made>,
}

/// One order's deliveries to one endpoint in a page, in `seq` order.
pub(super) struct Chain {
    pub deliveries: Vec<Delivery>,
    pub state: Arc<Mutex<ChainState>>,
}

/// What a chain's task needs beside its deliveries.
pub(super) struct Sending {
    pub shared: Arc<Shared>,
    pub events: Arc<HashMap<i64, OrderEvent>>,
    pub target: Arc<Result<Target, String>>,
    /// The page's claim, under which an attempt cut off in flight is written.
    pub token: Uuid,
    /// Most first attempts in flight to one endpoint.
    pub share: usize,
    /// Cancelled when the page stops waiting.
    pub cut: CancellationToken,
}

/// Sends a chain's deliveries one after another, each once a slot is free, until one
/// is not delivered, the endpoint has its share in flight, or the page stops waiting.
pub(super) async fn send_chain(
    sending: Sending,
    chain: Vec<Delivery>,
    state: Arc<Mutex<ChainState>>,
) {
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
        let attempt = attempt(&shared, claim, event, &target).await;
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
