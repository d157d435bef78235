//! Property test of `POST /orders` over real HTTP: random and mutated bodies (types
//! changed, members dropped or doubled, deep nesting, long strings, invalid UTF-8,
//! lone surrogates) never get a 5xx or a dropped connection; every 201 echoes exactly
//! what was sent, and every refusal stores nothing.

use std::str::FromStr;

use bigdecimal::BigDecimal;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;

use crate::helpers::{TestApp, TestDb, on_every_backend, spawn_app};

on_every_backend!(random_and_mutated_order_bodies_get_a_4xx_or_an_exact_201);

/// Cases per backend; each is one request and one read of `/metrics`.
const CASES: u32 = 300;

/// A body as its members, each a name and the raw JSON text of its value.
#[derive(Debug, Clone)]
struct Body {
    members: Vec<(String, String)>,
    /// A change to the encoded bytes, applied last.
    bytes: ByteChange,
}

#[derive(Debug, Clone)]
enum ByteChange {
    None,
    /// Cut the body after this fraction (thousandths) of its length.
    Truncate(usize),
    /// Put an invalid UTF-8 byte at this fraction (thousandths) of its length.
    InvalidUtf8(usize, u8),
}

/// Members edited before encoding.
#[derive(Debug, Clone)]
enum Edit {
    Drop(usize),
    Double(usize, String),
    Retype(usize, String),
    Nest(usize, usize, bool),
    Extra(String, String),
    Long(usize, usize),
    LoneSurrogate(usize, bool),
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z0-9_-]{1,12}",
        3 => prop::collection::vec(any::<char>(), 1..40).prop_map(|c| c.into_iter().collect()),
        1 => Just(String::new()),
        1 => Just("   ".to_owned()),
        1 => Just("a\u{0}b".to_owned()),
    ]
}

fn json_text(value: &str) -> String {
    serde_json::to_string(value).expect("a string encodes")
}

/// The text of a number in one of JSON's notations, often valid money, often not.
fn amount() -> impl Strategy<Value = String> {
    (
        prop::bool::weighted(0.05),
        prop_oneof![4 => "[0-9]{1,9}", 1 => "[0-9]{10,14}"],
        prop::option::of(prop_oneof![4 => "[0-9]{1,2}", 1 => "[0-9]{3,5}"]),
        prop::option::weighted(
            0.25,
            (prop_oneof![Just('e'), Just('E')], "[+-]?", "0?[0-4]"),
        ),
    )
        .prop_map(|(negative, integer, fraction, exponent)| {
            let mut text = String::new();
            if negative {
                text.push('-');
            }
            // JSON allows no leading zero before other digits.
            let integer = integer.trim_start_matches('0');
            text.push_str(if integer.is_empty() { "0" } else { integer });
            if let Some(fraction) = fraction {
                text.push('.');
                text.push_str(&fraction);
            }
            if let Some((e, sign, digits)) = exponent {
                text.push(e);
                text.push_str(&sign);
                text.push_str(&digits);
            }
            text
        })
}

/// Any JSON value, shallow.
fn any_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        amount(),
        text().prop_map(|t| json_text(&t)),
        prop::collection::vec(text(), 0..4).prop_map(|v| serde_json::to_string(&v).unwrap()),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    let index = 0usize..4;
    prop_oneof![
        1 => index.clone().prop_map(Edit::Drop),
        1 => (index.clone(), any_value()).prop_map(|(i, v)| Edit::Double(i, v)),
        1 => (index.clone(), any_value()).prop_map(|(i, v)| Edit::Retype(i, v)),
        1 => (index.clone(), 1usize..200, any::<bool>()).prop_map(|(i, d, a)| Edit::Nest(i, d, a)),
        1 => ("[a-z_]{1,10}", any_value()).prop_map(|(k, v)| Edit::Extra(k, v)),
        // Long strings, under and over the 64 KiB body limit.
        1 => (index.clone(), 200usize..5_000).prop_map(|(i, n)| Edit::Long(i, n)),
        2 => (index.clone(), 66_000usize..80_000).prop_map(|(i, n)| Edit::Long(i, n)),
        1 => (index, any::<bool>()).prop_map(|(i, high)| Edit::LoneSurrogate(i, high)),
    ]
}

fn byte_change() -> impl Strategy<Value = ByteChange> {
    prop_oneof![
        6 => Just(ByteChange::None),
        1 => (0usize..1000).prop_map(ByteChange::Truncate),
        1 => (0usize..1000, 0x80u8..=0xff).prop_map(|(at, b)| ByteChange::InvalidUtf8(at, b)),
    ]
}

fn bodies() -> impl Strategy<Value = Body> {
    let items = prop_oneof![
        6 => prop::collection::vec(text(), 1..4),
        1 => prop::collection::vec(text(), 0..1),
    ]
    .prop_map(|v| serde_json::to_string(&v).unwrap());
    let edits = prop_oneof![
        3 => Just(Vec::new()),
        2 => prop::collection::vec(edit(), 1..3),
    ];
    (text(), items, amount(), edits, byte_change()).prop_map(
        |(user, items, amount, edits, bytes)| {
            let mut members = vec![
                ("user_id".to_owned(), json_text(&user)),
                ("item_ids".to_owned(), items),
                ("total_amount".to_owned(), amount),
            ];
            for edit in edits {
                apply(&mut members, edit);
            }
            Body { members, bytes }
        },
    )
}

