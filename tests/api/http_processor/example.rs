//! The README's example receiver (`examples/receiver.py`), run as the processor: it
//! completes orders and refuses what it cannot do, as the README says.

use serde_json::json;

use super::SECRET;
use crate::helpers::{Options, TestDb, spawn_app_with};

/// The README's receiver (`examples/receiver.py`) works as the README says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_receiver_completes_orders_and_refuses_what_it_cannot_do() {
    let example = Python::start();
    let app = spawn_app_with(
        TestDb::sqlite(),
        Options {
            processor_url: Some(example.url.clone()),
            processor_secret: Some(SECRET.into()),
            poll_ms: 100,
            ..Options::default()
        },
    )
    .await;
    let small = json!({"user_id": "u", "item_ids": ["a"], "total_amount": 25});
    let large = json!({"user_id": "u", "item_ids": ["a"], "total_amount": 20000});
    let small = app.create_order(&small).await["order_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let large = app.create_order(&large).await["order_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = app.wait_for_status(&small, "Completed").await;
    assert_eq!(
        done["result"],
        json!({"charge_id": format!("ch_{}", &small[..8]), "attempt": 1})
    );
    let refused = app.wait_for_status(&large, "Failed").await;
    assert_eq!(refused["attempts"], 1);
    let error = refused["last_error"].as_str().unwrap();
    assert!(
        error.contains("422") && error.contains("over the 10000 limit"),
        "{error}"
    );
    app.stop().await;
}

/// `examples/receiver.py` on a free port, killed when dropped.
struct Python {
    process: std::process::Child,
    url: String,
}

impl Python {
    fn start() -> Self {
        let mut process = std::process::Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/receiver.py"))
            .arg("0")
            .env("PROCESSOR_SECRET", SECRET)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs the example");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(process.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let address = line.trim().strip_prefix("listening on ").expect(&line);
        Self {
            process,
            url: format!("http://{address}/"),
        }
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
