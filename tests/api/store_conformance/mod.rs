//! The store conformance suite: written once, run against every backend (each file's
//! tests through `on_every_backend!`, the one list of backends). Any change of store
//! behaviour extends it. One file per concern of the `Store` trait.

mod cancel;
mod consumers;
mod deliveries;
mod events;
mod failures;
mod keys;
mod listing;
mod metrics;
mod orders;
mod queue;
mod results;
mod transitions;
mod webhooks;

use std::time::{Duration, Instant};

use order_processor::domain::{
    ItemIds, Money, Order, OrderEvent, OrderId, OrderStatus, Timestamp, UserId, from_millis,
};
use order_processor::store::{Rescued, Store};

pub const T0: i64 = 1_768_471_200_000;

pub fn at(offset_ms: i64) -> Timestamp {
    from_millis(T0 + offset_ms)
}

pub fn order(n: i64, user: &str) -> Order {
    Order {
        id: OrderId::new_at(at(n)),
        user_id: UserId::parse(user.into()).unwrap(),
        item_ids: ItemIds::parse(vec![format!("item{n}"), "shared".into()]).unwrap(),
        total_amount: Money::from_cents(100 + n).unwrap(),
        status: OrderStatus::Pending,
        created_at: at(n),
        completed_at: None,
        attempts: 0,
        last_error: None,
        failed_at: None,
        next_attempt_at: Some(at(n)),
        cancelled_at: None,
        cancel_reason: None,
        result: None,
    }
}

pub fn requeued(requeued: u64) -> Rescued {
    Rescued {
        requeued,
        dead_lettered: 0,
    }
}

pub const LEASE: Duration = Duration::from_secs(30);

/// The log's first `expected` events, once they can be read: on PostgreSQL a reader
/// sees only positions below the oldest transaction still running anywhere on the
/// server, which the tests running beside this one may hold back for a moment.
pub async fn log_of(store: &dyn Store, expected: usize) -> Vec<OrderEvent> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = store.events_after(0, 100).await.unwrap();
        if log.len() >= expected || Instant::now() > deadline {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
