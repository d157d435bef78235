//! The store conformance suite: written once, run against every backend. Any change of
//! store behaviour extends it.

use std::time::Duration;

use order_processor::domain::{
    AfterFailure, ItemIds, Money, Order, OrderId, OrderStatus, Timestamp, UserId, from_millis,
};
use order_processor::store::{
    ClaimOutcome, IdempotentResponse, KeyedInsert, ListQuery, Rescued, RetryOutcome, Store,
};

use crate::helpers::{TestDb, on_every_backend};

on_every_backend!(
    insert_then_get_round_trips_every_field,
    unknown_ids_are_absent,
    import_adds_only_orders_not_yet_stored,
    claim_takes_the_oldest_pending_orders_and_starts_an_attempt,
    claim_respects_its_limit_and_skips_claimed_orders,
    concurrent_claims_never_share_an_order,
    complete_applies_once_under_the_current_claim,
    a_stale_claim_can_neither_complete_nor_release,
    release_returns_the_order_to_the_queue,
    rescue_takes_back_only_expired_leases,
    metrics_count_statuses_and_sum_processing_time,
    metrics_follow_every_kind_of_change,
    a_failed_attempt_waits_for_its_retry_time,
    the_last_failed_attempt_dead_letters_the_order,
    a_stale_claim_cannot_record_a_failure,
    rescue_dead_letters_orders_out_of_attempts,
    retry_requeues_only_failed_orders_with_a_fresh_budget,
    listing_is_newest_first_filtered_and_keyset_paged,
    each_status_lists_newest_first_in_pages_alone_and_by_user,
    a_keyed_order_and_its_key_are_stored_together_once,
    expired_keys_are_replaced_and_pruned,
    migrations_can_run_again,
    a_taken_order_id_fails_that_order_alone,
);

const T0: i64 = 1_768_471_200_000;

fn at(offset_ms: i64) -> Timestamp {
    from_millis(T0 + offset_ms)
}

fn order(n: i64, user: &str) -> Order {
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
    }
}

fn requeued(requeued: u64) -> Rescued {
    Rescued {
        requeued,
        dead_lettered: 0,
    }
}

const LEASE: Duration = Duration::from_secs(30);

async fn insert_then_get_round_trips_every_field(db: TestDb) {
    let store = db.store().await;
    let mut new = order(1, "'); DROP TABLE orders;-- Zoë 🛒");
    new.item_ids = ItemIds::parse(vec!["<script>".into(), "b".into(), "a".into()]).unwrap();
    store.insert(&new).await.unwrap();
    assert_eq!(store.get(new.id).await.unwrap(), Some(new.clone()));
    assert_eq!(
        store.status(new.id).await.unwrap(),
        Some(OrderStatus::Pending)
    );
}

async fn unknown_ids_are_absent(db: TestDb) {
    let store = db.store().await;
    let id = OrderId::new_at(at(0));
    assert_eq!(store.get(id).await.unwrap(), None);
    assert_eq!(store.status(id).await.unwrap(), None);
}

async fn import_adds_only_orders_not_yet_stored(db: TestDb) {
    let store = db.store().await;
    let mut done = order(1, "u");
    done.status = OrderStatus::Completed;
    done.completed_at = Some(at(2_000));
    done.attempts = 1;
    let orders = vec![done.clone(), order(2, "u")];
    assert_eq!(store.import(&orders).await.unwrap(), 2);
    assert_eq!(store.import(&orders).await.unwrap(), 0);
    assert_eq!(store.get(done.id).await.unwrap(), Some(done));
    assert_eq!(store.metrics().await.unwrap().counts.total(), 2);
}

async fn claim_takes_the_oldest_pending_orders_and_starts_an_attempt(db: TestDb) {
    let store = db.store().await;
    let (old, new) = (order(1, "u"), order(2, "u"));
    store.insert(&new).await.unwrap();
    store.insert(&old).await.unwrap();
    let claims = store.claim(1, at(10_000), LEASE).await.unwrap();
    assert_eq!(claims.len(), 1);
    let claim = &claims[0];
    assert_eq!(claim.order.id, old.id);
    assert_eq!(claim.order.status, OrderStatus::Processing);
    assert_eq!(claim.order.attempts, 1);
    assert_eq!(claim.lease_expires_at, at(40_000));
    let stored = store.get(old.id).await.unwrap().unwrap();
    assert_eq!(stored.status, OrderStatus::Processing);
    assert_eq!(stored.attempts, 1);
    assert_eq!(
        store.status(new.id).await.unwrap(),
        Some(OrderStatus::Pending)
    );
}

