//! The event log's reads and its retention, on every backend.

use order_processor::domain::{AfterFailure, EventType, OrderId};
use order_processor::store::Store;

use super::{LEASE, at, order};
use crate::helpers::{TestDb, on_every_backend};

on_every_backend!(
    the_log_is_read_by_position_from_any_point,
    retention_deletes_only_the_events_of_orders_finished_before_the_cutoff,
);

async fn event_count(store: &dyn Store, id: OrderId) -> usize {
    store.order_events(id, 0).await.unwrap().len()
}

async fn the_log_is_read_by_position_from_any_point(db: TestDb) {
    let store = db.store().await;
    assert_eq!(store.last_position().await.unwrap(), 0, "an empty log");
    for n in 0..3 {
        store.insert(&order(n, "reader")).await.unwrap();
    }
    let claims = store.claim(10, at(100), LEASE).await.unwrap();
    store.complete(&claims[0], at(200)).await.unwrap();
    let all = store.events_after(0, 100).await.unwrap();
    let types: Vec<EventType> = all.iter().map(|e| e.event_type).collect();
    assert_eq!(all.len(), 7, "{types:?}");
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    assert_eq!(store.last_position().await.unwrap(), all[6].position);
    assert_eq!(types[6], EventType::Completed);
    let page = store.events_after(all[2].position, 2).await.unwrap();
    assert_eq!(page, all[3..5]);
    let history = store.order_events(claims[0].order.id, 0).await.unwrap();
    let after_first = store
        .order_events(claims[0].order.id, history[0].position)
        .await
        .unwrap();
    assert_eq!(after_first, history[1..]);
}

async fn retention_deletes_only_the_events_of_orders_finished_before_the_cutoff(db: TestDb) {
    let store = db.store().await;
    let [
        done_long_ago,
        cancelled_long_ago,
        done_lately,
        dead_long_ago,
        waiting,
    ] = [0, 1, 2, 3, 4].map(|n| order(n, "keeper"));
    for o in [
        &done_long_ago,
        &cancelled_long_ago,
        &done_lately,
        &dead_long_ago,
        &waiting,
    ] {
        store.insert(o).await.unwrap();
    }
    store
        .cancel(cancelled_long_ago.id, None, at(1_000))
        .await
        .unwrap();
    let claims = store.claim(3, at(1_000), LEASE).await.unwrap();
    let claim_of = |id: OrderId| claims.iter().find(|c| c.order.id == id).unwrap();
    store
        .complete(claim_of(done_long_ago.id), at(2_000))
        .await
        .unwrap();
    store
        .complete(claim_of(done_lately.id), at(9_000))
        .await
        .unwrap();
    store
        .fail(
            claim_of(dead_long_ago.id),
            "boom",
            AfterFailure::DeadLetter,
            at(2_000),
        )
        .await
        .unwrap();
    let before: Vec<usize> = futures::future::join_all(
        [
            &done_long_ago,
            &cancelled_long_ago,
            &done_lately,
            &dead_long_ago,
            &waiting,
        ]
        .map(|o| event_count(&*store, o.id)),
    )
    .await;
    assert_eq!(before, [3, 2, 3, 3, 1]);

    // One at a time, then the rest: five events are past the cutoff.
    assert_eq!(store.prune_events(at(5_000), 1).await.unwrap(), 1);
    assert_eq!(store.prune_events(at(5_000), 100).await.unwrap(), 4);
    assert_eq!(store.prune_events(at(5_000), 100).await.unwrap(), 0);
    let after: Vec<usize> = futures::future::join_all(
        [
            &done_long_ago,
            &cancelled_long_ago,
            &done_lately,
            &dead_long_ago,
            &waiting,
        ]
        .map(|o| event_count(&*store, o.id)),
    )
    .await;
    assert_eq!(
        after,
        [0, 0, 3, 3, 1],
        "finished lately, dead-lettered (not final) and waiting orders keep theirs"
    );
    for o in [&done_long_ago, &cancelled_long_ago] {
        assert!(store.get(o.id).await.unwrap().is_some(), "the order stays");
    }
}
