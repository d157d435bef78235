//! Webhook deliveries: owed with the consumer's move, claimed in each order's `seq`
//! order, attempts recorded under claims, endpoint health and disabling, operators'
//! retries and recovery, listings, retention.

use std::time::Duration;

use order_processor::domain::{
    Delivery, DeliveryStatus, EventType, OrderEvent, WebhookEndpoint, WebhookId, WebhookUrl,
    new_secret,
};
use order_processor::store::{
    ClaimOutcome, DeliveryClaim, DeliveryQuery, DeliveryRooms, FinishedAttempt, NextStep, Owed,
    OwedPage, Store,
};
use uuid::Uuid;

use super::{LEASE, at, log_of, order};
use crate::helpers::{TestDb, on_every_backend};

on_every_backend!(
    a_page_keeps_first_attempts_as_they_went,
    an_orders_deliveries_come_due_one_after_another,
    a_lost_claim_records_nothing_and_a_lapsed_lease_frees_the_delivery,
    a_claim_takes_no_more_of_an_endpoint_than_its_room,
    endpoints_keep_their_health_and_are_disabled_when_gone_or_failing_too_long,
    operators_list_retry_and_recover_deliveries,
    retention_keeps_what_deliveries_owe_and_prunes_what_is_done,
);

const CONSUMER: &str = "webhooks";
const DELIVERY_LEASE: Duration = Duration::from_secs(60);

fn endpoint(n: i64) -> WebhookEndpoint {
    WebhookEndpoint {
        id: WebhookId::new_at(at(n)),
        url: WebhookUrl::parse(&format!("https://shop{n}.example/hooks")).unwrap(),
        description: String::new(),
        event_types: None,
        secret: new_secret([n as u8; 32]),
        previous_secret: None,
        disabled_at: None,
        disabled_reason: None,
        last_delivered_at: None,
        failing_since: None,
        created_at: at(n),
        updated_at: at(n),
        revision: 1,
    }
}

/// Two orders: the first created, claimed and completed (three events), the second
/// created (one); the log's events, in position order.
async fn two_orders(store: &dyn Store) -> Vec<OrderEvent> {
    let (first, second) = (order(1, "u"), order(2, "u"));
    store.insert(&first).await.unwrap();
    for claim in store.claim(1, at(10), LEASE).await.unwrap() {
        store.complete(&claim, None, at(20)).await.unwrap();
    }
    store.insert(&second).await.unwrap();
    let log = log_of(store, 4).await;
    assert_eq!(log.len(), 4, "the log did not show the four events");
    log
}

/// Registers `endpoints`, then owes every event of the log to each of them.
async fn owe_all(store: &dyn Store, endpoints: &[&WebhookEndpoint]) -> Vec<OrderEvent> {
    for endpoint in endpoints {
        store.insert_endpoint(endpoint).await.unwrap();
    }
    let log = two_orders(store).await;
    let holder = Uuid::new_v4();
    assert_eq!(
        store
            .hold_consumer(CONSUMER, holder, at(100), LEASE)
            .await
            .unwrap(),
        Some(0)
    );
    let owed: Vec<Delivery> = endpoints
        .iter()
        .flat_map(|endpoint| log.iter().map(|e| Delivery::new(endpoint.id, e, at(100))))
        .collect();
    let through = log.last().unwrap().position;
    let page = unsent_page(through, owed);
    assert!(
        store
            .enqueue_deliveries(CONSUMER, holder, &page, at(100), LEASE)
            .await
            .unwrap()
    );
    log
}

/// A page of deliveries none of which was sent yet.
fn unsent_page(through: i64, owed: Vec<Delivery>) -> OwedPage {
    OwedPage {
        through,
        owed: owed.into_iter().map(Owed::unsent).collect(),
        attempts: Vec::new(),
        failing_too_long: at(0),
    }
}