async fn claim_respects_its_limit_and_skips_claimed_orders(db: TestDb) {
    let store = db.store().await;
    for n in 0..5 {
        store.insert(&order(n, "u")).await.unwrap();
    }
    let first = store.claim(3, at(10), LEASE).await.unwrap();
    assert_eq!(first.len(), 3);
    let second = store.claim(3, at(20), LEASE).await.unwrap();
    assert_eq!(second.len(), 2);
    assert!(store.claim(3, at(30), LEASE).await.unwrap().is_empty());
    let ids: std::collections::HashSet<_> =
        first.iter().chain(&second).map(|c| c.order.id).collect();
    assert_eq!(ids.len(), 5, "five distinct orders in two claims");
}

async fn concurrent_claims_never_share_an_order(db: TestDb) {
    let store = db.store().await;
    for n in 0..200 {
        store.insert(&order(n, "u")).await.unwrap();
    }
    let claimers = (0..8).map(|_| async {
        let mut mine = Vec::new();
        loop {
            let claims = store.claim(7, at(1_000), LEASE).await.unwrap();
            if claims.is_empty() {
                return mine;
            }
            mine.extend(claims.into_iter().map(|c| c.order.id));
        }
    });
    let all: Vec<OrderId> = futures::future::join_all(claimers)
        .await
        .into_iter()
        .flatten()
        .collect();
    let distinct: std::collections::HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 200);
    assert_eq!(distinct.len(), 200);
}

async fn complete_applies_once_under_the_current_claim(db: TestDb) {
    let store = db.store().await;
    let new = order(1, "u");
    store.insert(&new).await.unwrap();
    let claim = store.claim(1, at(1_000), LEASE).await.unwrap().remove(0);
    assert_eq!(
        store.complete(&claim, at(2_500)).await.unwrap(),
        ClaimOutcome::Applied
    );
    assert_eq!(
        store.complete(&claim, at(3_000)).await.unwrap(),
        ClaimOutcome::ClaimLost
    );
    let done = store.get(new.id).await.unwrap().unwrap();
    assert_eq!(done.status, OrderStatus::Completed);
    assert_eq!(done.completed_at, Some(at(2_500)));
    assert_eq!(
        store.release(&claim).await.unwrap(),
        ClaimOutcome::ClaimLost
    );
    assert!(store.claim(1, at(4_000), LEASE).await.unwrap().is_empty());
}

async fn a_stale_claim_can_neither_complete_nor_release(db: TestDb) {
    let store = db.store().await;
    let new = order(1, "u");
    store.insert(&new).await.unwrap();
    let stale = store.claim(1, at(1), LEASE).await.unwrap().remove(0);
    // The lease runs out; the order is rescued and claimed by someone else.
    assert_eq!(
        store.rescue_expired(at(31_000), 5).await.unwrap(),
        requeued(1)
    );
    let current = store.claim(1, at(31_000), LEASE).await.unwrap().remove(0);
    assert_ne!(current.token, stale.token);
    assert_eq!(current.order.attempts, 2);
    assert_eq!(
        store.complete(&stale, at(32_000)).await.unwrap(),
        ClaimOutcome::ClaimLost
    );
    assert_eq!(
        store.release(&stale).await.unwrap(),
        ClaimOutcome::ClaimLost
    );
    assert_eq!(
        store.status(new.id).await.unwrap(),
        Some(OrderStatus::Processing)
    );
    assert_eq!(
        store.complete(&current, at(33_000)).await.unwrap(),
        ClaimOutcome::Applied
    );
    let done = store.get(new.id).await.unwrap().unwrap();
    assert_eq!(done.completed_at, Some(at(33_000)));
}

async fn release_returns_the_order_to_the_queue(db: TestDb) {
    let store = db.store().await;
    let new = order(1, "u");
    store.insert(&new).await.unwrap();
    let claim = store.claim(1, at(1), LEASE).await.unwrap().remove(0);
    assert_eq!(store.release(&claim).await.unwrap(), ClaimOutcome::Applied);
    assert_eq!(
        store.status(new.id).await.unwrap(),
        Some(OrderStatus::Pending)
    );
    let again = store.claim(1, at(10), LEASE).await.unwrap().remove(0);
    assert_eq!(again.order.id, new.id);
    assert_eq!(again.order.attempts, 2, "the released attempt still counts");
}

