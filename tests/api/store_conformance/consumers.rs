//! The log's consumers: one holder at a time under a lease, positions only its holder
//! moves, and retention that keeps what a consumer has not seen.

use std::time::Duration;

use uuid::Uuid;

use super::{LEASE, at, log_of, order};
use crate::helpers::{TestDb, on_every_backend};

on_every_backend!(
    one_holder_at_a_time_moves_a_consumer_on,
    retention_keeps_the_events_a_consumer_has_not_seen,
);

async fn one_holder_at_a_time_moves_a_consumer_on(db: TestDb) {
    let store = db.store().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let lease = Duration::from_secs(10);
    // New: at the start of the log, held by the first to ask.
    assert_eq!(
        store.hold_consumer("nats", a, at(0), lease).await.unwrap(),
        Some(0)
    );
    assert_eq!(
        store
            .hold_consumer("nats", b, at(1_000), lease)
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .advance_consumer("nats", a, 5, at(2_000), lease)
            .await
            .unwrap()
    );
    assert!(
        !store
            .advance_consumer("nats", b, 9, at(2_000), lease)
            .await
            .unwrap()
    );
    // The holder keeps it by asking again; its lease now ends at 13 s.
    assert_eq!(
        store
            .hold_consumer("nats", a, at(3_000), lease)
            .await
            .unwrap(),
        Some(5)
    );
    assert_eq!(
        store
            .hold_consumer("nats", b, at(12_000), lease)
            .await
            .unwrap(),
        None
    );
    // Once the lease has run out, another takes it where it was left.
    assert_eq!(
        store
            .hold_consumer("nats", b, at(13_001), lease)
            .await
            .unwrap(),
        Some(5)
    );
    assert!(
        !store
            .advance_consumer("nats", a, 7, at(13_002), lease)
            .await
            .unwrap()
    );
    assert!(
        store
            .advance_consumer("nats", b, 7, at(13_003), lease)
            .await
            .unwrap()
    );
    // Consumers are apart by name.
    assert_eq!(
        store
            .hold_consumer("other", a, at(13_004), lease)
            .await
            .unwrap(),
        Some(0)
    );

    assert!(
        store
            .advance_consumer("other", a, 20, at(13_005), lease)
            .await
            .unwrap()
    );
    let mut positions = store.consumer_positions().await.unwrap();
    positions.sort();
    assert_eq!(
        positions,
        [("nats".to_owned(), 7), ("other".to_owned(), 20)]
    );

    // Let go (a lease of zero, as on a stop): another takes it at once.
    assert!(
        store
            .advance_consumer("nats", b, 8, at(14_000), Duration::ZERO)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .hold_consumer("nats", a, at(14_001), lease)
            .await
            .unwrap(),
        Some(8)
    );
}

async fn retention_keeps_the_events_a_consumer_has_not_seen(db: TestDb) {
    let store = db.store().await;
    let (first, second) = (order(1, "u"), order(2, "u"));
    store.insert(&first).await.unwrap();
    store.insert(&second).await.unwrap();
    for claim in store.claim(2, at(100), LEASE).await.unwrap() {
        store.complete(&claim, None, at(200)).await.unwrap();
    }
    let log = log_of(store.as_ref(), 6).await;
    assert_eq!(log.len(), 6);
    // A consumer has seen the first three events: only those may go.
    let seen = log[2].position;
    let pruned = store.prune_events(at(5_000), 0, 100, seen).await.unwrap();
    assert_eq!(pruned.deleted, 3);
    let left: Vec<i64> = store
        .events_after(0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(
        left,
        log[3..].iter().map(|e| e.position).collect::<Vec<_>>()
    );
}
