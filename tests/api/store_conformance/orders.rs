//! Orders in and out: insert and read back (alone and many at once), import,
//! migrations run twice, a taken id.

use order_processor::domain::{ItemIds, OrderId, OrderStatus, UserId};

use super::keys::keyed;
use super::{at, order};
use crate::helpers::{TestDb, on_every_backend};

on_every_backend!(
    insert_then_get_round_trips_every_field,
    unknown_ids_are_absent,
    reads_at_once_each_get_their_own_answer,
    import_adds_only_orders_not_yet_stored,
    migrations_can_run_again,
    a_taken_order_id_fails_that_order_alone,
);

async fn insert_then_get_round_trips_every_field(db: TestDb) {
    let store = db.store().await;
    let mut new = order(1, "'); DROP TABLE orders;-- Zoë 🛒");
    // What a statement, an array literal or a CSV could mistake for syntax.
    let items = [
        "<script>",
        "b",
        "a",
        "q\"uote",
        "back\\slash",
        "{,}",
        "NULL",
        " spaced ",
    ];
    new.item_ids = ItemIds::parse(items.map(String::from).to_vec()).unwrap();
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

/// PostgreSQL answers concurrent reads by id with one statement for many (coalescing):
/// each caller still gets its own order, an id asked twice is answered twice, a missing
/// id is absent, and a read asked after a write was acknowledged sees it.
async fn reads_at_once_each_get_their_own_answer(db: TestDb) {
    let store = db.store().await;
    let mut stored = Vec::new();
    for n in 0..40 {
        let mut new = order(n, &format!("user{n}"));
        if n % 2 == 1 {
            new.status = OrderStatus::Completed;
            new.completed_at = Some(at(n + 1_000));
            new.attempts = 1;
            new.next_attempt_at = None;
        }
        stored.push(new);
    }
    assert_eq!(store.import(&stored).await.unwrap(), 40);
    let mut reads = tokio::task::JoinSet::new();
    for round in 0..10i64 {
        for (n, known) in stored.iter().enumerate() {
            let (store, known) = (store.clone(), known.clone());
            reads.spawn(async move {
                if (n as i64 + round) % 2 == 0 {
                    assert_eq!(store.get(known.id).await.unwrap(), Some(known));
                } else {
                    assert_eq!(store.status(known.id).await.unwrap(), Some(known.status));
                }
            });
        }
        let reader = store.clone();
        reads.spawn(async move {
            let missing = OrderId::new_at(at(90_000 + round));
            assert_eq!(reader.get(missing).await.unwrap(), None);
            assert_eq!(reader.status(missing).await.unwrap(), None);
        });
        let writer = store.clone();
        reads.spawn(async move {
            let new = order(50_000 + round, "writer");
            writer.insert(&new).await.unwrap();
            assert_eq!(
                writer.status(new.id).await.unwrap(),
                Some(OrderStatus::Pending)
            );
            assert_eq!(writer.get(new.id).await.unwrap(), Some(new));
        });
    }
    while let Some(read) = reads.join_next().await {
        read.unwrap();
    }
}

async fn import_adds_only_orders_not_yet_stored(db: TestDb) {
    let store = db.store().await;
    let mut done = order(1, "u");
    done.status = OrderStatus::Completed;
    done.completed_at = Some(at(2_000));
    done.attempts = 1;
    done.next_attempt_at = None;
    let orders = vec![done.clone(), order(2, "u")];
    assert_eq!(store.import(&orders).await.unwrap(), 2);
    assert_eq!(store.import(&orders).await.unwrap(), 0);
    assert_eq!(store.get(done.id).await.unwrap(), Some(done));
    assert_eq!(store.metrics().await.unwrap().counts.total(), 2);
}

async fn migrations_can_run_again(db: TestDb) {
    let store = db.store().await;
    store.insert(&order(1, "u")).await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.metrics().await.unwrap().counts.total(), 1);
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
