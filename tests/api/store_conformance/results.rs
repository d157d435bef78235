//! What a processing step leaves behind: the result a completion keeps, and leases
//! extended by heartbeats while an attempt runs.

use std::time::Duration;

use order_processor::domain::{EventType, OrderResult, OrderStatus};
use order_processor::store::{ClaimOutcome, Rescued};

use super::{at, order, requeued};
use crate::helpers::{TestDb, on_every_backend};

on_every_backend!(
    a_completion_keeps_its_result_and_only_the_completed_event_shows_it,
    a_heartbeat_extends_only_current_claims_and_holds_off_the_rescue,
);

async fn a_completion_keeps_its_result_and_only_the_completed_event_shows_it(db: TestDb) {
    let store = db.store().await;
    let (with, without) = (order(1, "u"), order(2, "u"));
    store.insert(&with).await.unwrap();
    store.insert(&without).await.unwrap();
    let claims = store
        .claim(2, at(100), Duration::from_secs(30))
        .await
        .unwrap();
    // Kept as the text it came as: spacing, key order and number forms unchanged.
    let text = r#"{"charge_id": "ch_1", "amount": 10.50, "z": 1, "a": [true]}"#;
    let result = OrderResult::parse(text).unwrap();
    for claim in &claims {
        let kept = (claim.order.id == with.id).then_some(&result);
        assert_eq!(
            store.complete(claim, kept, at(200)).await.unwrap(),
            ClaimOutcome::Applied
        );
    }
    let stored = store.get(with.id).await.unwrap().unwrap();
    assert_eq!(stored.status, OrderStatus::Completed);
    assert_eq!(stored.result.as_ref().map(OrderResult::as_str), Some(text));
    assert_eq!(store.get(without.id).await.unwrap().unwrap().result, None);

    let events = store.order_events(with.id, 0).await.unwrap();
    let types: Vec<EventType> = events.iter().map(|e| e.event_type).collect();
    assert_eq!(
        types,
        [
            EventType::Created,
            EventType::Processing,
            EventType::Completed
        ]
    );
    for event in &events {
        let expected = (event.event_type == EventType::Completed).then_some(&result);
        assert_eq!(
            event.order.result.as_ref(),
            expected,
            "{:?}",
            event.event_type
        );
    }
}

async fn a_heartbeat_extends_only_current_claims_and_holds_off_the_rescue(db: TestDb) {
    let store = db.store().await;
    let lease = Duration::from_secs(1);
    store.insert(&order(1, "u")).await.unwrap();
    store.insert(&order(2, "u")).await.unwrap();
    let claims = store.claim(2, at(1_000), lease).await.unwrap();
    assert_eq!(claims[0].lease_expires_at, at(2_000));
    let id = claims[0].order.id;
    let events_before = store.order_events(id, 0).await.unwrap().len();

    // Both extended at 1.6 s, in one write: the leases now end at 2.6 s, so 2.1 s
    // rescues nothing, and no event was written.
    let extended = store.extend(&claims, at(1_600), lease).await.unwrap();
    assert_eq!(extended.until, at(2_600));
    assert_eq!(
        extended.outcomes,
        [ClaimOutcome::Applied, ClaimOutcome::Applied]
    );
    assert_eq!(
        store.order_events(id, 0).await.unwrap().len(),
        events_before
    );
    assert_eq!(
        store.rescue_expired(at(2_100), 5).await.unwrap(),
        Rescued::default()
    );
    let stored = store.get(id).await.unwrap().unwrap();
    assert_eq!(stored.status, OrderStatus::Processing);

    // The second completes; without another heartbeat the first's lease runs out and
    // it is taken back. Neither old claim can extend anything then.
    store.complete(&claims[1], None, at(2_200)).await.unwrap();
    assert_eq!(
        store.rescue_expired(at(2_700), 5).await.unwrap(),
        requeued(1)
    );
    let stale = store.extend(&claims, at(2_800), lease).await.unwrap();
    assert_eq!(
        stale.outcomes,
        [ClaimOutcome::ClaimLost, ClaimOutcome::ClaimLost]
    );
    // Claimed again: in one heartbeat, the new claim is extended and the old one not.
    let again = store.claim(1, at(2_900), lease).await.unwrap().remove(0);
    let mixed = [claims[0].clone(), again.clone()];
    let extended = store.extend(&mixed, at(3_000), lease).await.unwrap();
    assert_eq!(
        extended.outcomes,
        [ClaimOutcome::ClaimLost, ClaimOutcome::Applied]
    );
    assert_eq!(
        store.complete(&claims[0], None, at(3_100)).await.unwrap(),
        ClaimOutcome::ClaimLost
    );
    assert_eq!(
        store.complete(&again, None, at(3_100)).await.unwrap(),
        ClaimOutcome::Applied
    );
}
