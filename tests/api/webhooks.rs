//! The webhook endpoints API (admin): register (the secret shown once), list, read,
//! change, disable, rotate the secret, remove; every bad field named with nothing
//! stored; private networks refused by default; non-admins refused.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::auth::{call, secured_app, user_token};
use crate::helpers::{Options, TestApp, TestDb, on_every_backend, spawn_app_with};

on_every_backend!(
    an_endpoint_is_registered_read_changed_rotated_and_removed,
    bad_fields_are_each_named_and_nothing_is_stored,
    private_networks_are_refused_unless_allowed,
    only_an_admin_may_manage_endpoints,
);

async fn app(db: TestDb, allow_private: bool) -> TestApp {
    spawn_app_with(
        db,
        Options {
            webhook_allow_private_networks: allow_private,
            ..Options::default()
        },
    )
    .await
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let response = call(app, method, path, None, body).await;
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn decoded_secret_len(secret: &str) -> usize {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_"))
        .expect("base64")
        .len()
}

async fn an_endpoint_is_registered_read_changed_rotated_and_removed(db: TestDb) {
    let app = app(db, true).await;
    let body = json!({"url": "http://127.0.0.1:9/hooks", "event_types": ["order.completed"],
                      "description": "ERP"});
    let response = call(&app, Method::POST, "/webhooks", None, Some(body)).await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert_eq!(decoded_secret_len(&secret), 32);
    assert_eq!(created["event_types"], json!(["order.completed"]));
    assert_eq!(created["disabled"], false);

    // Read back, never with the secret.
    let (status, shown) = send(&app, Method::GET, &format!("/webhooks/{id}"), None).await;
    assert_eq!(status, 200);
    assert!(shown.get("secret").is_none());
    assert_eq!(shown["url"], "http://127.0.0.1:9/hooks");
    assert_eq!(shown["description"], "ERP");
    let (_, list) = send(&app, Method::GET, "/webhooks", None).await;
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 1);
    assert!(list["webhooks"][0].get("secret").is_none());

    // Changed member by member; `null` event types mean every type.
    let path = format!("/webhooks/{id}");
    let change = json!({"event_types": null, "disabled": true, "url": "https://[::1]/new"});
    let (status, changed) = send(&app, Method::PATCH, &path, Some(change)).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["event_types"], Value::Null);
    assert_eq!(changed["disabled"], true);
    assert_eq!(changed["disabled_reason"], "disabled by an operator");
    assert_eq!(changed["url"], "https://[::1]/new");
    assert_eq!(changed["description"], "ERP", "members not sent stay");
    let (_, enabled) = send(&app, Method::PATCH, &path, Some(json!({"disabled": false}))).await;
    assert_eq!(enabled["disabled"], false);
    assert_eq!(enabled["disabled_at"], Value::Null);
    // A change must name something to change.
    for nothing in [
        json!({}),
        json!({"description": null}),
        json!({"evnt_types": []}),
    ] {
        let (status, problem) = send(&app, Method::PATCH, &path, Some(nothing.clone())).await;
        assert_eq!(status, 422, "{nothing}");
        assert_eq!(problem["errors"][0]["field"], "body");
    }

    // Rotation: a new secret, the old one signing beside it for a day.
    let rotate = format!("/webhooks/{id}/rotate-secret");
    let (status, rotated) = send(&app, Method::POST, &rotate, None).await;
    assert_eq!(status, 200);
    let new_secret = rotated["secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    assert_eq!(decoded_secret_len(new_secret), 32);
    let until = chrono::DateTime::parse_from_rfc3339(
        rotated["previous_secret_expires_at"].as_str().unwrap(),
    )
    .unwrap();
    let in_a_day = chrono::Utc::now() + chrono::Duration::hours(24);
    assert!((in_a_day - until.to_utc()).num_seconds().abs() < 60);

    // Registered disabled, when asked.
    let body = json!({"url": "http://127.0.0.1:9/other", "disabled": true});
    let (status, off) = send(&app, Method::POST, "/webhooks", Some(body)).await;
    assert_eq!(status, 201);
    assert_eq!(off["disabled"], true);

    // Removed: then unknown everywhere.
    assert_eq!(send(&app, Method::DELETE, &path, None).await.0, 204);
    assert_eq!(send(&app, Method::DELETE, &path, None).await.0, 404);
    assert_eq!(send(&app, Method::GET, &path, None).await.0, 404);
    assert_eq!(send(&app, Method::POST, &rotate, None).await.0, 404);
    assert_eq!(
        send(
            &app,
            Method::PATCH,
            &path,
            Some(json!({"description": "x"}))
        )
        .await
        .0,
        404
    );
    assert_eq!(
        send(&app, Method::GET, "/webhooks/not-a-uuid", None)
            .await
            .0,
        404
    );
    app.stop().await;
}