fn finished(claim: &DeliveryClaim, at_ms: i64, next: NextStep) -> FinishedAttempt {
    FinishedAttempt {
        id: claim.delivery.id,
        token: claim.token,
        endpoint_id: claim.delivery.endpoint_id,
        at: at(at_ms),
        status_code: Some(if next == NextStep::Delivered {
            200
        } else {
            500
        }),
        error: (next != NextStep::Delivered).then(|| "boom".to_owned()),
        next,
        gone: false,
        reached: true,
    }
}

/// (order's seq, event type) of each claim, sorted.
fn claimed_of(claims: &[DeliveryClaim]) -> Vec<(u32, EventType)> {
    let mut seen: Vec<_> = claims
        .iter()
        .map(|c| (c.delivery.seq, c.delivery.event_type))
        .collect();
    seen.sort_by_key(|(seq, t)| (*seq, t.as_str()));
    seen
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

async fn a_claim_takes_no_more_of_an_endpoint_than_its_room(db: TestDb) {
    let store = db.store().await;
    let (full, free) = (endpoint(1), endpoint(2));
    // Each endpoint owes four deliveries, the first of each of two orders due.
    owe_all(&*store, &[&full, &free]).await;
    let rooms = DeliveryRooms {
        each: 10,
        except: [(full.id, 0)].into(),
    };
    let claims = store
        .claim_deliveries(&rooms, 100, at(200), DELIVERY_LEASE)
        .await
        .unwrap();
    assert_eq!(claims.len(), 2);
    assert!(claims.iter().all(|c| c.delivery.endpoint_id == free.id));
    let rooms = DeliveryRooms {
        each: 0,
        except: [(full.id, 1)].into(),
    };
    let claims = store
        .claim_deliveries(&rooms, 100, at(201), DELIVERY_LEASE)
        .await
        .unwrap();
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].delivery.endpoint_id, full.id);
}

async fn a_lost_claim_records_nothing_and_a_lapsed_lease_frees_the_delivery(db: TestDb) {
    let store = db.store().await;
    let hook = endpoint(1);
    owe_all(&*store, &[&hook]).await;
    let first = store
        .claim_deliveries(&DeliveryRooms::each(1), 100, at(200), DELIVERY_LEASE)
        .await
        .unwrap();
    assert_eq!(first.len(), 1, "at most one per endpoint here");
    // Its sender died: after the lease the delivery is claimed again, with a new token.
    let lapsed = at(200) + chrono::Duration::from_std(DELIVERY_LEASE).unwrap();
    let second: Vec<DeliveryClaim> = store
        .claim_deliveries(&DeliveryRooms::each(10), 100, lapsed, DELIVERY_LEASE)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.delivery.id == first[0].delivery.id)
        .collect();
    assert_eq!(second.len(), 1);
    assert_ne!(second[0].token, first[0].token);
    assert_eq!(second[0].delivery.attempts, 2);
    let late = 200 + DELIVERY_LEASE.as_millis() as i64 + 10;
    let outcomes = store
        .finish_deliveries(
            &[
                finished(&first[0], late, NextStep::Delivered),
                finished(&second[0], late, NextStep::RetryAt(at(late + 1_000))),
            ],
            at(0),
        )
        .await
        .unwrap();
    assert_eq!(outcomes, [ClaimOutcome::ClaimLost, ClaimOutcome::Applied]);
    let listed = store
        .deliveries(&DeliveryQuery {
            endpoint_id: hook.id,
            status: Some(DeliveryStatus::Pending),
            before: None,
            limit: 10,
        })
        .await
        .unwrap();
    let it = listed
        .iter()
        .find(|d| d.id == first[0].delivery.id)
        .unwrap();
    assert_eq!(it.next_attempt_at, Some(at(late + 1_000)));
    assert_eq!(it.last_error.as_deref(), Some("boom"));
}

