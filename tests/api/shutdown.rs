//! Graceful stop on SIGTERM: exit 0, finish what fits in the grace period, hand the
//! rest back to the queue.

use std::time::Duration;

use crate::binary::Server;
use crate::helpers::{TestDb, eventually, on_every_backend, order_body};

on_every_backend!(
    sigterm_returns_unfinished_orders_to_the_queue_and_exits_zero,
    sigterm_lets_in_flight_processing_finish_within_the_grace_period,
);

/// Creates an order and waits until a worker holds it.
async fn create_and_wait_processing(server: &Server) -> String {
    let id = server.create_order(&order_body()).await;
    eventually(Duration::from_secs(5), "the order processing", || async {
        server.get_json(&format!("/orders/{id}/status")).await["status"] == "Processing"
    })
    .await;
    id
}

async fn sigterm_returns_unfinished_orders_to_the_queue_and_exits_zero(db: TestDb) {
    let server = Server::start(
        &db.url,
        &[
            ("PROCESSING_TIME_MS", "20000"),
            ("PROCESSING_TIMEOUT_MS", "25000"),
            ("SHUTDOWN_GRACE_MS", "200"),
        ],
    );
    let id = create_and_wait_processing(&server).await;

    let (status, logs) = server.terminate(Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}");
    assert!(
        logs.iter()
            .any(|l| l["message"] == "returned unfinished order to the queue")
    );

    let order = db
        .store()
        .await
        .get(id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        order.status.as_str(),
        "Pending",
        "handed back, not left Processing"
    );
    assert_eq!(order.attempts, 1);
    assert_eq!(
        crate::events::event_types(&*db.store().await, &id).await,
        ["order.created", "order.processing", "order.requeued"],
        "the hand-back is logged"
    );
}

async fn sigterm_lets_in_flight_processing_finish_within_the_grace_period(db: TestDb) {
    let server = Server::start(
        &db.url,
        &[
            ("PROCESSING_TIME_MS", "500"),
            ("SHUTDOWN_GRACE_MS", "10000"),
        ],
    );
    let id = create_and_wait_processing(&server).await;

    let (status, _) = server.terminate(Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}");
    let order = db
        .store()
        .await
        .get(id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(order.status.as_str(), "Completed");
}
