//! Failed attempts: backoff, dead letters, stale claims, rescue of orders out of attempts, operator retry.

use order_processor::domain::{AfterFailure, EventType, OrderId, OrderStatus};
use order_processor::store::{ClaimOutcome, FailedFilter, Rescued, RetryOutcome};

use super::{LEASE, at, order};
use crate::helpers::{TestDb, on_every_backend};

on_every_backend!(
    a_failed_attempt_waits_for_its_retry_time,
    the_last_failed_attempt_dead_letters_the_order,
    a_stale_claim_cannot_record_a_failure,
    rescue_dead_letters_orders_out_of_attempts,
    retry_requeues_only_failed_orders_with_a_fresh_budget,
    bulk_retry_takes_only_the_failed_orders_its_filter_matches,
);

async fn a_failed_attempt_waits_for_its_retry_time(db: TestDb) {
    let store = db.store().await;
    let new = order(1, "u");
    store.insert(&new).await.unwrap();
    let claim = store.claim(1, at(10), LEASE).await.unwrap().remove(0);
    let outcome = store
        .fail(
            &claim,
            "card declined",
            AfterFailure::RetryAt(at(5_000)),
            at(20),
        )
        .await
        .unwrap();
    assert_eq!(outcome, ClaimOutcome::Applied);
    let pending = store.get(new.id).await.unwrap().unwrap();
    assert_eq!(pending.status, OrderStatus::Pending);
    assert_eq!(pending.last_error.as_deref(), Some("card declined"));
    assert_eq!(pending.failed_at, None);
    assert!(
        store.claim(1, at(4_999), LEASE).await.unwrap().is_empty(),
        "not due yet"
    );
    let again = store.claim(1, at(5_000), LEASE).await.unwrap().remove(0);
    assert_eq!(again.order.attempts, 2);
}

async fn the_last_failed_attempt_dead_letters_the_order(db: TestDb) {
    let store = db.store().await;
    let new = order(1, "u");
    store.insert(&new).await.unwrap();
    let claim = store.claim(1, at(10), LEASE).await.unwrap().remove(0);
    store
        .fail(&claim, "out of stock", AfterFailure::DeadLetter, at(30))
        .await
        .unwrap();
    let failed = store.get(new.id).await.unwrap().unwrap();
    assert_eq!(failed.status, OrderStatus::Failed);
    assert_eq!(failed.failed_at, Some(at(30)));
    assert_eq!(failed.last_error.as_deref(), Some("out of stock"));
    assert_eq!(failed.attempts, 1);
    assert!(store.claim(1, at(100_000), LEASE).await.unwrap().is_empty());
    assert_eq!(
        store
            .metrics()
            .await
            .unwrap()
            .counts
            .get(OrderStatus::Failed),
        1
    );
}

async fn a_stale_claim_cannot_record_a_failure(db: TestDb) {
    let store = db.store().await;
    let new = order(1, "u");
    store.insert(&new).await.unwrap();
    let stale = store.claim(1, at(10), LEASE).await.unwrap().remove(0);
    store.rescue_expired(at(40_000), 5).await.unwrap();
    let current = store.claim(1, at(40_000), LEASE).await.unwrap().remove(0);
    let outcome = store
        .fail(&stale, "late", AfterFailure::DeadLetter, at(40_001))
        .await
        .unwrap();
    assert_eq!(outcome, ClaimOutcome::ClaimLost);
    assert_eq!(
        store.complete(&current, None, at(40_002)).await.unwrap(),
        ClaimOutcome::Applied
    );
}

async fn rescue_dead_letters_orders_out_of_attempts(db: TestDb) {
    let store = db.store().await;
    let (first, second) = (order(1, "u"), order(2, "u"));
    store.insert(&first).await.unwrap();
    let claim = store.claim(1, at(10), LEASE).await.unwrap().remove(0);
    store.rescue_expired(at(40_000), 2).await.unwrap();
    store.insert(&second).await.unwrap();
    // The first order's second attempt also dies: it has had its 2 attempts.
    let claims = store.claim(2, at(40_000), LEASE).await.unwrap();
    assert_eq!(claims.len(), 2);
    assert_eq!(claims[0].order.id, claim.order.id);
    let rescued = store.rescue_expired(at(80_000), 2).await.unwrap();
    assert_eq!(
        rescued,
        Rescued {
            requeued: 1,
            dead_lettered: 1
        }
    );
    let dead = store.get(first.id).await.unwrap().unwrap();
    assert_eq!(dead.status, OrderStatus::Failed);
    assert_eq!(dead.failed_at, Some(at(80_000)));
    assert!(dead.last_error.unwrap().contains("lease expired"));
    assert_eq!(
        store.status(second.id).await.unwrap(),
        Some(OrderStatus::Pending)
    );
}

