//! The relay's lease on the log: one instance relays at a time, holding a lease it
//! renews, saving how far it got, and letting it go on a stop.

use std::time::{Duration, Instant};

use tracing::warn;

use super::{CONSUMER, LEASE, RENEW, Relay};
use crate::domain::now;

/// The relay's place while this instance holds it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Held {
    /// Every event up to here is published.
    pub position: i64,
    /// The position as last saved.
    pub saved_position: i64,
    pub saved_at: Instant,
    pub renewed_at: Instant,
}

impl Relay {
    /// Takes or renews the relay's lease when due; where the relay stands if this
    /// instance holds it. A lease it could not renew for two thirds of its length is
    /// given up here, before another instance may take it.
    pub(super) async fn hold(&self, held: &mut Option<Held>) -> Option<Held> {
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
    pub(super) async fn save(&self, held: &mut Option<Held>) {
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
    pub(super) async fn release(&self, held: &mut Option<Held>) {
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
}
