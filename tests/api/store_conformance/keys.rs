//! Idempotency keys: stored with their order in one transaction, expired and pruned.

use order_processor::domain::Order;
use order_processor::store::{IdempotentResponse, KeyedInsert};

use super::{at, order};
use crate::helpers::{TestDb, on_every_backend};

on_every_backend!(
    a_keyed_order_and_its_key_are_stored_together_once,
    expired_keys_are_replaced_and_pruned,
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
