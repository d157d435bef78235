//! Operating deliveries over the API (listing with cursors, sending one again,
//! recovering every failed one since a time, each bad input named), and the network
//! rule at delivery time: an endpoint that reaches a private address is never called.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::auth::call;
use crate::deliveries::{register, verified, webhook_app};
use crate::helpers::{TestDb, eventually, on_every_backend, spawn_app};
use crate::receiver::{Receiver, Reply};
use order_processor::domain::{WebhookEndpoint, WebhookId, WebhookUrl, new_secret, now};

on_every_backend!(
    operators_list_send_again_and_recover_deliveries,
    bad_operator_requests_are_named_and_change_nothing,
    deliveries_never_reach_private_addresses_unless_allowed,
);

async fn operators_list_send_again_and_recover_deliveries(db: TestDb) {
    // Scaled to a ten-thousandth, a delivery fails for good in about ten seconds.
    let app = webhook_app(db, 0.0001).await;
    let down = Arc::new(AtomicBool::new(true));
    let receiver = Receiver::start({
        let down = down.clone();
        move |_| {
            if down.load(Ordering::SeqCst) {
                Reply::status(503, "maintenance")
            } else {
                Reply::status(200, "")
            }
        }
    })
    .await;
    let (hook, secret) = register(&app, &receiver.url, Some(&["order.created"])).await;
    for _ in 0..3 {
        app.new_order().await;
    }
    let failed = format!("/webhooks/{hook}/deliveries?status=failed");
    eventually(Duration::from_secs(60), "three failed", || async {
        app.get_json(&failed).await["deliveries"]
            .as_array()
            .is_some_and(|d| d.len() == 3)
    })
    .await;

    // Pages of two, newest first, by cursor.
    let first = app
        .get_json(&format!("/webhooks/{hook}/deliveries?limit=2"))
        .await;
    assert_eq!(first["deliveries"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = app
        .get_json(&format!(
            "/webhooks/{hook}/deliveries?limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(second["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(second["next_cursor"], Value::Null);
    let ids: Vec<&str> = first["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["deliveries"].as_array().unwrap())
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let one = &first["deliveries"][0];
    assert_eq!(one["status"], "failed");
    assert_eq!(one["attempts"], 8);
    assert_eq!(one["last_status_code"], 503);
    assert_eq!(one["event_type"], "order.created");

    // The receiver is back: one sent again, then the rest recovered.
    down.store(false, Ordering::SeqCst);
    let calls_before = receiver.calls().len();
    let response = call(
        &app,
        Method::POST,
        &format!("/webhooks/{hook}/deliveries/{}/retry", ids[0]),
        None,
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let again: Value = response.json().await.unwrap();
    assert_eq!(
        (again["status"].as_str(), again["attempts"].as_u64()),
        (Some("pending"), Some(0))
    );
    let delivered = format!("/webhooks/{hook}/deliveries?status=delivered");
    eventually(Duration::from_secs(10), "one delivered", || async {
        app.get_json(&delivered).await["deliveries"]
            .as_array()
            .is_some_and(|d| d.len() == 1)
    })
    .await;
    let response = call(
        &app,
        Method::POST,
        &format!("/webhooks/{hook}/recover"),
        None,
        Some(json!({"since": "2020-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"recovered": 2})
    );
    eventually(Duration::from_secs(10), "all delivered", || async {
        app.get_json(&delivered).await["deliveries"]
            .as_array()
            .is_some_and(|d| d.len() == 3)
    })
    .await;
    // Sent again under their events' ids, signed as ever.
    let calls = verified(&receiver, &secret);
    let resent: Vec<&str> = calls[calls_before..]
        .iter()
        .map(|c| c.header("webhook-id"))
        .collect();
    let mut expected: Vec<String> = app.get_json(&delivered).await["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["event_id"].as_str().unwrap().to_owned())
        .collect();
    let mut resent: Vec<String> = resent.into_iter().map(str::to_owned).collect();
    expected.sort();
    resent.sort();
    assert_eq!(resent, expected);
}

async fn bad_operator_requests_are_named_and_change_nothing(db: TestDb) {
    let app = webhook_app(db, 1.0).await;
    let (hook, _) = register(&app, "http://127.0.0.1:9/hooks", None).await;
    let problem = |response: reqwest::Response| async move {
        let status = response.status();
        (status, response.json::<Value>().await.unwrap())
    };
    let listing = |query: &str| format!("/webhooks/{hook}/deliveries?{query}");
    for (query, field) in [
        ("status=lost", "status"),
        ("cursor=x", "cursor"),
        ("limit=0", "limit"),
        ("state=failed", "state"),
    ] {
        let (status, body) =
            problem(call(&app, Method::GET, &listing(query), None, None).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(body["errors"][0]["field"], field, "{body}");
    }
    let recover = format!("/webhooks/{hook}/recover");
    for body in [
        json!({}),
        json!({"since": "yesterday"}),
        json!({"since": 5}),
    ] {
        let (status, answer) =
            problem(call(&app, Method::POST, &recover, None, Some(body.clone())).await).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(answer["errors"][0]["field"], "since", "{answer}");
    }
    let unknown = WebhookId::new_at(now());
    let delivery = WebhookId::new_at(now());
    for (method, path, body) in [
        (Method::GET, format!("/webhooks/{unknown}/deliveries"), None),
        (
            Method::POST,
            format!("/webhooks/{unknown}/recover"),
            Some(json!({"since": "2020-01-01T00:00:00Z"})),
        ),
        (
            Method::POST,
            format!("/webhooks/{hook}/deliveries/{delivery}/retry"),
            None,
        ),
        (
            Method::POST,
            format!("/webhooks/{hook}/deliveries/not-an-id/retry"),
            None,
        ),
        (
            Method::POST,
            format!("/webhooks/{unknown}/deliveries/{delivery}/retry"),
            None,
        ),
    ] {
        let (status, answer) = problem(call(&app, method, &path, None, body).await).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {answer}");
    }
}

async fn deliveries_never_reach_private_addresses_unless_allowed(db: TestDb) {
    // Private networks are not allowed here; the endpoints are written to the store
    // directly, as if registered before the rule, or resolving elsewhere back then.
    let app = spawn_app(db).await;
    let receiver = Receiver::start(|_| Reply::status(200, "")).await;
    let port = receiver
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let mut hooks = Vec::new();
    for (n, host) in ["127.0.0.1", "localhost"].into_iter().enumerate() {
        let at = now();
        let endpoint = WebhookEndpoint {
            id: WebhookId::new_at(at),
            url: WebhookUrl::parse(&format!("http://{host}:{port}/orders")).unwrap(),
            description: String::new(),
            event_types: Some(vec![order_processor::domain::EventType::Created]),
            secret: new_secret([n as u8; 32]),
            previous_secret: None,
            disabled_at: None,
            disabled_reason: None,
            last_delivered_at: None,
            failing_since: None,
            created_at: at,
            updated_at: at,
            revision: 1,
        };
        app.store.insert_endpoint(&endpoint).await.unwrap();
        hooks.push(endpoint.id);
    }
    app.new_order().await;
    for hook in hooks {
        let path = format!("/webhooks/{hook}/deliveries");
        eventually(Duration::from_secs(20), "an attempt refused", || async {
            app.get_json(&path).await["deliveries"][0]["last_error"]
                .as_str()
                .is_some_and(|error| error.contains("WEBHOOK_ALLOW_PRIVATE_NETWORKS"))
        })
        .await;
        let delivery = &app.get_json(&path).await["deliveries"][0];
        assert!(
            delivery["last_error"]
                .as_str()
                .unwrap()
                .contains("loopback"),
            "{delivery}"
        );
        assert_eq!(delivery["status"], "pending");
    }
    assert!(receiver.calls().is_empty(), "nothing reached the receiver");
}
