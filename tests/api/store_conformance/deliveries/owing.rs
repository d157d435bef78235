//! Owing deliveries: the consumer's page written with its first attempts as they went,
//! and an order's deliveries to an endpoint coming due one after another, in `seq`
//! order.

use order_processor::domain::{Delivery, DeliveryStatus, EventType};
use order_processor::store::{
    ClaimOutcome, DeliveryClaim, DeliveryQuery, DeliveryRooms, FinishedAttempt, NextStep, Owed,
    OwedPage,
};
use uuid::Uuid;

use super::{
    CONSUMER, DELIVERY_LEASE, claimed_of, endpoint, finished, owe_all, two_orders, unsent_page,
};
use crate::helpers::{TestDb, on_every_backend};
use crate::store_conformance::{LEASE, at};

on_every_backend!(
    a_page_keeps_first_attempts_as_they_went,
    an_orders_deliveries_come_due_one_after_another,
);

async fn a_page_keeps_first_attempts_as_they_went(db: TestDb) {
    let store = db.store().await;
    let hook = endpoint(1);
    store.insert_endpoint(&hook).await.unwrap();
    let log = two_orders(&*store).await;
    let holder = Uuid::new_v4();
    store
        .hold_consumer(CONSUMER, holder, at(100), LEASE)
        .await
        .unwrap();
    let first_order = log[0].order_id;
    let second_order = log[3].order_id;
    let of = |n: usize| Delivery::new(hook.id, &log[n], at(100));
    let claimed = |d: &Delivery| DeliveryClaim {
        delivery: Delivery {
            attempts: 1,
            ..d.clone()
        },
        token: Uuid::new_v4(),
    };
    // The first order's first event delivered, its second failed (retried at 5 s), its
    // third behind them; the second order's first still in flight under a claim.
    let (created, processing, completed, other) = (of(0), of(1), of(2), of(3));
    let delivered = finished(&claimed(&created), 150, NextStep::Delivered);
    let failed = finished(&claimed(&processing), 160, NextStep::RetryAt(at(5_000)));
    let token = Uuid::new_v4();
    let settled = |d: &Delivery, status, next, attempt: &FinishedAttempt| Owed {
        delivery: Delivery {
            status,
            attempts: 1,
            next_attempt_at: next,
            last_attempt_at: Some(attempt.at),
            last_status_code: attempt.status_code,
            last_error: attempt.error.clone(),
            finished_at: (status == DeliveryStatus::Delivered).then_some(attempt.at),
            ..d.clone()
        },
        settled: true,
        claim: None,
    };
    let page = OwedPage {
        through: log[3].position,
        owed: vec![
            settled(&created, DeliveryStatus::Delivered, None, &delivered),
            settled(
                &processing,
                DeliveryStatus::Pending,
                Some(at(5_000)),
                &failed,
            ),
            Owed::unsent(completed.clone()),
            Owed {
                delivery: Delivery {
                    attempts: 1,
                    next_attempt_at: Some(at(60_100)),
                    last_attempt_at: Some(at(100)),
                    ..other.clone()
                },
                settled: true,
                claim: Some(token),
            },
        ],
        attempts: vec![delivered.clone(), failed.clone()],
        failing_too_long: at(0),
    };
    assert!(
        store
            .enqueue_deliveries(CONSUMER, holder, &page, at(170), LEASE)
            .await
            .unwrap()
    );
    let health = store.endpoint(hook.id).await.unwrap().unwrap();
    assert_eq!(health.last_delivered_at, Some(at(150)));
    assert_eq!(health.failing_since, Some(at(160)));
    let listed = store
        .deliveries(&DeliveryQuery {
            endpoint_id: hook.id,
            status: None,
            before: None,
            limit: 10,
        })
        .await
        .unwrap();
    let row = |id| listed.iter().find(|d| d.id == id).unwrap();
    assert_eq!(row(created.id).status, DeliveryStatus::Delivered);
    assert_eq!(row(created.id).finished_at, Some(at(150)));
    assert_eq!(row(processing.id).last_status_code, Some(500));
    assert_eq!(row(processing.id).next_attempt_at, Some(at(5_000)));
    assert_eq!(
        row(completed.id).next_attempt_at,
        None,
        "waits behind the failed one"
    );
    assert_eq!(row(completed.id).attempts, 0);
    assert_eq!(
        store
            .owing(&[(first_order, hook.id), (second_order, hook.id)])
            .await
            .unwrap(),
        [(first_order, hook.id), (second_order, hook.id)].into()
    );

    // Nothing is due before the retry; the attempt in flight is recorded under its claim.
    assert!(
        store
            .claim_deliveries(&DeliveryRooms::each(10), 100, at(4_999), DELIVERY_LEASE)
            .await
            .unwrap()
            .is_empty()
    );
    let answered = FinishedAttempt {
        id: other.id,
        token,
        ..finished(&claimed(&other), 200, NextStep::Delivered)
    };
    assert_eq!(
        store.finish_deliveries(&[answered], at(0)).await.unwrap(),
        [ClaimOutcome::Applied]
    );
    let retried = store
        .claim_deliveries(&DeliveryRooms::each(10), 100, at(5_000), DELIVERY_LEASE)
        .await
        .unwrap();
    assert_eq!(claimed_of(&retried), [(2, EventType::Processing)]);
    assert_eq!(retried[0].delivery.attempts, 2);
    store
        .finish_deliveries(&[finished(&retried[0], 5_001, NextStep::Delivered)], at(0))
        .await
        .unwrap();
    let last = store
        .claim_deliveries(&DeliveryRooms::each(10), 100, at(5_002), DELIVERY_LEASE)
        .await
        .unwrap();
    assert_eq!(claimed_of(&last), [(3, EventType::Completed)]);
    store
        .finish_deliveries(&[finished(&last[0], 5_003, NextStep::Delivered)], at(0))
        .await
        .unwrap();
    assert!(
        store
            .owing(&[(first_order, hook.id), (second_order, hook.id)])
            .await
            .unwrap()
            .is_empty()
    );
}

