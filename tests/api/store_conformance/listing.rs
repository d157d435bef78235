//! Listings: newest first, filtered, keyset-paged, for every status alone and by user.

use order_processor::domain::{Order, OrderId, OrderStatus};
use order_processor::store::ListQuery;

use super::{LEASE, at, order};
use crate::helpers::{TestDb, on_every_backend};

on_every_backend!(
    listing_is_newest_first_filtered_and_keyset_paged,
    each_status_lists_newest_first_in_pages_alone_and_by_user,
);

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
