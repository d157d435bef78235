//! Bad requests: each gets the right 4xx in the problem shape, and nothing is stored.
//! One table of cases, kept whole (so it is longer than most files): a reader sees
//! every kind of bad input in one place.

use serde_json::Value;

use crate::helpers::{TestDb, on_every_backend, spawn_app};

on_every_backend!(
    bad_requests_get_the_right_4xx_problem_and_store_nothing,
    every_offending_field_is_reported_at_once,
    json_content_type_with_charset_and_unknown_fields_are_accepted,
);

const JSON: &str = "application/json";

/// (what it is, content type, body, expected status, field the problem must name)
type Case = (
    &'static str,
    Option<&'static str>,
    Vec<u8>,
    u16,
    Option<&'static str>,
);

fn bad_requests() -> Vec<Case> {
    let ok_items = r#""item_ids":["a"]"#;
    let body = |s: &str| s.as_bytes().to_vec();
    let with_amount = |amount: &str| {
        body(&format!(
            r#"{{"user_id":"u",{ok_items},"total_amount":{amount}}}"#
        ))
    };
    let with_items = |items: &str| {
        body(&format!(
            r#"{{"user_id":"u","item_ids":{items},"total_amount":1}}"#
        ))
    };
    let with_user = |user: &str| {
        body(&format!(
            r#"{{"user_id":{user},{ok_items},"total_amount":1}}"#
        ))
    };
    vec![
        (
            "malformed JSON",
            Some(JSON),
            body("{user_id: u}"),
            400,
            None,
        ),
        (
            "truncated JSON",
            Some(JSON),
            body(r#"{"user_id":"u","item_ids":["a""#),
            400,
            None,
        ),
        ("empty body", Some(JSON), body(""), 400, None),
        ("whitespace body", Some(JSON), body("  \n "), 400, None),
        (
            "trailing garbage",
            Some(JSON),
            body(r#"{"user_id":"u"} x"#),
            400,
            None,
        ),
        (
            "array body",
            Some(JSON),
            body(r#"[{"user_id":"u"}]"#),
            400,
            None,
        ),
        ("string body", Some(JSON), body(r#""order""#), 400, None),
        ("null body", Some(JSON), body("null"), 400, None),
        ("empty object", Some(JSON), body("{}"), 422, Some("user_id")),
        (
            "missing user_id",
            Some(JSON),
            body(r#"{"item_ids":["a"],"total_amount":1}"#),
            422,
            Some("user_id"),
        ),
        (
            "missing item_ids",
            Some(JSON),
            body(r#"{"user_id":"u","total_amount":1}"#),
            422,
            Some("item_ids"),
        ),
        (
            "missing total_amount",
            Some(JSON),
            body(r#"{"user_id":"u","item_ids":["a"]}"#),
            422,
            Some("total_amount"),
        ),
        (
            "null user_id",
            Some(JSON),
            with_user("null"),
            422,
            Some("user_id"),
        ),
        (
            "numeric user_id",
            Some(JSON),
            with_user("42"),
            422,
            Some("user_id"),
        ),
        (
            "empty user_id",
            Some(JSON),
            with_user(r#""""#),
            422,
            Some("user_id"),
        ),
        (
            "blank user_id",
            Some(JSON),
            with_user(r#""   ""#),
            422,
            Some("user_id"),
        ),
        (
            "256-character user_id",
            Some(JSON),
            with_user(&format!("\"{}\"", "u".repeat(256))),
            422,
            Some("user_id"),
        ),
        (
            "null item_ids",
            Some(JSON),
            with_items("null"),
            422,
            Some("item_ids"),
        ),
        (
            "item_ids as a string",
            Some(JSON),
            with_items(r#""item1,item2""#),
            422,
            Some("item_ids"),
        ),
        (
            "empty item_ids",
            Some(JSON),
            with_items("[]"),
            422,
            Some("item_ids"),
        ),
        (
            "numeric item",
            Some(JSON),
            with_items("[1, 2]"),
            422,
            Some("item_ids"),
        ),
        (
            "empty item",
            Some(JSON),
            with_items(r#"["a", ""]"#),
            422,
            Some("item_ids[1]"),
        ),
        (
            "1,001 items",
            Some(JSON),
            with_items(&format!("[{}]", vec![r#""i""#; 1001].join(","))),
            422,
            Some("item_ids"),
        ),
        (
            "null amount",
            Some(JSON),
            with_amount("null"),
            422,
            Some("total_amount"),
        ),
        (
            "string amount",
            Some(JSON),
            with_amount(r#""abc""#),
            422,
            Some("total_amount"),
        ),
        (
            "numeric string amount",
            Some(JSON),
            with_amount(r#""100.5""#),
            422,
            Some("total_amount"),
        ),
        (
            "boolean amount",
            Some(JSON),
            with_amount("true"),
            422,
            Some("total_amount"),
        ),
        (
            "zero amount",
            Some(JSON),
            with_amount("0"),
            422,
            Some("total_amount"),
        ),
        (
            "negative amount",
            Some(JSON),
            with_amount("-5"),
            422,
            Some("total_amount"),
        ),
        (
            "3-decimal amount",
            Some(JSON),
            with_amount("10.005"),
            422,
            Some("total_amount"),
        ),
        (
            "huge amount",
            Some(JSON),
            with_amount("1e30"),
            422,
            Some("total_amount"),
        ),
        (
            "amount over the maximum",
            Some(JSON),
            with_amount("1000000000"),
            422,
            Some("total_amount"),
        ),
        (
            "exponent amount with a 30th significant digit",
            Some(JSON),
            with_amount("1.00000000000000000000000000001e2"),
            422,
            Some("total_amount"),
        ),
        (
            "plain amount with a 30th significant digit",
            Some(JSON),
            with_amount("100.000000000000000000000000001"),
            422,
            Some("total_amount"),
        ),
        (
            "amount with an exponent too large for any integer",
            Some(JSON),
            with_amount("1e99999999999999999999999999999999999999"),
            422,
            Some("total_amount"),
        ),
        (
            "amount beyond f64",
            Some(JSON),
            with_amount("1e400"),
            422,
            Some("total_amount"),
        ),
        ("NaN amount", Some(JSON), with_amount("NaN"), 400, None),
        (
            "Infinity amount",
            Some(JSON),
            with_amount("Infinity"),
            400,
            None,
        ),
        (
            "invalid UTF-8",
            Some(JSON),
            {
                let mut b = body(r#"{"user_id":""#);
                b.extend_from_slice(&[0xff, 0xfe]);
                b.extend_from_slice(format!(r#"",{ok_items},"total_amount":1}}"#).as_bytes());
                b
            },
            400,
            None,
        ),
        (
            "invalid UTF-8 in a member the service does not read",
            Some(JSON),
            {
                let mut b = body(&format!(
                    r#"{{"user_id":"u",{ok_items},"total_amount":1,"note":""#
                ));
                b.extend_from_slice(&[0xff, 0xfe]);
                b.extend_from_slice(br#""}"#);
                b
            },
            400,
            None,
        ),
        (
            "oversized body",
            Some(JSON),
            with_user(&format!("\"{}\"", "u".repeat(70_000))),
            413,
            None,
        ),
        (
            "text/plain content type",
            Some("text/plain"),
            with_amount("1"),
            415,
            None,
        ),
        (
            "form content type",
            Some("application/x-www-form-urlencoded"),
            body("user_id=u"),
            415,
            None,
        ),
        ("no content type", None, with_amount("1"), 415, None),
    ]
}

async fn bad_requests_get_the_right_4xx_problem_and_store_nothing(db: TestDb) {
    let app = spawn_app(db).await;
    let cases = bad_requests();
    assert!(cases.len() >= 25);
    for (what, content_type, body, status, field) in cases {
        let mut request = app.client.post(app.url("/orders")).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{what}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{what}"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["status"], status, "{what}");
        for member in ["type", "title", "detail"] {
            assert!(problem[member].is_string(), "{what}: {member} in {problem}");
        }
        if let Some(field) = field {
            let named = problem["errors"]
                .as_array()
                .unwrap_or_else(|| panic!("{what}: no errors list in {problem}"))
                .iter()
                .any(|e| e["field"] == field && e["message"].is_string());
            assert!(named, "{what}: {field} not named in {problem}");
        }
    }
    let metrics = app.metrics().await;
    assert_eq!(metrics["total_orders"], 0, "nothing stored: {metrics}");
}

async fn every_offending_field_is_reported_at_once(db: TestDb) {
    let app = spawn_app(db).await;
    let response = app
        .client
        .post(app.url("/orders"))
        .header("content-type", JSON)
        .body(r#"{"user_id":"","item_ids":[],"total_amount":-1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let problem: Value = response.json().await.unwrap();
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["user_id", "item_ids", "total_amount"]);
}

async fn json_content_type_with_charset_and_unknown_fields_are_accepted(db: TestDb) {
    let app = spawn_app(db).await;
    let response = app
        .client
        .post(app.url("/orders"))
        .header("content-type", "application/json; charset=utf-8")
        .body(r#"{"user_id":"u","item_ids":["a"],"total_amount":1,"note":"ignored"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert!(body.get("note").is_none());
}