async fn rescue_takes_back_only_expired_leases(db: TestDb) {
    let store = db.store().await;
    let (early, late) = (order(1, "u"), order(2, "u"));
    store.insert(&early).await.unwrap();
    store.insert(&late).await.unwrap();
    store.claim(1, at(10), LEASE).await.unwrap();
    store.claim(1, at(10_000), LEASE).await.unwrap();
    assert_eq!(
        store.rescue_expired(at(30_010), 5).await.unwrap(),
        requeued(0),
        "not yet expired"
    );
    assert_eq!(
        store.rescue_expired(at(30_011), 5).await.unwrap(),
        requeued(1)
    );
    assert_eq!(
        store.status(early.id).await.unwrap(),
        Some(OrderStatus::Pending)
    );
    assert_eq!(
        store.status(late.id).await.unwrap(),
        Some(OrderStatus::Processing)
    );
}

async fn metrics_count_statuses_and_sum_processing_time(db: TestDb) {
    let store = db.store().await;
    let empty = store.metrics().await.unwrap();
    assert_eq!(empty.counts.total(), 0);
    assert_eq!(empty.average_processing_seconds(), 0.0);
    let mut orders = Vec::new();
    for (n, processing_ms) in [(1, 1_000), (2, 2_000), (3, 4_500)] {
        let mut done = order(n, "u");
        done.status = OrderStatus::Completed;
        done.completed_at = Some(at(n + processing_ms));
        done.attempts = 1;
        orders.push(done);
    }
    orders.push(order(10, "u"));
    orders.push(order(11, "u"));
    orders.push(order(12, "u"));
    store.import(&orders).await.unwrap();
    store.claim(1, at(20), LEASE).await.unwrap();
    let metrics = store.metrics().await.unwrap();
    assert_eq!(metrics.counts.get(OrderStatus::Pending), 2);
    assert_eq!(metrics.counts.get(OrderStatus::Processing), 1);
    assert_eq!(metrics.counts.get(OrderStatus::Completed), 3);
    assert_eq!(metrics.total_processing_ms, 7_500);
    assert_eq!(metrics.average_processing_seconds(), 2.5);
}

async fn migrations_can_run_again(db: TestDb) {
    let store = db.store().await;
    store.insert(&order(1, "u")).await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.metrics().await.unwrap().counts.total(), 1);
}

async fn metrics_follow_every_kind_of_change(db: TestDb) {
    let store = db.store().await;
    for n in 0..6 {
        store.insert(&order(n, "u")).await.unwrap();
    }
    expect_metrics(store.as_ref(), 6, 0, 0, 0).await;
    let claims = store.claim(4, at(1_000), LEASE).await.unwrap();
    expect_metrics(store.as_ref(), 2, 4, 0, 0).await;
    store.complete(&claims[0], at(1_500)).await.unwrap();
    expect_metrics(store.as_ref(), 2, 3, 1, 1_500).await;
    store.complete(&claims[0], at(9_000)).await.unwrap();
    expect_metrics(store.as_ref(), 2, 3, 1, 1_500).await;
    store.release(&claims[1]).await.unwrap();
    expect_metrics(store.as_ref(), 3, 2, 1, 1_500).await;
    store.rescue_expired(at(1_000 + 30_001), 5).await.unwrap();
    expect_metrics(store.as_ref(), 5, 0, 1, 1_500).await;
    let again = store.claim(10, at(40_000), LEASE).await.unwrap();
    assert_eq!(again.len(), 5);
    for claim in &again {
        store.complete(claim, at(40_000)).await.unwrap();
    }
    // Orders 1..=5 were created at T0+1..T0+5 ms and completed at T0+40,000 ms.
    let total: i64 = 1_500
        + again
            .iter()
            .map(|c| 40_000 - (c.order.created_at - at(0)).num_milliseconds())
            .sum::<i64>();
    expect_metrics(store.as_ref(), 0, 0, 6, total).await;
}

/// Asserts (pending, processing, completed, total processing ms).
async fn expect_metrics(store: &dyn Store, pending: u64, processing: u64, completed: u64, ms: i64) {
    let metrics = store.metrics().await.unwrap();
    let counts = metrics.counts;
    assert_eq!(
        (
            counts.get(OrderStatus::Pending),
            counts.get(OrderStatus::Processing),
            counts.get(OrderStatus::Completed),
            metrics.total_processing_ms
        ),
        (pending, processing, completed, ms)
    );
}

