//! Webhook deliveries: owed with the consumer's move, claimed in each order's `seq`
//! order, attempts recorded under claims, endpoint health and disabling, operators'
//! retries and recovery, listings, retention. A file per concern (`owing`, `attempts`,
//! `operators`); the helpers they share are here.

mod attempts;
mod operators;
mod owing;

use std::time::Duration;

use order_processor::domain::{
    Delivery, EventType, OrderEvent, WebhookEndpoint, WebhookId, WebhookUrl, new_secret,
};
use order_processor::store::{DeliveryClaim, FinishedAttempt, NextStep, Owed, OwedPage, Store};
use uuid::Uuid;

use super::{LEASE, at, log_of, order};

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
