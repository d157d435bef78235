//! The state machine, enforced on every backend: every cause of the domain's transition
//! table is applied to an order in every status, and the store must move it exactly
//! as the table says, writing the cause's one event, or change nothing and write none.

use std::time::Duration;

use order_processor::domain::{
    AfterFailure, Cause, ItemIds, Money, Order, OrderId, OrderStatus, Timestamp, UserId,
    from_millis,
};
use order_processor::store::{CancelOutcome, Claim, ClaimOutcome, RetryOutcome, Store};

use crate::helpers::{TestDb, on_every_backend};

on_every_backend!(every_cause_moves_an_order_only_along_the_transition_table);

const LEASE: Duration = Duration::from_secs(30);
const DAY_MS: i64 = 86_400_000;
const T0: i64 = 1_800_000_000_000;

fn ms(at: Timestamp, offset: i64) -> Timestamp {
    from_millis(at.timestamp_millis() + offset)
}

/// An order in `status` whose every time is just before `base`, with its claim where it
/// had one (a made-up claim with a token the store never issued, where it had none).
async fn order_in(store: &dyn Store, status: OrderStatus, base: Timestamp) -> (Order, Claim) {
    let created = ms(base, -1_000);
    let order = Order {
        id: OrderId::new_at(created),
        user_id: UserId::parse("walker".into()).unwrap(),
        item_ids: ItemIds::parse(vec!["item".into()]).unwrap(),
        total_amount: Money::from_cents(100).unwrap(),
        status: OrderStatus::Pending,
        created_at: created,
        completed_at: None,
        attempts: 0,
        last_error: None,
        failed_at: None,
        next_attempt_at: Some(created),
        cancelled_at: None,
        cancel_reason: None,
        result: None,
    };
    store.insert(&order).await.unwrap();
    let never_issued = Claim {
        order: order.clone(),
        token: uuid::Uuid::new_v4(),
        lease_expires_at: ms(base, 30_000),
    };
    match status {
        OrderStatus::Pending => return (order, never_issued),
        OrderStatus::Cancelled => {
            let outcome = store.cancel(order.id, None, ms(base, -400)).await.unwrap();
            assert!(
                matches!(outcome, CancelOutcome::Cancelled(_)),
                "{outcome:?}"
            );
            return (order, never_issued);
        }
        _ => {}
    }
    let mut claims = store.claim(10, ms(base, -500), LEASE).await.unwrap();
    assert_eq!(claims.len(), 1, "only this order is due");
    let claim = claims.remove(0);
    let outcome = match status {
        OrderStatus::Processing => ClaimOutcome::Applied,
        OrderStatus::Completed => store.complete(&claim, None, ms(base, -400)).await.unwrap(),
        OrderStatus::Failed => store
            .fail(&claim, "failed", AfterFailure::DeadLetter, ms(base, -400))
            .await
            .unwrap(),
        OrderStatus::Pending | OrderStatus::Cancelled => unreachable!("returned above"),
    };
    assert_eq!(outcome, ClaimOutcome::Applied);
    assert_eq!(store.status(order.id).await.unwrap(), Some(status));
    (order, claim)
}

/// Applies `cause` through the store operation that performs it; returns whether the
/// store said it applied.
async fn apply(
    store: &dyn Store,
    cause: Cause,
    order: &Order,
    claim: &Claim,
    base: Timestamp,
) -> bool {
    let applied = |outcome: ClaimOutcome| outcome == ClaimOutcome::Applied;
    let expired = ms(base, LEASE.as_millis() as i64 + 1);
    match cause {
        Cause::Claim => !store.claim(10, base, LEASE).await.unwrap().is_empty(),
        Cause::Complete => applied(store.complete(claim, None, base).await.unwrap()),
        Cause::FailAndRetry => {
            let after = AfterFailure::RetryAt(ms(base, 1_000));
            applied(store.fail(claim, "boom", after, base).await.unwrap())
        }
        Cause::FailAndDeadLetter => {
            let after = AfterFailure::DeadLetter;
            applied(store.fail(claim, "boom", after, base).await.unwrap())
        }
        Cause::Release => applied(store.release(claim, base).await.unwrap()),
        Cause::RescueAndRequeue => {
            let rescued = store.rescue_expired(expired, 100).await.unwrap();
            rescued.requeued + rescued.dead_lettered > 0
        }
        Cause::RescueAndDeadLetter => {
            let rescued = store.rescue_expired(expired, 1).await.unwrap();
            rescued.requeued + rescued.dead_lettered > 0
        }
        Cause::OperatorRetry => matches!(
            store.retry_failed(order.id, base).await.unwrap(),
            RetryOutcome::Retried(_)
        ),
        Cause::Cancel => matches!(
            store.cancel(order.id, None, base).await.unwrap(),
            CancelOutcome::Cancelled(_)
        ),
    }
}

async fn every_cause_moves_an_order_only_along_the_transition_table(db: TestDb) {
    let store = db.store().await;
    let mut moves = 0;
    let mut pairs = 0;
    for cause in Cause::ALL {
        for from in OrderStatus::ALL {
            // Each pair a day before the last: orders of earlier pairs are never due,
            // nor their leases expired, at this pair's times.
            pairs += 1;
            let base = from_millis(T0 - pairs * DAY_MS);
            let (order, claim) = order_in(&*store, from, base).await;
            let before = store.order_events(order.id, 0).await.unwrap();
            let applied = apply(&*store, cause, &order, &claim, base).await;
            let expected = cause.applied_to(from);
            let now = store.status(order.id).await.unwrap().unwrap();
            assert_eq!(now, expected.unwrap_or(from), "{cause:?} on a {from} order");
            assert_eq!(
                applied,
                expected.is_some(),
                "{cause:?} on a {from} order said"
            );
            // The change wrote exactly its one event, numbered next, showing the order
            // as it now is; a cause that did not apply wrote none.
            let after = store.order_events(order.id, 0).await.unwrap();
            assert_eq!(after[..before.len()], before[..], "{cause:?} on {from}");
            let written = &after[before.len()..];
            if applied {
                assert_eq!(written.len(), 1, "{cause:?} on a {from} order: {written:?}");
                let event = &written[0];
                assert_eq!(event.event_type, cause.event_type(), "{cause:?} on {from}");
                assert_eq!(event.seq as usize, before.len() + 1);
                assert_eq!(event.order.status, now);
                assert_eq!(
                    Some(&event.order),
                    store.get(order.id).await.unwrap().as_ref(),
                    "{cause:?} on {from}: the event shows the order as it is"
                );
            } else {
                assert!(
                    written.is_empty(),
                    "{cause:?} on a {from} order: {written:?}"
                );
            }
            moves += usize::from(applied);
        }
    }
    assert_eq!(
        moves,
        order_processor::domain::TRANSITIONS.len(),
        "every row of the table was walked"
    );
}