async fn a_failed_attempt_waits_for_its_retry_time(db: TestDb) {
    let store = db.store().await;
    let new = order(1, "u");
    store.insert(&new).await.unwrap();
    let claim = store.claim(1, at(10), LEASE).await.unwrap().remove(0);
    let outcome = store
        .fail(
            &claim,
            "card declined",
            AfterFailure::RetryAt(at(5_000)),
            at(20),
        )
        .await
        .unwrap();
    assert_eq!(outcome, ClaimOutcome::Applied);
    let pending = store.get(new.id).await.unwrap().unwrap();
    assert_eq!(pending.status, OrderStatus::Pending);
    assert_eq!(pending.last_error.as_deref(), Some("card declined"));
    assert_eq!(pending.failed_at, None);
    assert!(
        store.claim(1, at(4_999), LEASE).await.unwrap().is_empty(),
        "not due yet"
    );
    let again = store.claim(1, at(5_000), LEASE).await.unwrap().remove(0);
    assert_eq!(again.order.attempts, 2);
}

async fn the_last_failed_attempt_dead_letters_the_order(db: TestDb) {
    let store = db.store().await;
    let new = order(1, "u");
    store.insert(&new).await.unwrap();
    let claim = store.claim(1, at(10), LEASE).await.unwrap().remove(0);
    store
        .fail(&claim, "out of stock", AfterFailure::DeadLetter, at(30))
        .await
        .unwrap();
    let failed = store.get(new.id).await.unwrap().unwrap();
    assert_eq!(failed.status, OrderStatus::Failed);
    assert_eq!(failed.failed_at, Some(at(30)));
    assert_eq!(failed.last_error.as_deref(), Some("out of stock"));
    assert_eq!(failed.attempts, 1);
    assert!(store.claim(1, at(100_000), LEASE).await.unwrap().is_empty());
    assert_eq!(
        store
            .metrics()
            .await
            .unwrap()
            .counts
            .get(OrderStatus::Failed),
        1
    );
}

async fn a_stale_claim_cannot_record_a_failure(db: TestDb) {
    let store = db.store().await;
    let new = order(1, "u");
    store.insert(&new).await.unwrap();
    let stale = store.claim(1, at(10), LEASE).await.unwrap().remove(0);
    store.rescue_expired(at(40_000), 5).await.unwrap();
    let current = store.claim(1, at(40_000), LEASE).await.unwrap().remove(0);
    let outcome = store
        .fail(&stale, "late", AfterFailure::DeadLetter, at(40_001))
        .await
        .unwrap();
    assert_eq!(outcome, ClaimOutcome::ClaimLost);
    assert_eq!(
        store.complete(&current, at(40_002)).await.unwrap(),
        ClaimOutcome::Applied
    );
}

async fn rescue_dead_letters_orders_out_of_attempts(db: TestDb) {
    let store = db.store().await;
    let (first, second) = (order(1, "u"), order(2, "u"));
    store.insert(&first).await.unwrap();
    let claim = store.claim(1, at(10), LEASE).await.unwrap().remove(0);
    store.rescue_expired(at(40_000), 2).await.unwrap();
    store.insert(&second).await.unwrap();
    // The first order's second attempt also dies: it has had its 2 attempts.
    let claims = store.claim(2, at(40_000), LEASE).await.unwrap();
    assert_eq!(claims.len(), 2);
    assert_eq!(claims[0].order.id, claim.order.id);
    let rescued = store.rescue_expired(at(80_000), 2).await.unwrap();
    assert_eq!(
        rescued,
        Rescued {
            requeued: 1,
            dead_lettered: 1
        }
    );
    let dead = store.get(first.id).await.unwrap().unwrap();
    assert_eq!(dead.status, OrderStatus::Failed);
    assert_eq!(dead.failed_at, Some(at(80_000)));
    assert!(dead.last_error.unwrap().contains("lease expired"));
    assert_eq!(
        store.status(second.id).await.unwrap(),
        Some(OrderStatus::Pending)
    );
}

