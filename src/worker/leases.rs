//! The claims this pool is working on, and the heartbeat that keeps their leases alive:
//! every third of a lease, one guarded write extends them all, and the job of any claim
//! found lost is told to abandon its attempt.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::domain::{OrderId, Timestamp, now};
use crate::store::{Claim, ClaimOutcome, Store};

/// A claim being worked on, and how its job learns that its lease was lost.
struct Held {
    claim: Claim,
    lost: CancellationToken,
}

/// The claims held by this pool's jobs, by order.
#[derive(Clone, Default)]
pub(super) struct InFlight(Arc<Mutex<HashMap<OrderId, Held>>>);

impl InFlight {
    /// Holds `claim` while its job works; the token is cancelled if a heartbeat finds
    /// its lease lost.
    pub fn hold(&self, claim: &Claim) -> CancellationToken {
        let lost = CancellationToken::new();
        self.lock().insert(
            claim.order.id,
            Held {
                claim: claim.clone(),
                lost: lost.clone(),
            },
        );
        lost
    }

    /// When `claim`'s lease ends, as last extended.
    pub fn lease_end(&self, claim: &Claim) -> Timestamp {
        self.lock()
            .get(&claim.order.id)
            .filter(|held| held.claim.token == claim.token)
            .map_or(claim.lease_expires_at, |held| held.claim.lease_expires_at)
    }

    /// Stops holding `claim` (and only it: the order may be held again under a newer
    /// claim by then).
    pub fn forget(&self, claim: &Claim) {
        let mut held = self.lock();
        if held
            .get(&claim.order.id)
            .is_some_and(|h| h.claim.token == claim.token)
        {
            held.remove(&claim.order.id);
        }
    }

    /// Every claim still held, no longer held: for handing back on a stop.
    pub fn take_all(&self) -> Vec<Claim> {
        self.lock().drain().map(|(_, held)| held.claim).collect()
    }

    fn claims(&self) -> Vec<Claim> {
        self.lock()
            .values()
            .map(|held| held.claim.clone())
            .collect()
    }

    /// Applies a heartbeat's outcomes to the claims it was sent for, where they are
    /// still held under the same token.
    fn heard(&self, claims: &[Claim], outcomes: &[ClaimOutcome], until: Timestamp) {
        let mut held = self.lock();
        for (claim, outcome) in claims.iter().zip(outcomes) {
            let Some(current) = held
                .get_mut(&claim.order.id)
                .filter(|h| h.claim.token == claim.token)
            else {
                continue;
            };
            match outcome {
                ClaimOutcome::Applied => current.claim.lease_expires_at = until,
                ClaimOutcome::ClaimLost => current.lost.cancel(),
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<OrderId, Held>> {
        self.0.lock().expect("not poisoned")
    }
}

/// Every third of `lease`, extends the lease of every claim held, in one write, until
/// `stop`. A heartbeat the store cannot take is tried again at the next one: while the
/// store is down nobody else can take the orders either.
pub(super) async fn keep_leases_until_stopped(
    store: Arc<dyn Store>,
    in_flight: InFlight,
    lease: Duration,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(lease / 3);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return,
        }
        let claims = in_flight.claims();
        if claims.is_empty() {
            continue;
        }
        match store.extend(&claims, now(), lease).await {
            Ok(extended) => in_flight.heard(&claims, &extended.outcomes, extended.until),
            Err(err) => warn!(
                claims = claims.len(), error = %err,
                "could not extend the leases; trying again at the next heartbeat"
            ),
        }
    }
}
