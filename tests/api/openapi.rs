//! The OpenAPI document and its offline docs, and the one list of routes held to them
//! from outside: every documented operation is routed and counted under its template.

use serde_json::Value;

use crate::binary::Server;
use crate::helpers::{Options, TestDb, on_every_backend, order_body, spawn_app_with};
use crate::observability::sample;

on_every_backend!(
    the_openapi_document_and_offline_docs_are_served,
    every_documented_operation_is_routed_and_counted_under_its_template,
);

async fn the_openapi_document_and_offline_docs_are_served(db: TestDb) {
    let app = spawn_app_with(db, Options::default()).await;
    let doc = app.get_json("/openapi.json").await;
    assert_eq!(doc["openapi"], "3.1.0");
    let operations: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(
        operations, 24,
        "every route documented, this document's own included"
    );
    let ids: std::collections::HashSet<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .map(|op| op["operationId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), operations, "operation ids are unique");
    let page = app.get("/docs/").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "the Swagger UI page");
    assert!(!html.contains("https://"), "no asset from the internet");
    for asset in [
        "/docs/swagger-ui-bundle.js",
        "/docs/swagger-ui.css",
        "/docs/swagger-initializer.js",
    ] {
        let response = app.get(asset).await;
        assert_eq!(response.status(), 200, "{asset} served by the binary");
    }
    let init = app
        .get("/docs/swagger-initializer.js")
        .await
        .text()
        .await
        .unwrap();
    assert!(init.contains("/openapi.json"));
}

/// The router, the metric labels and the OpenAPI document each come from one list of
/// routes; this holds them to each other from outside: every operation the document
/// names is answered by its handler (not the 404 or 405 fallbacks) and counted under
/// its own template.
async fn every_documented_operation_is_routed_and_counted_under_its_template(db: TestDb) {
    // Its own process, so the counts are this test's alone.
    let server = Server::start(&db.url, &[("PROCESSING_TIME_MS", "0")]);
    let order_id = server.create_order(&order_body()).await;
    let doc = server.get_json("/openapi.json").await;
    let client = reqwest::Client::new();
    let mut operations = Vec::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let method: reqwest::Method = method.to_uppercase().parse().unwrap();
            let path = template.replace("{order_id}", &order_id);
            let mut request = client.request(method.clone(), format!("{}{path}", server.address));
            if method == reqwest::Method::POST && template == "/orders" {
                request = request.json(&order_body());
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or_default();
            assert!(
                !(status == 404 && body["detail"] == "no such resource") && status != 405,
                "{method} {template} fell through to a fallback: {status} {body}"
            );
            operations.push((method, template.clone(), status));
        }
    }
    assert!(operations.len() >= 10, "{operations:?}");
    let text = reqwest::get(format!("{}/metrics/prometheus", server.address))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (method, template, status) in operations {
        let series = format!(
            r#"http_requests_total{{method="{method}",route="{template}",status="{status}"}}"#
        );
        // The scrape itself is counted only after it answers.
        if template != "/metrics/prometheus" {
            assert!(
                sample(&text, &series).is_some_and(|n| n >= 1.0),
                "{series} in\n{text}"
            );
        }
    }
}