async fn bad_fields_are_each_named_and_nothing_is_stored(db: TestDb) {
    let app = app(db, true).await;
    let long = "d".repeat(501);
    let cases = [
        (json!({}), vec!["url"]),
        (json!({"url": 5}), vec!["url"]),
        (json!({"url": "ftp://example.com/"}), vec!["url"]),
        (json!({"url": "not a url"}), vec!["url"]),
        (
            json!({"url": "http://x.example/", "event_types": []}),
            vec!["event_types"],
        ),
        (
            json!({"url": "http://x.example/", "event_types": ["order.shipped"]}),
            vec!["event_types"],
        ),
        (
            json!({"url": "http://x.example/", "event_types": "order.completed"}),
            vec!["event_types"],
        ),
        (
            json!({"url": "http://x.example/", "description": long}),
            vec!["description"],
        ),
        (
            json!({"url": 1, "event_types": [1], "description": 2}),
            vec!["url", "event_types", "description"],
        ),
    ];
    for (body, fields) in cases {
        let (status, problem) = send(&app, Method::POST, "/webhooks", Some(body.clone())).await;
        assert_eq!(status, 422, "{body}: {problem}");
        let named: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(named, fields, "{body}");
    }
    let (status, _) = send(&app, Method::POST, "/webhooks", Some(json!([1]))).await;
    assert_eq!(status, 400);
    let (_, list) = send(&app, Method::GET, "/webhooks", None).await;
    assert_eq!(list["webhooks"], json!([]), "nothing stored");

    // A bad change changes nothing.
    let (_, created) = send(
        &app,
        Method::POST,
        "/webhooks",
        Some(json!({"url": "http://x.example/"})),
    )
    .await;
    let path = format!("/webhooks/{}", created["id"].as_str().unwrap());
    let (status, _) = send(
        &app,
        Method::PATCH,
        &path,
        Some(json!({"description": "new", "disabled": "yes"})),
    )
    .await;
    assert_eq!(status, 422);
    let (_, shown) = send(&app, Method::GET, &path, None).await;
    assert_eq!(shown["description"], "");
    assert_eq!(shown["disabled"], false);
    app.stop().await;
}

async fn private_networks_are_refused_unless_allowed(db: TestDb) {
    let app = app(db, false).await;
    for url in [
        "http://127.0.0.1:8080/",
        "http://[::1]/",
        "http://10.1.2.3/",
        "http://192.168.0.10/",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:9000/",
    ] {
        let (status, problem) =
            send(&app, Method::POST, "/webhooks", Some(json!({"url": url}))).await;
        assert_eq!(status, 422, "{url}");
        assert_eq!(problem["errors"][0]["field"], "url", "{url}");
    }
    let (_, list) = send(&app, Method::GET, "/webhooks", None).await;
    assert_eq!(list["webhooks"], json!([]));
    // A public literal address passes (nothing is sent to it yet).
    let (status, created) = send(
        &app,
        Method::POST,
        "/webhooks",
        Some(json!({"url": "https://93.184.216.34/h"})),
    )
    .await;
    assert_eq!(status, 201);
    // And a change to a private address is refused.
    let path = format!("/webhooks/{}", created["id"].as_str().unwrap());
    let (status, _) = send(
        &app,
        Method::PATCH,
        &path,
        Some(json!({"url": "http://127.0.0.1/"})),
    )
    .await;
    assert_eq!(status, 422);
    app.stop().await;
}

async fn only_an_admin_may_manage_endpoints(db: TestDb) {
    let app = secured_app(db).await;
    let (user, admin) = (user_token("alice", false), user_token("root", true));
    let body = json!({"url": "https://93.184.216.34/h"});
    let created = call(
        &app,
        Method::POST,
        "/webhooks",
        Some(&admin),
        Some(body.clone()),
    )
    .await;
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/webhooks/{id}");
    let rotate = format!("{path}/rotate-secret");
    for (method, route, body) in [
        (Method::POST, "/webhooks", Some(body.clone())),
        (Method::GET, "/webhooks", None),
        (Method::GET, path.as_str(), None),
        (
            Method::PATCH,
            path.as_str(),
            Some(json!({"description": "x"})),
        ),
        (Method::DELETE, path.as_str(), None),
        (Method::POST, rotate.as_str(), None),
    ] {
        let refused = call(&app, method.clone(), route, Some(&user), body.clone()).await;
        assert_eq!(refused.status(), 403, "{method} {route}");
        let anonymous = call(&app, method.clone(), route, None, body).await;
        assert_eq!(anonymous.status(), 401, "{method} {route}");
    }
    let listed = call(&app, Method::GET, "/webhooks", Some(&admin), None).await;
    assert_eq!(
        listed.json::<Value>().await.unwrap()["webhooks"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    app.stop().await;
}
