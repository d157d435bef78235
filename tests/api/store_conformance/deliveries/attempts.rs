//! Claims and attempts: an endpoint's room in a claim, a lost claim and a lapsed
//! lease, and endpoints' health kept from attempts (disabled when gone or failing too
//! long).

use order_processor::domain::{DeliveryStatus, WebhookEndpoint, WebhookId};
use order_processor::store::{
    ClaimOutcome, DeliveryClaim, DeliveryQuery, DeliveryRooms, FinishedAttempt, NextStep,
};

use super::{DELIVERY_LEASE, endpoint, finished, owe_all};
use crate::helpers::{TestDb, on_every_backend};
use crate::store_conformance::at;

on_every_backend!(
    a_lost_claim_records_nothing_and_a_lapsed_lease_frees_the_delivery,
    a_claim_takes_no_more_of_an_endpoint_than_its_room,
    endpoints_keep_their_health_and_are_disabled_when_gone_or_failing_too_long,
);

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
