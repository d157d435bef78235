//! The queue: claims (oldest first, limits, never shared), completion and release under the current claim, lease rescue.

use order_processor::domain::{AfterFailure, OrderId, OrderStatus};
use order_processor::store::ClaimOutcome;

use super::{LEASE, at, order, requeued};
use crate::helpers::{TestDb, on_every_backend};

on_every_backend!(
    claim_takes_the_oldest_pending_orders_and_starts_an_attempt,
    claim_respects_its_limit_and_skips_claimed_orders,
    concurrent_claims_never_share_an_order,
    complete_applies_once_under_the_current_claim,
    a_stale_claim_can_neither_complete_nor_release,
    release_returns_the_order_to_the_queue,
    rescue_takes_back_only_expired_leases,
    the_oldest_due_order_is_the_longest_waiting_claimable_one,
);

async fn claim_takes_the_oldest_pending_orders_and_starts_an_attempt(db: TestDb) {
    let store = db.store().await;
    let (old, new) = (order(1, "u"), order(2, "u"));
    store.insert(&new).await.unwrap();
    store.insert(&old).await.unwrap();
    let claims = store.claim(1, at(10_000), LEASE).await.unwrap();
    assert_eq!(claims.len(), 1);
    let claim = &claims[0];
    assert_eq!(claim.order.id, old.id);
    assert_eq!(claim.order.status, OrderStatus::Processing);
    assert_eq!(claim.order.attempts, 1);
    assert_eq!(claim.lease_expires_at, at(40_000));
    let stored = store.get(old.id).await.unwrap().unwrap();
    assert_eq!(stored.status, OrderStatus::Processing);
    assert_eq!(stored.attempts, 1);
    assert_eq!(
        store.status(new.id).await.unwrap(),
        Some(OrderStatus::Pending)
    );
}

async fn claim_respects_its_limit_and_skips_claimed_orders(db: TestDb) {
    let store = db.store().await;
    for n in 0..5 {
        store.insert(&order(n, "u")).await.unwrap();
    }
    let first = store.claim(3, at(10), LEASE).await.unwrap();
    assert_eq!(first.len(), 3);
    let second = store.claim(3, at(20), LEASE).await.unwrap();
    assert_eq!(second.len(), 2);
    assert!(store.claim(3, at(30), LEASE).await.unwrap().is_empty());
    let ids: std::collections::HashSet<_> =
        first.iter().chain(&second).map(|c| c.order.id).collect();
    assert_eq!(ids.len(), 5, "five distinct orders in two claims");
}

async fn concurrent_claims_never_share_an_order(db: TestDb) {
    let store = db.store().await;
    for n in 0..200 {
        store.insert(&order(n, "u")).await.unwrap();
    }
    let claimers = (0..8).map(|_| async {
        let mut mine = Vec::new();
        loop {
            let claims = store.claim(7, at(1_000), LEASE).await.unwrap();
            if claims.is_empty() {
                return mine;
            }
            mine.extend(claims.into_iter().map(|c| c.order.id));
        }
    });
    let all: Vec<OrderId> = futures::future::join_all(claimers)
        .await
        .into_iter()
        .flatten()
        .collect();
    let distinct: std::collections::HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 200);
    assert_eq!(distinct.len(), 200);
}

async fn complete_applies_once_under_the_current_claim(db: TestDb) {
    let store = db.store().await;
    let new = order(1, "u");
    store.insert(&new).await.unwrap();
    let claim = store.claim(1, at(1_000), LEASE).await.unwrap().remove(0);
    assert_eq!(
        store.complete(&claim, None, at(2_500)).await.unwrap(),
        ClaimOutcome::Applied
    );
    assert_eq!(
        store.complete(&claim, None, at(3_000)).await.unwrap(),
        ClaimOutcome::ClaimLost
    );
    let done = store.get(new.id).await.unwrap().unwrap();
    assert_eq!(done.status, OrderStatus::Completed);
    assert_eq!(done.completed_at, Some(at(2_500)));
    assert_eq!(
        store.release(&claim, at(2)).await.unwrap(),
        ClaimOutcome::ClaimLost
    );
    assert!(store.claim(1, at(4_000), LEASE).await.unwrap().is_empty());
}