async fn retry_requeues_only_failed_orders_with_a_fresh_budget(db: TestDb) {
    let store = db.store().await;
    let new = order(1, "u");
    store.insert(&new).await.unwrap();
    assert_eq!(
        store.retry_failed(new.id, at(20)).await.unwrap(),
        RetryOutcome::NotFailed(OrderStatus::Pending)
    );
    assert_eq!(
        store
            .retry_failed(OrderId::new_at(at(0)), at(20))
            .await
            .unwrap(),
        RetryOutcome::NotFound
    );
    let claim = store.claim(1, at(10), LEASE).await.unwrap().remove(0);
    store
        .fail(&claim, "boom", AfterFailure::DeadLetter, at(30))
        .await
        .unwrap();
    let RetryOutcome::Retried(retried) = store.retry_failed(new.id, at(50)).await.unwrap() else {
        panic!("a Failed order is retried");
    };
    assert_eq!(retried.status, OrderStatus::Pending);
    assert_eq!(retried.attempts, 0);
    assert_eq!(retried.failed_at, None);
    assert_eq!(retried.last_error.as_deref(), Some("boom"), "history kept");
    assert_eq!(
        store
            .metrics()
            .await
            .unwrap()
            .counts
            .get(OrderStatus::Failed),
        0
    );
    let again = store.claim(1, at(50), LEASE).await.unwrap().remove(0);
    assert_eq!(again.order.attempts, 1);
}

async fn bulk_retry_takes_only_the_failed_orders_its_filter_matches(db: TestDb) {
    let store = db.store().await;
    // Four dead letters (a, a, a, b) failed at 100, 200, 300 and 400 ms; one a Pending.
    let users = ["a", "a", "a", "b"];
    let mut failed = Vec::new();
    for (n, user) in (1..).zip(users) {
        let new = order(n, user);
        store.insert(&new).await.unwrap();
        let claim = store.claim(1, at(n * 100), LEASE).await.unwrap().remove(0);
        store
            .fail(&claim, "boom", AfterFailure::DeadLetter, at(n * 100))
            .await
            .unwrap();
        failed.push(new.id);
    }
    let pending = order(9, "a");
    store.insert(&pending).await.unwrap();

    let filter = |user: Option<&str>, by: Option<i64>| FailedFilter {
        user_id: user.map(str::to_owned),
        failed_by: by.map(at),
    };
    assert_eq!(store.count_failed(&filter(None, None)).await.unwrap(), 4);
    assert_eq!(
        store.count_failed(&filter(Some("a"), None)).await.unwrap(),
        3
    );
    let early_a = filter(Some("a"), Some(250));
    assert_eq!(store.count_failed(&early_a).await.unwrap(), 2);

    // One at a time, oldest first, until none is left.
    for expected in [1, 1, 0] {
        assert_eq!(
            store
                .retry_failed_matching(&early_a, at(1_000), 1)
                .await
                .unwrap(),
            expected
        );
    }
    for (i, id) in failed.iter().enumerate() {
        let stored = store.get(*id).await.unwrap().unwrap();
        if i < 2 {
            assert_eq!(stored.status, OrderStatus::Pending, "order {i}");
            assert_eq!((stored.attempts, stored.failed_at), (0, None));
            let events = store.order_events(*id, 0).await.unwrap();
            assert_eq!(events.last().unwrap().event_type, EventType::Retried);
        } else {
            assert_eq!(stored.status, OrderStatus::Failed, "order {i}");
        }
    }
    assert_eq!(store.count_failed(&early_a).await.unwrap(), 0);
    assert_eq!(store.count_failed(&filter(None, None)).await.unwrap(), 2);
    let untouched = store.get(pending.id).await.unwrap().unwrap();
    assert_eq!(
        (untouched.status, untouched.attempts),
        (OrderStatus::Pending, 0)
    );
}
