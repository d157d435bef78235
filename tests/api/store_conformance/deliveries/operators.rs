//! What operators do to deliveries: list, retry and recover them; and retention, which
//! keeps what deliveries owe and prunes what is done.

use order_processor::domain::{DeliveryStatus, WebhookId};
use order_processor::store::{DeliveryQuery, DeliveryRooms, NextStep};

use super::{DELIVERY_LEASE, endpoint, finished, owe_all};
use crate::helpers::{TestDb, on_every_backend};
use crate::store_conformance::at;

on_every_backend!(
    operators_list_retry_and_recover_deliveries,
    retention_keeps_what_deliveries_owe_and_prunes_what_is_done,
);

async fn operators_list_retry_and_recover_deliveries(db: TestDb) {
    let store = db.store().await;
    let hook = endpoint(1);
    owe_all(&*store, &[&hook]).await;
    // Fail everything: each order's deliveries, one after another.
    let mut now = 200;
    loop {
        let claims = store
            .claim_deliveries(&DeliveryRooms::each(10), 100, at(now), DELIVERY_LEASE)
            .await
            .unwrap();
        if claims.is_empty() {
            break;
        }
        let attempts: Vec<_> = claims
            .iter()
            .map(|c| finished(c, now + 1, NextStep::GiveUp))
            .collect();
        store.finish_deliveries(&attempts, at(0)).await.unwrap();
        now += 100;
    }
    let query = |status, before, limit| DeliveryQuery {
        endpoint_id: hook.id,
        status,
        before,
        limit,
    };
    let failed = store
        .deliveries(&query(Some(DeliveryStatus::Failed), None, 10))
        .await
        .unwrap();
    assert_eq!(failed.len(), 4);
    assert!(failed.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    // Pages by cursor.
    let page = store
        .deliveries(&query(None, Some(failed[1].id), 10))
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|d| d.id).collect::<Vec<_>>(),
        failed[2..].iter().map(|d| d.id).collect::<Vec<_>>()
    );
    assert!(
        store
            .deliveries(&query(Some(DeliveryStatus::Pending), None, 10))
            .await
            .unwrap()
            .is_empty()
    );

    // One sent again: owed, due now, a fresh schedule.
    let one = failed[0].clone();
    let again = store
        .retry_delivery(hook.id, one.id, at(1_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.status, DeliveryStatus::Pending);
    assert_eq!(again.attempts, 0);
    assert_eq!(again.next_attempt_at, Some(at(1_000)));
    assert_eq!(again.finished_at, None);
    assert_eq!(
        store
            .retry_delivery(WebhookId::new_at(at(5)), one.id, at(1_000))
            .await
            .unwrap(),
        None,
        "another endpoint's delivery is not found"
    );
    store
        .finish_deliveries(
            &[finished(
                &store
                    .claim_deliveries(&DeliveryRooms::each(10), 100, at(1_000), DELIVERY_LEASE)
                    .await
                    .unwrap()[0],
                1_001,
                NextStep::Delivered,
            )],
            at(0),
        )
        .await
        .unwrap();

    // Recovered since the start: the other three, each order's events in seq order.
    assert_eq!(
        store
            .recover_deliveries(hook.id, at(0), at(2_000))
            .await
            .unwrap(),
        3
    );
    let mut sent = Vec::new();
    let mut now = 2_000;
    loop {
        let claims = store
            .claim_deliveries(&DeliveryRooms::each(10), 100, at(now), DELIVERY_LEASE)
            .await
            .unwrap();
        if claims.is_empty() {
            break;
        }
        let orders: std::collections::HashSet<_> =
            claims.iter().map(|c| c.delivery.order_id).collect();
        assert_eq!(
            orders.len(),
            claims.len(),
            "one event of an order at a time"
        );
        for claim in &claims {
            sent.push((claim.delivery.order_id, claim.delivery.seq));
        }
        let attempts: Vec<_> = claims
            .iter()
            .map(|c| finished(c, now + 1, NextStep::Delivered))
            .collect();
        store.finish_deliveries(&attempts, at(0)).await.unwrap();
        now += 100;
    }
    assert_eq!(sent.len(), 3);
    for (n, (order, seq)) in sent.iter().enumerate() {
        assert!(
            sent[n..].iter().all(|(o, s)| o != order || s >= seq),
            "each order's events in seq order: {sent:?}"
        );
    }
    // Nothing is left failed to recover.
    assert_eq!(
        store
            .recover_deliveries(hook.id, at(0), at(3_000))
            .await
            .unwrap(),
        0
    );
}

async fn retention_keeps_what_deliveries_owe_and_prunes_what_is_done(db: TestDb) {
    let store = db.store().await;
    let hook = endpoint(1);
    let log = owe_all(&*store, &[&hook]).await;
    // Only the first order's first event is delivered; the rest stay owed.
    let claims = store
        .claim_deliveries(&DeliveryRooms::each(10), 100, at(200), DELIVERY_LEASE)
        .await
        .unwrap();
    let first = claims
        .iter()
        .find(|c| c.delivery.order_id == log[0].order_id)
        .unwrap();
    store
        .finish_deliveries(&[finished(first, 300, NextStep::Delivered)], at(0))
        .await
        .unwrap();
    // The first order is completed; every consumer has seen everything.
    let pruned = store
        .prune_events(at(100_000), 0, 100, i64::MAX)
        .await
        .unwrap();
    assert_eq!(pruned.deleted, 1, "only the delivered event may go");
    assert_eq!(
        store
            .events_at(&log.iter().map(|e| e.position).collect::<Vec<_>>())
            .await
            .unwrap(),
        log[1..].to_vec()
    );
    // Finished deliveries go after retention; owed ones stay.
    assert_eq!(store.prune_deliveries(at(100_000), 100).await.unwrap(), 1);
    assert_eq!(store.delivery_gauges().await.unwrap().pending, 3);
}
