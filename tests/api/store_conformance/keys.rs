//! Idempotency keys: stored with their order in one transaction, expired and pruned.

use order_processor::domain::Order;
use order_processor::store::{IdempotentResponse, KeyedInsert};

use super::{at, order};
use crate::helpers::{TestDb, on_every_backend};

on_every_backend!(
    a_keyed_order_and_its_key_are_stored_together_once,
    expired_keys_are_replaced_and_pruned,
    keyed_orders_at_once_are_each_answered_for_their_own_key,
);

pub fn keyed(order: &Order, key: &str, created_ms: i64) -> IdempotentResponse {
    IdempotentResponse {
        scope: "alice".into(),
        key: key.into(),
        fingerprint: format!("fp-{}", order.id),
        order_id: order.id,
        status: 201,
        body: format!("{{\"order_id\":\"{}\"}}", order.id),
        created_at: at(created_ms),
    }
}

async fn a_keyed_order_and_its_key_are_stored_together_once(db: TestDb) {
    let store = db.store().await;
    let (first, second) = (order(1, "alice"), order(2, "alice"));
    let response = keyed(&first, "k-1", 1);
    let inserted = store.insert_keyed(&first, &response, at(0)).await.unwrap();
    assert_eq!(inserted, KeyedInsert::Inserted);
    assert_eq!(
        store.find_keyed("alice", "k-1", at(0)).await.unwrap(),
        Some(response)
    );
    assert!(store.get(first.id).await.unwrap().is_some());

    // The same key again: nothing of the second order may be written.
    let taken = store
        .insert_keyed(&second, &keyed(&second, "k-1", 2), at(0))
        .await
        .unwrap();
    assert_eq!(taken, KeyedInsert::KeyTaken);
    assert_eq!(store.get(second.id).await.unwrap(), None);
    assert_eq!(store.metrics().await.unwrap().counts.total(), 1);
    // Keys are per scope.
    assert_eq!(store.find_keyed("bob", "k-1", at(0)).await.unwrap(), None);
}

async fn expired_keys_are_replaced_and_pruned(db: TestDb) {
    let store = db.store().await;
    let (first, second) = (order(1, "alice"), order(2, "alice"));
    store
        .insert_keyed(&first, &keyed(&first, "k", 1), at(0))
        .await
        .unwrap();
    // Live since 50 s: the first key has expired, so the second takes its place.
    let replacement = keyed(&second, "k", 100_000);
    let inserted = store
        .insert_keyed(&second, &replacement, at(50_000))
        .await
        .unwrap();
    assert_eq!(inserted, KeyedInsert::Inserted);
    assert_eq!(
        store.find_keyed("alice", "k", at(50_000)).await.unwrap(),
        Some(replacement)
    );
    assert_eq!(
        store.find_keyed("alice", "k", at(100_001)).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(store.prune_keys(at(100_000)).await.unwrap(), 0);
    assert_eq!(store.prune_keys(at(100_001)).await.unwrap(), 1);
    assert_eq!(store.find_keyed("alice", "k", at(0)).await.unwrap(), None);
    assert_eq!(
        store.metrics().await.unwrap().counts.total(),
        2,
        "orders stay"
    );
}

/// Many keyed orders at once, as a loaded service sends them (PostgreSQL writes them in
/// batches): each key goes in once, with its own order; the others under the same key
/// write nothing; an order whose id is taken fails alone, its key not kept.
async fn keyed_orders_at_once_are_each_answered_for_their_own_key(db: TestDb) {
    let store = db.store().await;
    let existing = order(0, "alice");
    store.insert(&existing).await.unwrap();
    let mut clash = order(1, "alice");
    clash.id = existing.id;
    const KEYS: usize = 8;
    let orders: Vec<Order> = (1..=40).map(|n| order(n, "alice")).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (n, keyed_order) in orders.iter().cloned().enumerate() {
        let store = store.clone();
        tasks.spawn(async move {
            let response = keyed(&keyed_order, &format!("k-{}", n % KEYS), 1);
            let outcome = store.insert_keyed(&keyed_order, &response, at(0)).await;
            (response, outcome.unwrap())
        });
    }
    let clashing = {
        let store = store.clone();
        let clash = clash.clone();
        tokio::spawn(async move {
            store
                .insert_keyed(&clash, &keyed(&clash, "clash", 1), at(0))
                .await
        })
    };
    let mut winners = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (response, outcome) = done.unwrap();
        let stored = store.get(response.order_id).await.unwrap();
        match outcome {
            KeyedInsert::Inserted => {
                assert!(stored.is_some(), "an inserted order is stored");
                winners.push(response);
            }
            KeyedInsert::KeyTaken => assert_eq!(stored, None, "a loser writes nothing"),
        }
    }
    assert!(clashing.await.unwrap().is_err(), "a taken id fails");
    assert_eq!(
        store.find_keyed("alice", "clash", at(0)).await.unwrap(),
        None
    );

    winners.sort_by(|a, b| a.key.cmp(&b.key));
    let keys: Vec<&str> = winners.iter().map(|w| w.key.as_str()).collect();
    let expected: Vec<String> = (0..KEYS).map(|n| format!("k-{n}")).collect();
    assert_eq!(keys, expected, "one winner per key");
    for winner in &winners {
        assert_eq!(
            store
                .find_keyed("alice", &winner.key, at(0))
                .await
                .unwrap()
                .as_ref(),
            Some(winner),
            "the key answers as its winner did"
        );
    }
    assert_eq!(
        store.metrics().await.unwrap().counts.total(),
        1 + KEYS as u64
    );
}