async fn a_stale_claim_can_neither_complete_nor_release(db: TestDb) {
    let store = db.store().await;
    let new = order(1, "u");
    store.insert(&new).await.unwrap();
    let stale = store.claim(1, at(1), LEASE).await.unwrap().remove(0);
    // The lease runs out; the order is rescued and claimed by someone else.
    assert_eq!(
        store.rescue_expired(at(31_000), 5).await.unwrap(),
        requeued(1)
    );
    let current = store.claim(1, at(31_000), LEASE).await.unwrap().remove(0);
    assert_ne!(current.token, stale.token);
    assert_eq!(current.order.attempts, 2);
    assert_eq!(
        store.complete(&stale, None, at(32_000)).await.unwrap(),
        ClaimOutcome::ClaimLost
    );
    assert_eq!(
        store.release(&stale, at(32_000)).await.unwrap(),
        ClaimOutcome::ClaimLost
    );
    assert_eq!(
        store.status(new.id).await.unwrap(),
        Some(OrderStatus::Processing)
    );
    assert_eq!(
        store.complete(&current, None, at(33_000)).await.unwrap(),
        ClaimOutcome::Applied
    );
    let done = store.get(new.id).await.unwrap().unwrap();
    assert_eq!(done.completed_at, Some(at(33_000)));
}

async fn release_returns_the_order_to_the_queue(db: TestDb) {
    let store = db.store().await;
    let new = order(1, "u");
    store.insert(&new).await.unwrap();
    let claim = store.claim(1, at(1), LEASE).await.unwrap().remove(0);
    assert_eq!(
        store.release(&claim, at(2)).await.unwrap(),
        ClaimOutcome::Applied
    );
    assert_eq!(
        store.status(new.id).await.unwrap(),
        Some(OrderStatus::Pending)
    );
    let again = store.claim(1, at(10), LEASE).await.unwrap().remove(0);
    assert_eq!(again.order.id, new.id);
    assert_eq!(again.order.attempts, 2, "the released attempt still counts");
}

async fn rescue_takes_back_only_expired_leases(db: TestDb) {
    let store = db.store().await;
    let (early, late) = (order(1, "u"), order(2, "u"));
    store.insert(&early).await.unwrap();
    store.insert(&late).await.unwrap();
    store.claim(1, at(10), LEASE).await.unwrap();
    store.claim(1, at(10_000), LEASE).await.unwrap();
    assert_eq!(
        store.rescue_expired(at(30_010), 5).await.unwrap(),
        requeued(0),
        "not yet expired"
    );
    assert_eq!(
        store.rescue_expired(at(30_011), 5).await.unwrap(),
        requeued(1)
    );
    assert_eq!(
        store.status(early.id).await.unwrap(),
        Some(OrderStatus::Pending)
    );
    assert_eq!(
        store.status(late.id).await.unwrap(),
        Some(OrderStatus::Processing)
    );
}

async fn the_oldest_due_order_is_the_longest_waiting_claimable_one(db: TestDb) {
    let store = db.store().await;
    assert_eq!(
        store.overview(at(0)).await.unwrap().oldest_due,
        None,
        "nothing waits"
    );
    let (first, second) = (order(100, "u"), order(200, "u"));
    store.insert(&second).await.unwrap();
    store.insert(&first).await.unwrap();
    assert_eq!(
        store.overview(at(150)).await.unwrap().oldest_due,
        Some(at(100))
    );
    assert_eq!(
        store.overview(at(50)).await.unwrap().oldest_due,
        None,
        "not due yet is not waiting"
    );
    // Claimed, it no longer waits; failed with a backoff, it waits again once due.
    let claims = store.claim(1, at(1_000), LEASE).await.unwrap();
    assert_eq!(claims[0].order.id, first.id);
    assert_eq!(
        store.overview(at(1_000)).await.unwrap().oldest_due,
        Some(at(200))
    );
    store
        .fail(
            &claims[0],
            "boom",
            AfterFailure::RetryAt(at(5_000)),
            at(1_000),
        )
        .await
        .unwrap();
    assert_eq!(
        store.overview(at(4_000)).await.unwrap().oldest_due,
        Some(at(200))
    );
    let claims = store.claim(1, at(4_000), LEASE).await.unwrap();
    assert_eq!(claims[0].order.id, second.id);
    assert_eq!(
        store.overview(at(4_000)).await.unwrap().oldest_due,
        None,
        "backing off"
    );
    assert_eq!(
        store.overview(at(6_000)).await.unwrap().oldest_due,
        Some(at(5_000))
    );
}