async fn endpoints_keep_their_health_and_are_disabled_when_gone_or_failing_too_long(db: TestDb) {
    let store = db.store().await;
    let (gone, failing) = (endpoint(1), endpoint(2));
    owe_all(&*store, &[&gone, &failing]).await;
    let claims = store
        .claim_deliveries(&DeliveryRooms::each(10), 100, at(200), DELIVERY_LEASE)
        .await
        .unwrap();
    assert_eq!(
        claims.len(),
        4,
        "two orders' first events, to each endpoint"
    );
    // Never more than asked for in all, however many endpoints have something due.
    assert!(
        store
            .claim_deliveries(&DeliveryRooms::each(10), 0, at(200), DELIVERY_LEASE)
            .await
            .unwrap()
            .is_empty()
    );
    let to = |id: WebhookId| -> Vec<&DeliveryClaim> {
        claims
            .iter()
            .filter(|c| c.delivery.endpoint_id == id)
            .collect()
    };
    let (g, f) = (to(gone.id), to(failing.id));
    let mut attempts = vec![
        finished(g[0], 300, NextStep::Delivered),
        FinishedAttempt {
            gone: true,
            status_code: Some(410),
            ..finished(g[1], 400, NextStep::RetryAt(at(10_000)))
        },
        finished(f[0], 300, NextStep::RetryAt(at(10_000))),
    ];
    // Failing since 300 and too long means since before 350: disabled.
    store.finish_deliveries(&attempts, at(350)).await.unwrap();
    let gone_now = store.endpoint(gone.id).await.unwrap().unwrap();
    assert_eq!(gone_now.disabled_at, Some(at(400)));
    assert!(gone_now.disabled_reason.unwrap().contains("410"));
    assert_eq!(gone_now.last_delivered_at, Some(at(300)));
    assert_eq!(gone_now.failing_since, Some(at(400)));
    assert_eq!(
        gone_now.revision, 2,
        "a change an operator's edit must not undo"
    );
    let failing_now = store.endpoint(failing.id).await.unwrap().unwrap();
    assert_eq!(failing_now.failing_since, Some(at(300)));
    assert_eq!(failing_now.disabled_at, Some(at(300)));
    assert!(
        failing_now
            .disabled_reason
            .unwrap()
            .contains("WEBHOOK_DISABLE_AFTER")
    );

    // Disabled endpoints' deliveries stay owed, but nothing is claimed for them.
    let gauges = store.delivery_gauges().await.unwrap();
    assert_eq!(gauges.disabled_endpoints, 2);
    assert_eq!(gauges.pending, 7, "eight owed, one delivered");
    assert!(
        store
            .claim_deliveries(&DeliveryRooms::each(10), 100, at(20_000), DELIVERY_LEASE)
            .await
            .unwrap()
            .is_empty()
    );
    // Enabled again by an operator: claimed again, failures counted afresh.
    let enabled = WebhookEndpoint {
        disabled_at: None,
        disabled_reason: None,
        ..store.endpoint(failing.id).await.unwrap().unwrap()
    };
    assert!(store.update_endpoint(&enabled).await.unwrap());
    let back = store.endpoint(failing.id).await.unwrap().unwrap();
    assert_eq!((back.disabled_at, back.failing_since), (None, None));
    // (One of its two was claimed at 200 and never answered: due when its lease ends.)
    let claims = store
        .claim_deliveries(&DeliveryRooms::each(10), 100, at(70_000), DELIVERY_LEASE)
        .await
        .unwrap();
    assert_eq!(claims.len(), 2);
    assert!(claims.iter().all(|c| c.delivery.endpoint_id == failing.id));
    // A success ends the failing run.
    attempts = claims
        .iter()
        .map(|c| finished(c, 70_100, NextStep::Delivered))
        .collect();
    store.finish_deliveries(&attempts, at(0)).await.unwrap();
    let healthy = store.endpoint(failing.id).await.unwrap().unwrap();
    assert_eq!(healthy.failing_since, None);
    assert_eq!(healthy.last_delivered_at, Some(at(70_100)));

    // Removing an endpoint removes its deliveries.
    assert!(store.delete_endpoint(gone.id).await.unwrap());
    let left = store
        .deliveries(&DeliveryQuery {
            endpoint_id: gone.id,
            status: None,
            before: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert!(left.is_empty());
}

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
