//! The API contract, field by field.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use order_processor::domain::OrderId;
use serde_json::{Value, json};

use crate::helpers::{
    Gate, Options, TestDb, on_every_backend, order_body, spawn_app, spawn_app_with,
};

on_every_backend!(
    create_answers_201_with_location_and_the_order_as_sent,
    amounts_come_back_as_the_same_json_number,
    get_order_answers_every_field_and_completed_at_once_done,
    status_answers_only_the_status,
    unknown_and_malformed_order_ids_answer_404_problems,
    hostile_looking_strings_are_stored_and_returned_verbatim,
    unknown_routes_and_wrong_methods_answer_in_the_problem_shape,
);

async fn create_answers_201_with_location_and_the_order_as_sent(db: TestDb) {
    let app = spawn_app(db).await;
    let before = Utc::now() - chrono::Duration::milliseconds(1);
    let response = app.post_order(&order_body()).await;
    let after = Utc::now() + chrono::Duration::milliseconds(1);

    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["content-type"], "application/json");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();

    let object = body.as_object().unwrap();
    let mut keys: Vec<_> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "created_at",
            "item_ids",
            "order_id",
            "status",
            "total_amount",
            "user_id"
        ]
    );
    let order_id = body["order_id"].as_str().unwrap();
    let uuid = uuid::Uuid::parse_str(order_id).unwrap();
    assert_eq!(uuid.get_version_num(), 7, "order_id is a UUIDv7");
    assert_eq!(location, format!("/orders/{order_id}"));
    assert_eq!(body["user_id"], "user1");
    assert_eq!(body["item_ids"], json!(["item1", "item2"]));
    assert_eq!(body["total_amount"], json!(100.5));
    assert_eq!(body["status"], "Pending");

    let created_at = body["created_at"].as_str().unwrap();
    assert!(created_at.ends_with('Z'), "UTC: {created_at}");
    let created_at: DateTime<Utc> = DateTime::parse_from_rfc3339(created_at).unwrap().into();
    assert!(
        before <= created_at && created_at <= after,
        "{created_at} is now"
    );
}

async fn amounts_come_back_as_the_same_json_number(db: TestDb) {
    let app = spawn_app(db).await;
    let cases = [
        ("100.5", "100.5"),
        ("100.50", "100.5"),
        ("0.1", "0.1"),
        ("0.01", "0.01"),
        ("19.99", "19.99"),
        ("7", "7"),
        ("1e2", "100"),
        ("1E+002", "100"),
        ("12345e-2", "123.45"),
        ("0.0001e4", "1"),
        ("1.000000000000000000000000000000000e2", "100"),
        ("999999999.99", "999999999.99"),
    ];
    for (sent, expected) in cases {
        let body = format!(r#"{{"user_id":"u","item_ids":["i"],"total_amount":{sent}}}"#);
        let response = app
            .client
            .post(app.url("/orders"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "amount {sent}");
        let text = response.text().await.unwrap();
        assert!(
            text.contains(&format!(r#""total_amount":{expected},"#)),
            "amount {sent} answered as {text}"
        );
        let id = serde_json::from_str::<Value>(&text).unwrap()["order_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let stored = app
            .get(&format!("/orders/{id}"))
            .await
            .text()
            .await
            .unwrap();
        assert!(
            stored.contains(&format!(r#""total_amount":{expected},"#)),
            "{stored}"
        );
    }
}

async fn get_order_answers_every_field_and_completed_at_once_done(db: TestDb) {
    let gate = Arc::new(Gate::default());
    let app = spawn_app_with(
        db,
        Options {
            processor: Some(gate.clone()),
            ..Options::default()
        },
    )
    .await;
    let created = app.create_order(&order_body()).await;
    let id = created["order_id"].as_str().unwrap();

    let order = app.get_json(&format!("/orders/{id}")).await;
    for field in [
        "order_id",
        "user_id",
        "item_ids",
        "total_amount",
        "created_at",
    ] {
        assert_eq!(order[field], created[field], "{field}");
    }
    assert!(order["completed_at"].is_null());
    assert!(
        ["Pending", "Processing"].contains(&order["status"].as_str().unwrap()),
        "{order}"
    );

    gate.open();
    app.wait_until_completed(&[id.to_owned()], Duration::from_secs(5))
        .await;
    let order = app.get_json(&format!("/orders/{id}")).await;
    assert_eq!(order["status"], "Completed");
    assert_eq!(order["attempts"], 1);
    let completed_at = order["completed_at"].as_str().unwrap();
    assert!(completed_at >= order["created_at"].as_str().unwrap());
}

async fn status_answers_only_the_status(db: TestDb) {
    let app = spawn_app(db).await;
    let created = app.create_order(&order_body()).await;
    let id = created["order_id"].as_str().unwrap();
    let body = app.get_json(&format!("/orders/{id}/status")).await;
    let status = body["status"].as_str().unwrap();
    assert!(["Pending", "Processing", "Completed"].contains(&status));
    assert_eq!(body.as_object().unwrap().len(), 1);
}

async fn unknown_and_malformed_order_ids_answer_404_problems(db: TestDb) {
    let app = spawn_app(db).await;
    let unknown = OrderId::new_at(order_processor::domain::now()).to_string();
    for id in [
        unknown.as_str(),
        "123",
        "not-a-uuid",
        "%27%3B%20DROP%20TABLE%20orders",
    ] {
        for path in [format!("/orders/{id}/status"), format!("/orders/{id}")] {
            let response = app.get(&path).await;
            assert_eq!(response.status(), 404, "{path}");
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json"
            );
            let problem: Value = response.json().await.unwrap();
            assert_eq!(problem["status"], 404);
            assert_eq!(problem["type"], "/problems/not-found");
            assert!(problem["title"].is_string() && problem["detail"].is_string());
        }
    }
}

async fn hostile_looking_strings_are_stored_and_returned_verbatim(db: TestDb) {
    let app = spawn_app(db).await;
    let values = [
        "'); DROP TABLE orders;--",
        "<script>alert(1)</script>",
        "Zoë 北京 🛒",
        "  padded  ",
        "back\\slash \"quoted\" \n newline",
    ];
    for value in values {
        let body = json!({"user_id": value, "item_ids": [value, "plain"], "total_amount": 1});
        let created = app.create_order(&body).await;
        assert_eq!(created["user_id"], value);
        let stored = app
            .get_json(&format!(
                "/orders/{}",
                created["order_id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(stored["user_id"], value);
        assert_eq!(stored["item_ids"], json!([value, "plain"]));
    }
    assert_eq!(app.metrics().await["total_orders"], values.len());
}

async fn unknown_routes_and_wrong_methods_answer_in_the_problem_shape(db: TestDb) {
    let app = spawn_app(db).await;
    let cases = [
        (reqwest::Method::GET, "/nowhere", 404),
        (reqwest::Method::PATCH, "/orders", 405),
        (reqwest::Method::DELETE, "/metrics", 405),
        (reqwest::Method::PUT, "/orders", 405),
        (reqwest::Method::POST, "/metrics", 405),
    ];
    for (method, path, status) in cases {
        let response = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{method} {path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["status"], status);
        assert!(problem["type"].is_string() && problem["title"].is_string());
    }
}