fn apply(members: &mut Vec<(String, String)>, edit: Edit) {
    let len = members.len();
    match edit {
        Edit::Drop(i) if i < len => {
            members.remove(i);
        }
        Edit::Double(i, value) if i < len => {
            let name = members[i].0.clone();
            members.push((name, value));
        }
        Edit::Retype(i, value) if i < len => members[i].1 = value,
        Edit::Nest(i, depth, arrays) if i < len => {
            let (open, close) = if arrays { ("[", "]") } else { ("{\"x\":", "}") };
            let value = &members[i].1;
            members[i].1 = format!("{}{value}{}", open.repeat(depth), close.repeat(depth));
        }
        Edit::Extra(name, value) => members.push((name, value)),
        Edit::Long(i, n) if i < len => members[i].1 = json_text(&"x".repeat(n)),
        Edit::LoneSurrogate(i, high) if i < len => {
            let surrogate = if high { "\\ud800" } else { "\\udc00" };
            members[i].1 = format!("\"a{surrogate}b\"");
        }
        _ => {}
    }
}

impl Body {
    fn encode(&self) -> Vec<u8> {
        let members: Vec<String> = self
            .members
            .iter()
            .map(|(name, value)| format!("{}:{value}", json_text(name)))
            .collect();
        let mut bytes = format!("{{{}}}", members.join(",")).into_bytes();
        match self.bytes {
            ByteChange::None => {}
            ByteChange::Truncate(at) => bytes.truncate(bytes.len() * at / 1000),
            ByteChange::InvalidUtf8(at, byte) => {
                let at = bytes.len() * at / 1000;
                bytes.insert(at, byte);
            }
        }
        bytes
    }

    /// The value a member counts by: its last occurrence, as a map of the body has it.
    fn last(&self, name: &str) -> Option<&str> {
        self.members
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

async fn total_orders(app: &TestApp) -> u64 {
    app.metrics().await["total_orders"]
        .as_u64()
        .expect("a count")
}

/// One case: the answer is a 4xx that stores nothing, or a 201 that echoes the body.
/// Returns the status.
async fn check(app: &TestApp, poster: &reqwest::Client, body: &Body) -> Result<u16, TestCaseError> {
    let bytes = body.encode();
    let before = total_orders(app).await;
    let response = poster
        .post(app.url("/orders"))
        .header("content-type", "application/json")
        .body(bytes.clone())
        .send()
        .await
        .map_err(|err| TestCaseError::fail(format!("no answer: {err}")))?;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let after = total_orders(app).await;
    let shown = String::from_utf8_lossy(&bytes);
    let shown: String = shown.chars().take(300).collect();
    prop_assert!(status < 500, "{status} {text} for {shown}");
    if status != 201 {
        prop_assert!((400..500).contains(&status), "{status} for {shown}");
        let problem: Value = serde_json::from_str(&text)
            .map_err(|_| TestCaseError::fail(format!("not a problem: {text}")))?;
        prop_assert_eq!(problem["status"].as_u64(), Some(u64::from(status)));
        prop_assert_eq!(after, before, "a refusal stored an order: {}", shown);
        return Ok(status);
    }
    prop_assert_eq!(after, before + 1);
    let answer: Value = serde_json::from_str(&text).expect("a 201 is JSON");
    // Each field as sent, from its own text: members the service does not read may
    // hold what a whole-body parse refuses (a lone surrogate escape) and still be
    // accepted, as unknown members are.
    let sent = |name: &str| -> Value {
        let text = body.last(name).expect("accepted with every field");
        serde_json::from_str(text).expect("an accepted field is JSON")
    };
    prop_assert_eq!(&answer["user_id"], &sent("user_id"));
    prop_assert_eq!(&answer["item_ids"], &sent("item_ids"));
    let sent_amount = body.last("total_amount").expect("accepted with an amount");
    let answered_amount = text
        .split("\"total_amount\":")
        .nth(1)
        .and_then(|rest| rest.split([',', '}']).next())
        .expect("an amount in the answer");
    prop_assert_eq!(
        BigDecimal::from_str(sent_amount).expect("sent a number"),
        BigDecimal::from_str(answered_amount).expect("answered a number"),
        "sent {} answered {}",
        sent_amount,
        answered_amount
    );
    Ok(status)
}

async fn random_and_mutated_order_bodies_get_a_4xx_or_an_exact_201(db: TestDb) {
    let app = spawn_app(db).await;
    // A connection per body: the service closes a connection whose body it refused
    // unread (413), and a pooled client could send the next request into that close.
    let poster = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let runtime = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        // Cases are requests to the live service; keep a failure's shrinking short.
        max_shrink_iters: 200,
        failure_persistence: None,
        ..Config::default()
    });
    let statuses = std::sync::Mutex::new(std::collections::BTreeMap::<u16, u32>::new());
    let result = tokio::task::block_in_place(|| {
        runner.run(&bodies(), |body| {
            let status = runtime.block_on(check(&app, &poster, &body))?;
            *statuses.lock().unwrap().entry(status).or_default() += 1;
            Ok(())
        })
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    // The generator must reach both sides of the contract, and each kind of refusal.
    let statuses = statuses.into_inner().unwrap();
    for status in [201, 400, 413, 422] {
        assert!(
            statuses.get(&status).is_some_and(|n| *n >= 3),
            "too few {status} answers among {statuses:?}"
        );
    }
}