async fn retry_requeues_only_failed_orders_with_a_fresh_budget(db: TestDb) {
    let store = db.store().await;
    let new = order(1, "u");
    store.insert(&new).await.unwrap();
    assert_eq!(
        store.retry_failed(new.id, at(20)).await.unwrap(),
        RetryOutcome::NotFailed(OrderStatus::Pending)
    );
    assert_eq!(
        store
            .retry_failed(OrderId::new_at(at(0)), at(20))
            .await
            .unwrap(),
        RetryOutcome::NotFound
    );
    let claim = store.claim(1, at(10), LEASE).await.unwrap().remove(0);
    store
        .fail(&claim, "boom", AfterFailure::DeadLetter, at(30))
        .await
        .unwrap();
    let RetryOutcome::Retried(retried) = store.retry_failed(new.id, at(50)).await.unwrap() else {
        panic!("a Failed order is retried");
    };
    assert_eq!(retried.status, OrderStatus::Pending);
    assert_eq!(retried.attempts, 0);
    assert_eq!(retried.failed_at, None);
    assert_eq!(retried.last_error.as_deref(), Some("boom"), "history kept");
    assert_eq!(
        store
            .metrics()
            .await
            .unwrap()
            .counts
            .get(OrderStatus::Failed),
        0
    );
    let again = store.claim(1, at(50), LEASE).await.unwrap().remove(0);
    assert_eq!(again.order.attempts, 1);
}

