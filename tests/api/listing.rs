//! `GET /orders`: newest first, filters, keyset pagination, and bad parameters.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Value, json};

use crate::failures::list_all;
use crate::helpers::{Gate, Options, TestDb, on_every_backend, spawn_app_with};

on_every_backend!(
    pages_return_every_order_exactly_once_while_orders_keep_arriving,
    listings_filter_by_status_and_user,
    bad_listing_parameters_answer_400_naming_each,
);

async fn pages_return_every_order_exactly_once_while_orders_keep_arriving(db: TestDb) {
    let app = spawn_app_with(db, Options::default()).await;
    let mut existing = Vec::new();
    for n in 0..60 {
        let body = json!({"user_id": format!("u{n}"), "item_ids": ["i"], "total_amount": 1});
        existing.push(
            app.create_order(&body).await["order_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let app = Arc::new(app);
    let creating = tokio::spawn({
        let app = app.clone();
        async move {
            for _ in 0..40 {
                app.create_order(&json!({"user_id": "late", "item_ids": ["i"], "total_amount": 2}))
                    .await;
            }
        }
    });
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut order_of_ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/orders?limit=7".to_owned();
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let page = app.get_json(&path).await;
        let orders = page["orders"].as_array().unwrap();
        assert!(orders.len() <= 7);
        for order in orders {
            let id = order["order_id"].as_str().unwrap().to_owned();
            *seen.entry(id.clone()).or_default() += 1;
            order_of_ids.push(id);
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        tokio::task::yield_now().await;
    }
    creating.await.unwrap();
    for id in &existing {
        assert_eq!(seen.get(id), Some(&1), "{id} listed exactly once");
    }
    assert!(seen.values().all(|n| *n == 1), "no order listed twice");
    let mut sorted = order_of_ids.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(order_of_ids, sorted, "newest first");
}

async fn listings_filter_by_status_and_user(db: TestDb) {
    let gate = Arc::new(Gate::default());
    let app = spawn_app_with(
        db,
        Options {
            concurrency: 1,
            processor: Some(gate.clone()),
            ..Options::default()
        },
    )
    .await;
    for user in ["alice", "bob", "alice", "carol", "alice"] {
        app.create_order(&json!({"user_id": user, "item_ids": ["i"], "total_amount": 1}))
            .await;
    }
    let alice = list_all(&app, "user_id=alice").await;
    assert_eq!(alice.len(), 3);
    assert!(alice.iter().all(|o| o["user_id"] == "alice"));
    crate::helpers::eventually(
        std::time::Duration::from_secs(5),
        "one processing",
        || async { list_all(&app, "status=Processing").await.len() == 1 },
    )
    .await;
    assert_eq!(list_all(&app, "status=Pending").await.len(), 4);
    let ids = |orders: Vec<Value>| -> HashSet<String> {
        orders
            .iter()
            .map(|o| o["order_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let pending_alice = ids(list_all(&app, "status=Pending&user_id=alice").await);
    assert!(pending_alice.is_subset(&ids(alice)));
    assert!(list_all(&app, "user_id=nobody").await.is_empty());
    let page = app.get_json("/orders?status=Failed").await;
    assert_eq!(page, json!({"orders": [], "next_cursor": null}));
    gate.open();
}

async fn bad_listing_parameters_answer_400_naming_each(db: TestDb) {
    let app = spawn_app_with(db, Options::default()).await;
    let cases = [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=AAAA", "cursor"),
        ("status=failed", "status"),
        ("status=Unknown", "status"),
        ("stauts=Failed", "stauts"),
        ("user_id=", "user_id"),
        ("user_id=a%00b", "user_id"),
    ];
    for (query, field) in cases {
        let response = app.get(&format!("/orders?{query}")).await;
        assert_eq!(response.status(), 400, "{query}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["type"], "/problems/invalid-query");
        let named = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["field"] == field);
        assert!(named, "{query}: {problem}");
    }
}
