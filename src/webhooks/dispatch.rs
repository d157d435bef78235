//! The claimers: claim due deliveries (retries, deliveries that waited behind an
//! earlier event of their order, those sent again by operators, and any whose sender
//! died) and make each attempt within the shared slots (`WEBHOOK_CONCURRENCY` in flight
//! at most), each endpoint no more than its share. A receiver that hangs holds one of
//! those slots until the timeout, never a request of the API.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::attempt::attempt;
use super::send::{current_targets, targets_of};
use super::shared::{Made, Shared};
use crate::domain::{OrderEvent, WebhookId, now};
use crate::store::{DeliveryRooms, Store, StoreError};

/// How often due deliveries are looked for when nothing woke the claimers (retries
/// come due by the clock, and other instances' deliveries are not announced).
const POLL: Duration = Duration::from_millis(100);

/// Claims due deliveries and sends them until `stop`.
pub(super) async fn claim_until_stopped(
    store: Arc<dyn Store>,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    while !stop.is_cancelled() {
        match claim_and_send(&store, &shared).await {
            // Every free slot taken, or an endpoint's whole share: more may be due.
            Ok(round) if round.more => continue,
            Ok(_) => {}
            Err(err) => warn!(error = %err, "claiming webhook deliveries failed; will retry"),
        }
        tokio::select! {
            () = shared.wake.notified() => {}
            () = tokio::time::sleep(POLL) => {}
            () = stop.cancelled() => {}
        }
    }
}

/// What one round of claims found.
#[derive(Debug, Default)]
struct Round {
    /// Whether more may be due at once: every free slot was taken, or some endpoint
    /// took its whole share of them.
    more: bool,
}

/// Claims what is due for the free slots and starts an attempt for each.
async fn claim_and_send(store: &Arc<dyn Store>, shared: &Arc<Shared>) -> Result<Round, StoreError> {
    let free = shared.slots.available_permits();
    if free == 0 {
        return Ok(Round::default());
    }
    let endpoints = store.endpoints().await?;
    let enabled = endpoints.iter().filter(|e| e.is_enabled()).count();
    if enabled == 0 {
        return Ok(Round::default());
    }
    // The slots are taken before the claim, and never more claimed than taken: every
    // delivery claimed starts at once, none waits for a slot while its lease runs out.
    let Ok(mut taken) = shared
        .slots
        .clone()
        .try_acquire_many_owned(u32::try_from(free).unwrap_or(u32::MAX))
    else {
        // The consumer of the log took some meanwhile: again at the next wake-up.
        return Ok(Round::default());
    };
    // Each endpoint gets its part of the free slots, and none more in flight than its
    // share of them all: one with a backlog, or one that hangs, holds up no other.
    let share = shared.share(enabled);
    let fair = (free / enabled).max(1);
    let rooms = DeliveryRooms {
        each: fair,
        except: shared
            .in_flight()
            .into_iter()
            .map(|(endpoint, n)| (endpoint, fair.min(share.saturating_sub(n))))
            .collect(),
    };
    let at = now();
    let claims = store
        .claim_deliveries(&rooms, free, at, shared.lease)
        .await?;
    if claims.is_empty() {
        return Ok(Round::default());
    }
    let mut shares: HashMap<WebhookId, usize> = HashMap::new();
    for claim in &claims {
        *shares.entry(claim.delivery.endpoint_id).or_default() += 1;
    }
    let round = Round {
        more: claims.len() >= free || shares.iter().any(|(endpoint, n)| *n >= rooms.of(*endpoint)),
    };
    let positions: Vec<i64> = claims.iter().map(|c| c.delivery.event_position).collect();
    let events: HashMap<i64, OrderEvent> = store
        .events_at(&positions)
        .await?
        .into_iter()
        .map(|event| (event.position, event))
        .collect();
    // Read after the claim, not with the list above: an attempt made after a change
    // to its endpoint (a rotated secret, a new URL) goes out as the endpoint is now.
    // The claims are taken by then: if that read fails, they go out as the list above
    // has them rather than wait for their leases to run out.
    let claimed = claims.iter().map(|claim| claim.delivery.endpoint_id);
    let targets = match current_targets(store.as_ref(), at, claimed.clone()).await {
        Ok(targets) => targets,
        Err(err) => {
            warn!(error = %err, "reading the webhook endpoints again failed; sending as read before the claim");
            targets_of(&endpoints, at, claimed)
        }
    };
    for claim in claims {
        let target = targets[&claim.delivery.endpoint_id].clone();
        // `None` only if retention took it, which it does not while it is owed.
        let event = events.get(&claim.delivery.event_position).cloned();
        let slot = taken.split(1).expect("a slot for every claim");
        let shared = shared.clone();
        // Counted whatever the share: the room was computed from it, and first
        // attempts that took off since (in slots freed meanwhile) make it over by as
        // many at most, for the length of these attempts.
        let flight = shared.take_off(claim.delivery.endpoint_id, usize::MAX);
        tokio::spawn(async move {
            let occurred_at = claim.delivery.occurred_at;
            let attempt = attempt(&shared, claim, event, &target).await;
            drop(flight);
            drop(slot);
            let _ = shared.made.send(Made {
                attempt,
                occurred_at,
            });
        });
    }
    Ok(round)
}
