//! The event log's reads and its retention, on every backend.

use order_processor::domain::{AfterFailure, EventType, Order, OrderId};
use order_processor::store::{ActivityCount, Store};

use super::{LEASE, at, log_of, order};
use crate::helpers::{TestDb, on_every_backend};

on_every_backend!(
    the_log_is_read_by_position_from_any_point,
    retention_deletes_only_the_events_of_orders_finished_before_the_cutoff,
    activity_counts_each_minute_s_events_by_type,
);

/// How many events each order has in the log.
async fn event_counts(store: &dyn Store, orders: &[&Order]) -> Vec<usize> {
    let mut counts = Vec::new();
    for order in orders {
        counts.push(store.order_events(order.id, 0).await.unwrap().len());
    }
    counts
}

async fn the_log_is_read_by_position_from_any_point(db: TestDb) {
    let store = db.store().await;
    assert_eq!(store.last_position().await.unwrap(), 0, "an empty log");
    for n in 0..3 {
        store.insert(&order(n, "reader")).await.unwrap();
    }
    let claims = store.claim(10, at(100), LEASE).await.unwrap();
    store.complete(&claims[0], None, at(200)).await.unwrap();
    let all = log_of(store.as_ref(), 7).await;
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
        .complete(claim_of(done_long_ago.id), None, at(2_000))
        .await
        .unwrap();
    store
        .complete(claim_of(done_lately.id), None, at(9_000))
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
    let orders = [
        &done_long_ago,
        &cancelled_long_ago,
        &done_lately,
        &dead_long_ago,
        &waiting,
    ];
    let before = event_counts(&*store, &orders).await;
    assert_eq!(before, [3, 2, 3, 3, 1]);

    // Window after window of four events: five are past the cutoff. A window that
    // holds nothing older than the cutoff ends the run.
    let (mut after, mut deleted, mut windows) = (0, 0, 0);
    loop {
        let window = store
            .prune_events(at(5_000), after, 4, i64::MAX)
            .await
            .unwrap();
        deleted += window.deleted;
        windows += 1;
        match window.next_after {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(deleted, 5);
    assert!(windows <= 4, "{windows} windows for 12 events");
    let again = store
        .prune_events(at(5_000), 0, 100, i64::MAX)
        .await
        .unwrap();
    assert_eq!(again.deleted, 0, "nothing more to delete");
    let nothing_old = store
        .prune_events(at(-1_000), 0, 100, i64::MAX)
        .await
        .unwrap();
    assert_eq!(
        nothing_old.next_after, None,
        "no event is older than the cutoff"
    );
    let after = event_counts(&*store, &orders).await;
    assert_eq!(
        after,
        [0, 0, 3, 3, 1],
        "finished lately, dead-lettered (not final) and waiting orders keep theirs"
    );
    for o in [&done_long_ago, &cancelled_long_ago] {
        assert!(store.get(o.id).await.unwrap().is_some(), "the order stays");
    }
}

async fn activity_counts_each_minute_s_events_by_type(db: TestDb) {
    let store = db.store().await;
    // T0 starts a minute: created in minutes 0 and 1, both claimed and one completed
    // in minute 2.
    let (early, late) = (order(0, "u"), order(70_000, "u"));
    store.insert(&early).await.unwrap();
    store.insert(&late).await.unwrap();
    let claims = store.claim(2, at(130_000), LEASE).await.unwrap();
    store.complete(&claims[0], None, at(130_500)).await.unwrap();
    let count = |minute: i64, event_type, count| ActivityCount {
        minute: at(minute * 60_000),
        event_type,
        count,
    };
    let sorted = |mut counts: Vec<ActivityCount>| {
        counts.sort_by_key(|c| (c.minute, c.event_type.as_str()));
        counts
    };
    assert_eq!(
        sorted(store.activity(at(0)).await.unwrap()),
        [
            count(0, EventType::Created, 1),
            count(1, EventType::Created, 1),
            count(2, EventType::Completed, 1),
            count(2, EventType::Processing, 2),
        ]
    );
    // From within minute 1: the whole of minute 1, nothing before it.
    assert_eq!(
        sorted(store.activity(at(65_000)).await.unwrap()),
        [
            count(1, EventType::Created, 1),
            count(2, EventType::Completed, 1),
            count(2, EventType::Processing, 2),
        ]
    );
    assert!(store.activity(at(180_000)).await.unwrap().is_empty());
}
