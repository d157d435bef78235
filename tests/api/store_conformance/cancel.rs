//! Cancels racing claims: hundreds of orders, each claimed and cancelled at once from
//! many tasks; every order ends with exactly one winner.

use std::collections::HashSet;
use std::sync::Arc;

use futures::StreamExt;
use order_processor::domain::{EventType, OrderId, OrderStatus};
use order_processor::store::{CancelOutcome, Store};

use super::{LEASE, at, order};
use crate::helpers::{TestDb, on_every_backend};

on_every_backend!(a_cancel_racing_a_claim_has_exactly_one_winner);

const ORDERS: i64 = 300;

async fn a_cancel_racing_a_claim_has_exactly_one_winner(db: TestDb) {
    let store: Arc<dyn Store> = db.store().await;
    let mut ids = Vec::new();
    for n in 0..ORDERS {
        let new = order(n, "racer");
        store.insert(&new).await.unwrap();
        ids.push(new.id);
    }
    // Claimers take a few orders at a time while cancellers go through every order.
    let claimers = (0..4).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut claimed = Vec::new();
            loop {
                let batch = store.claim(3, at(ORDERS + 1), LEASE).await.unwrap();
                if batch.is_empty() {
                    return claimed;
                }
                claimed.extend(batch.into_iter().map(|claim| claim.order.id));
                tokio::task::yield_now().await;
            }
        })
    });
    let claimers: Vec<_> = claimers.collect();
    let outcomes: Vec<(OrderId, CancelOutcome)> = futures::stream::iter(ids.iter().rev().copied())
        .map(|id| {
            let store = store.clone();
            async move { (id, store.cancel(id, None, at(ORDERS + 2)).await.unwrap()) }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut claimed = HashSet::new();
    for claimer in claimers {
        for id in claimer.await.unwrap() {
            assert!(claimed.insert(id), "{id} claimed twice");
        }
    }
    let (mut cancels_won, mut claims_won) = (0, 0);
    for (id, outcome) in outcomes {
        let status = store.status(id).await.unwrap().unwrap();
        let events = store.order_events(id, 0).await.unwrap();
        let types: Vec<EventType> = events.iter().map(|e| e.event_type).collect();
        match outcome {
            CancelOutcome::Cancelled(order) => {
                cancels_won += 1;
                assert_eq!(order.status, OrderStatus::Cancelled);
                assert_eq!(status, OrderStatus::Cancelled, "{id}");
                assert!(!claimed.contains(&id), "{id} cancelled and claimed");
                assert_eq!(types, [EventType::Created, EventType::Cancelled], "{id}");
            }
            CancelOutcome::NotCancellable(OrderStatus::Processing) => {
                claims_won += 1;
                assert_eq!(status, OrderStatus::Processing, "{id}");
                assert!(
                    claimed.contains(&id),
                    "{id} refused a cancel but no one claimed it"
                );
                assert_eq!(types, [EventType::Created, EventType::Processing], "{id}");
            }
            other => panic!("{id}: {other:?}"),
        }
    }
    assert_eq!(cancels_won + claims_won, ORDERS);
    assert_eq!(
        claimed.len() as i64,
        claims_won,
        "every claim was of an uncancelled order"
    );
    assert!(
        cancels_won > 0 && claims_won > 0,
        "both sides won some races: {cancels_won}/{claims_won}"
    );
}
