//! Each user sees only their own orders: someone else's answers exactly like a missing
//! one (status, headers and body, the id aside), listings and metrics are narrowed or
//! refused, and idempotency keys belong to their user.

use order_processor::domain::{OrderId, now};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::create_as;
use crate::auth::{call, secured_app, user_token};
use crate::helpers::{TestDb, on_every_backend};

on_every_backend!(
    users_see_only_their_own_orders_and_admins_see_all,
    another_users_order_answers_exactly_like_a_missing_one,
    idempotency_keys_belong_to_their_user,
);

async fn users_see_only_their_own_orders_and_admins_see_all(db: TestDb) {
    let app = secured_app(db).await;
    let (alice, bob, admin) = (
        user_token("alice", false),
        user_token("bob", false),
        user_token("root", true),
    );
    let body = json!({"user_id": "alice", "item_ids": ["a"], "total_amount": 1});
    let created = call(&app, Method::POST, "/orders", Some(&alice), Some(body)).await;
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["order_id"]
        .as_str()
        .unwrap()
        .to_owned();
    call(
        &app,
        Method::POST,
        "/orders",
        Some(&bob),
        Some(json!({"item_ids": ["b"], "total_amount": 2})),
    )
    .await;

    for path in [format!("/orders/{id}"), format!("/orders/{id}/status")] {
        assert_eq!(
            call(&app, Method::GET, &path, Some(&alice), None)
                .await
                .status(),
            200,
            "{path}"
        );
        assert_eq!(
            call(&app, Method::GET, &path, Some(&bob), None)
                .await
                .status(),
            404,
            "{path}"
        );
        assert_eq!(
            call(&app, Method::GET, &path, Some(&admin), None)
                .await
                .status(),
            200,
            "{path}"
        );
    }
    let listed = |token: String, query: &'static str| {
        let app = &app;
        async move {
            let response = call(
                app,
                Method::GET,
                &format!("/orders{query}"),
                Some(&token),
                None,
            )
            .await;
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let (status, page) = listed(bob.clone(), "").await;
    assert_eq!(status, 200);
    let owners: Vec<&str> = page["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(owners, ["bob"]);
    assert_eq!(
        listed(bob.clone(), "?user_id=alice").await.0,
        StatusCode::FORBIDDEN
    );
    let (status, page) = listed(admin.clone(), "").await;
    assert_eq!(status, 200);
    assert_eq!(page["orders"].as_array().unwrap().len(), 2);
    let (_, page) = listed(admin.clone(), "?user_id=alice").await;
    assert_eq!(page["orders"].as_array().unwrap().len(), 1);

    for path in ["/metrics", "/metrics/prometheus"] {
        assert_eq!(
            call(&app, Method::GET, path, Some(&bob), None)
                .await
                .status(),
            403,
            "{path}"
        );
        assert_eq!(
            call(&app, Method::GET, path, Some(&admin), None)
                .await
                .status(),
            200,
            "{path}"
        );
    }
    let retry = format!("/orders/{id}/retry");
    let response = call(&app, Method::POST, &retry, Some(&alice), None).await;
    assert_eq!(
        response.status(),
        403,
        "retrying dead letters is for admins"
    );
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let response = call(&app, Method::POST, &retry, Some(&admin), None).await;
    assert_eq!(
        response.status(),
        StatusCode::CONFLICT,
        "the order is not Failed"
    );
}

/// Everything a client can see of an answer, but what differs by request anyway
/// (its id and date), and with `id` masked in the body.
async fn seen(
    response: reqwest::Response,
    id: &str,
) -> (StatusCode, Vec<(String, String)>, String) {
    let status = response.status();
    let mut headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(name, _)| !["x-request-id", "date"].contains(&name.as_str()))
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    let body = response.text().await.unwrap().replace(id, "<id>");
    (status, headers, body)
}

async fn another_users_order_answers_exactly_like_a_missing_one(db: TestDb) {
    let app = secured_app(db).await;
    let (alice, bob) = (user_token("alice", false), user_token("bob", false));
    let hers = create_as(&app, &alice).await;
    let missing = OrderId::new_at(now()).to_string();
    for template in ["/orders/{id}", "/orders/{id}/status"] {
        let path = |id: &str| template.replace("{id}", id);
        let not_yours = call(&app, Method::GET, &path(&hers), Some(&bob), None).await;
        let not_yours = seen(not_yours, &hers).await;
        let absent = call(&app, Method::GET, &path(&missing), Some(&bob), None).await;
        let absent = seen(absent, &missing).await;
        assert_eq!(not_yours.0, StatusCode::NOT_FOUND, "{template}");
        assert_eq!(not_yours, absent, "{template}: the same answer, id aside");
        let problem: Value = serde_json::from_str(&absent.2).unwrap();
        assert_eq!(problem["type"], "/problems/not-found", "{template}");
        // Alice's order is still there for her: the 404 was about bob.
        let response = call(&app, Method::GET, &path(&hers), Some(&alice), None).await;
        assert_eq!(response.status(), 200, "{template}");
    }
}

async fn idempotency_keys_belong_to_their_user(db: TestDb) {
    let app = secured_app(db).await;
    let body = json!({"item_ids": ["a"], "total_amount": 1});
    let mut ids = Vec::new();
    for user in ["alice", "bob", "alice"] {
        let response = app
            .client
            .post(app.url("/orders"))
            .bearer_auth(user_token(user, false))
            .header("idempotency-key", "shared-key")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let order: Value = response.json().await.unwrap();
        assert_eq!(order["user_id"], user, "bob never gets alice's answer");
        ids.push(order["order_id"].as_str().unwrap().to_owned());
    }
    assert_ne!(
        ids[0], ids[1],
        "the same key from two users makes two orders"
    );
    assert_eq!(ids[0], ids[2], "alice's retry is a replay");
}
