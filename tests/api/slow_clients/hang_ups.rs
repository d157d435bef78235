//! Clients that hang up mid-request: hundreds of keyed `POST`s cut off at spread-out
//! moments leave every pooled connection usable and every answered order committed.

use std::time::Duration;

use order_processor::domain::OrderId;
use serde_json::Value;

use crate::helpers::{TestDb, on_every_backend, order_body, spawn_app};

on_every_backend!(clients_that_hang_up_mid_request_leave_every_connection_usable);

/// A client that hangs up while its request waits on the database drops the request's
/// work wherever it is. On PostgreSQL that once left a pooled connection inside a
/// transaction (sqlx 0.8 cannot be cancelled safely inside `BEGIN`): its next users'
/// statements then failed ("current transaction is aborted") or were answered and
/// never committed. Hundreds of keyed `POST`s cut off at spread-out moments, then every
/// connection must serve ordinary requests, and every order answered 201 must be
/// committed (seen by a connection of another pool).
async fn clients_that_hang_up_mid_request_leave_every_connection_usable(db: TestDb) {
    let app = spawn_app(db).await;
    let store = app.db.store().await;
    let impatient = reqwest::Client::new();
    for wave in 0..40u64 {
        let mut calls = tokio::task::JoinSet::new();
        for n in 0..64u64 {
            let request = impatient
                .post(app.url("/orders"))
                .header("Idempotency-Key", format!("hang-up-{wave}-{n}"))
                .json(&order_body())
                // From 0.1 to 6.4 ms: before, during and after each step of the insert.
                .timeout(Duration::from_micros(100 * ((n * 37 + wave * 11) % 64 + 1)));
            calls.spawn(request.send());
        }
        calls.join_all().await;
        // A connection left in a transaction is mended by the next transaction that
        // happens to take it, so the plain requests go after every wave.
        for _ in 0..10 {
            let created = app.post_order(&order_body()).await;
            assert_eq!(created.status(), 201, "{:?}", created.text().await);
            let id: Value = created.json().await.unwrap();
            let id = OrderId::from_uuid(id["order_id"].as_str().unwrap().parse().unwrap());
            assert!(
                store.get(id).await.unwrap().is_some(),
                "an order answered 201 is not committed"
            );
            let metrics = app.get("/metrics").await;
            assert_eq!(metrics.status(), 200, "{:?}", metrics.text().await);
        }
    }
}