async fn an_orders_deliveries_come_due_one_after_another(db: TestDb) {
    let store = db.store().await;
    let hook = endpoint(1);
    let log = owe_all(&*store, &[&hook]).await;
    // A holder that does not hold the consumer owes nothing.
    assert!(
        !store
            .enqueue_deliveries(
                CONSUMER,
                Uuid::new_v4(),
                &unsent_page(99, vec![Delivery::new(hook.id, &log[0], at(100))]),
                at(100),
                LEASE
            )
            .await
            .unwrap()
    );
    assert_eq!(
        store.consumer_positions().await.unwrap(),
        [(CONSUMER.to_owned(), log[3].position)]
    );

    // Each order's first event is due; the first order's later two wait behind it.
    let claims = store
        .claim_deliveries(&DeliveryRooms::each(10), 100, at(200), DELIVERY_LEASE)
        .await
        .unwrap();
    assert_eq!(
        claimed_of(&claims),
        [(1, EventType::Created), (1, EventType::Created)]
    );
    assert!(claims.iter().all(|c| c.delivery.attempts == 1));
    assert!(
        store
            .claim_deliveries(&DeliveryRooms::each(10), 100, at(201), DELIVERY_LEASE)
            .await
            .unwrap()
            .is_empty(),
        "in flight: not due again before the lease ends"
    );
    let first_order = log[0].order_id;
    let of_first = |claims: &[DeliveryClaim]| {
        claims
            .iter()
            .find(|c| c.delivery.order_id == first_order)
            .cloned()
            .unwrap()
    };
    let created = of_first(&claims);
    assert_eq!(created.delivery.event_id, log[0].event_id);
    let outcomes = store
        .finish_deliveries(&[finished(&created, 300, NextStep::Delivered)], at(0))
        .await
        .unwrap();
    assert_eq!(outcomes, [ClaimOutcome::Applied]);

    // Delivered: the next event of that order is due.
    let processing = store
        .claim_deliveries(&DeliveryRooms::each(10), 100, at(400), DELIVERY_LEASE)
        .await
        .unwrap();
    assert_eq!(claimed_of(&processing), [(2, EventType::Processing)]);
    // Retried later: the order's third event still waits.
    store
        .finish_deliveries(
            &[finished(&processing[0], 500, NextStep::RetryAt(at(5_500)))],
            at(0),
        )
        .await
        .unwrap();
    assert!(
        store
            .claim_deliveries(&DeliveryRooms::each(10), 100, at(5_499), DELIVERY_LEASE)
            .await
            .unwrap()
            .is_empty()
    );
    let again = store
        .claim_deliveries(&DeliveryRooms::each(10), 100, at(5_500), DELIVERY_LEASE)
        .await
        .unwrap();
    assert_eq!(claimed_of(&again), [(2, EventType::Processing)]);
    assert_eq!(again[0].delivery.attempts, 2);
    assert_eq!(again[0].delivery.last_status_code, Some(500));
    // Failed for good: the third is due after all.
    store
        .finish_deliveries(&[finished(&again[0], 5_600, NextStep::GiveUp)], at(0))
        .await
        .unwrap();
    let completed = store
        .claim_deliveries(&DeliveryRooms::each(10), 100, at(5_700), DELIVERY_LEASE)
        .await
        .unwrap();
    assert_eq!(claimed_of(&completed), [(3, EventType::Completed)]);
    // The bodies come from the log, by position.
    let events = store
        .events_at(&[completed[0].delivery.event_position, log[0].position])
        .await
        .unwrap();
    assert_eq!(events, [log[0].clone(), log[2].clone()]);
}