async fn listing_is_newest_first_filtered_and_keyset_paged(db: TestDb) {
    let store = db.store().await;
    let orders: Vec<Order> = (0..7)
        .map(|n| order(n, if n % 2 == 0 { "even" } else { "odd" }))
        .collect();
    for o in &orders {
        store.insert(o).await.unwrap();
    }
    store.claim(2, at(10), LEASE).await.unwrap(); // orders 0 and 1: Processing
    let ids = |list: Vec<Order>| list.into_iter().map(|o| o.id).collect::<Vec<_>>();
    let newest_first: Vec<OrderId> = orders.iter().rev().map(|o| o.id).collect();

    let all = store
        .list(&ListQuery {
            limit: 10,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(all), newest_first);

    let page1 = store
        .list(&ListQuery {
            limit: 3,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    let before = page1.last().unwrap().id;
    let page2 = store
        .list(&ListQuery {
            limit: 3,
            before: Some(before),
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(page1), newest_first[..3]);
    assert_eq!(ids(page2), newest_first[3..6]);

    let evens = store
        .list(&ListQuery {
            user_id: Some("even".into()),
            limit: 10,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        ids(evens),
        [orders[6].id, orders[4].id, orders[2].id, orders[0].id]
    );
    let processing = store
        .list(&ListQuery {
            status: Some(OrderStatus::Processing),
            limit: 10,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(processing), [orders[1].id, orders[0].id]);
    let odd_pending = store
        .list(&ListQuery {
            status: Some(OrderStatus::Pending),
            user_id: Some("odd".into()),
            limit: 10,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(odd_pending), [orders[5].id, orders[3].id]);
}

async fn each_status_lists_newest_first_in_pages_alone_and_by_user(db: TestDb) {
    let store = db.store().await;
    // Four orders in each status, two of them alice's and two bob's, the statuses
    // interleaved in time so that no status is a range of ids.
    let user = |n: i64| if (n / 4) % 2 == 0 { "alice" } else { "bob" };
    let mut imported = Vec::new();
    let mut ids = Vec::new();
    for n in 0..16 {
        let mut order = order(n, user(n));
        ids.push(order.id);
        match n % 4 {
            0 => {
                // Claimed (Processing) before the others are stored.
                store.insert(&order).await.unwrap();
                continue;
            }
            1 => {}
            2 => {
                order.status = OrderStatus::Completed;
                order.completed_at = Some(at(n + 1_000));
                order.attempts = 1;
            }
            _ => {
                order.status = OrderStatus::Failed;
                order.failed_at = Some(at(n + 1_000));
                order.attempts = 3;
                order.last_error = Some("declined".into());
            }
        }
        imported.push(order);
    }
    assert_eq!(store.claim(10, at(20), LEASE).await.unwrap().len(), 4);
    assert_eq!(store.import(&imported).await.unwrap(), 12);

    let statuses = [
        (0, OrderStatus::Processing),
        (1, OrderStatus::Pending),
        (2, OrderStatus::Completed),
        (3, OrderStatus::Failed),
    ];
    for (remainder, status) in statuses {
        let newest_first: Vec<i64> = (0..16).rev().filter(|n| n % 4 == remainder).collect();
        let id = |n: i64| ids[n as usize];
        let page = |user_id: Option<&str>, before: Option<OrderId>, limit: usize| {
            let store = &store;
            let query = ListQuery {
                status: Some(status),
                user_id: user_id.map(str::to_owned),
                before,
                limit,
            };
            async move {
                let page = store.list(&query).await.unwrap();
                assert!(page.iter().all(|order| order.status == status));
                page.into_iter().map(|order| order.id).collect::<Vec<_>>()
            }
        };
        let first = page(None, None, 3).await;
        let expected: Vec<OrderId> = newest_first.iter().map(|n| id(*n)).collect();
        assert_eq!(first, expected[..3], "{status}: first page");
        let rest = page(None, first.last().copied(), 3).await;
        assert_eq!(rest, expected[3..], "{status}: second page");

        let alices: Vec<OrderId> = newest_first
            .iter()
            .filter(|n| user(**n) == "alice")
            .map(|n| id(*n))
            .collect();
        let first = page(Some("alice"), None, 1).await;
        assert_eq!(first, alices[..1], "{status}: alice's first page");
        let rest = page(Some("alice"), first.last().copied(), 5).await;
        assert_eq!(rest, alices[1..], "{status}: alice's second page");
    }
}

fn keyed(order: &Order, key: &str, created_ms: i64) -> IdempotentResponse {
    IdempotentResponse {
        scope: "alice".into(),
        key: key.into(),
        fingerprint: format!("fp-{}", order.id),
        order_id: order.id,
        status: 201,
        body: format!("{{\"order_id\":\"{}\"}}", order.id),
        created_at: at(created_ms),
    }
}

async fn a_keyed_order_and_its_key_are_stored_together_once(db: TestDb) {
    let store = db.store().await;
    let (first, second) = (order(1, "alice"), order(2, "alice"));
    let response = keyed(&first, "k-1", 1);
    let inserted = store.insert_keyed(&first, &response, at(0)).await.unwrap();
    assert_eq!(inserted, KeyedInsert::Inserted);
    assert_eq!(
        store.find_keyed("alice", "k-1", at(0)).await.unwrap(),
        Some(response)
    );
    assert!(store.get(first.id).await.unwrap().is_some());

    // The same key again: nothing of the second order may be written.
    let taken = store
        .insert_keyed(&second, &keyed(&second, "k-1", 2), at(0))
        .await
        .unwrap();
    assert_eq!(taken, KeyedInsert::KeyTaken);
    assert_eq!(store.get(second.id).await.unwrap(), None);
    assert_eq!(store.metrics().await.unwrap().counts.total(), 1);
    // Keys are per scope.
    assert_eq!(store.find_keyed("bob", "k-1", at(0)).await.unwrap(), None);
}

async fn expired_keys_are_replaced_and_pruned(db: TestDb) {
    let store = db.store().await;
    let (first, second) = (order(1, "alice"), order(2, "alice"));
    store
        .insert_keyed(&first, &keyed(&first, "k", 1), at(0))
        .await
        .unwrap();
    // Live since 50 s: the first key has expired, so the second takes its place.
    let replacement = keyed(&second, "k", 100_000);
    let inserted = store
        .insert_keyed(&second, &replacement, at(50_000))
        .await
        .unwrap();
    assert_eq!(inserted, KeyedInsert::Inserted);
    assert_eq!(
        store.find_keyed("alice", "k", at(50_000)).await.unwrap(),
        Some(replacement)
    );
    assert_eq!(
        store.find_keyed("alice", "k", at(100_001)).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(store.prune_keys(at(100_000)).await.unwrap(), 0);
    assert_eq!(store.prune_keys(at(100_001)).await.unwrap(), 1);
    assert_eq!(store.find_keyed("alice", "k", at(0)).await.unwrap(), None);
    assert_eq!(
        store.metrics().await.unwrap().counts.total(),
        2,
        "orders stay"
    );
}

async fn a_taken_order_id_fails_that_order_alone(db: TestDb) {
    let store = db.store().await;
    let (first, other) = (order(1, "alice"), order(2, "bob"));
    store.insert(&first).await.unwrap();
    let mut again = first.clone();
    again.user_id = UserId::parse("mallory".into()).unwrap();
    // Sent together, so that they may share a group commit.
    let (taken, fine) = tokio::join!(store.insert(&again), store.insert(&other));
    assert!(taken.is_err(), "a second order with a taken id is refused");
    fine.unwrap();
    assert_eq!(store.get(first.id).await.unwrap(), Some(first.clone()));
    assert_eq!(store.get(other.id).await.unwrap(), Some(other));

    // With an idempotency key, the refused order leaves no key behind.
    let refused = store
        .insert_keyed(&again, &keyed(&again, "k-taken", 3), at(0))
        .await;
    assert!(refused.is_err());
    assert_eq!(
        store.find_keyed("alice", "k-taken", at(0)).await.unwrap(),
        None
    );
    assert_eq!(store.metrics().await.unwrap().counts.total(), 2);
}
