//! Running the real `order-processor` binary as a child process, for the tests that
//! need signals: crash (SIGKILL), graceful stop (SIGTERM), and the command line.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

pub const BINARY: &str = env!("CARGO_BIN_EXE_order-processor");

/// A `serve` child process logging JSON, with its log lines collected.
pub struct Server {
    process: std::process::Child,
    /// `http://IP:PORT` once it listens (see `wait_until_listening`).
    pub address: String,
    lines: Arc<Mutex<Vec<String>>>,
    listening: mpsc::Receiver<String>,
    pub client: reqwest::Client,
}

impl Server {
    /// Starts `serve` on a free port with `envs` on top of test defaults, and waits
    /// until it listens.
    pub fn start(database_url: &str, envs: &[(&str, &str)]) -> Self {
        let mut server = Self::spawn(database_url, envs);
        server.wait_until_listening(Duration::from_secs(20));
        server
    }

    /// Waits until the server reports where it listens, and records the address.
    pub fn wait_until_listening(&mut self, timeout: Duration) {
        let address = self
            .listening
            .recv_timeout(timeout)
            .expect("the binary reports where it listens");
        self.address = format!("http://{address}");
    }

    /// The process's resident memory now, in MB (`VmRSS`).
    pub fn rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.process.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }

    /// The process's id.
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.process.try_wait().expect("wait").is_none()
    }

    /// Starts `serve` without waiting for it to listen.
    pub fn spawn(database_url: &str, envs: &[(&str, &str)]) -> Self {
        let mut command = Command::new(BINARY);
        command
            .arg("serve")
            .env_clear()
            .env("DATABASE_URL", database_url)
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut process = command.spawn().expect("start the binary");
        let stdout = process.stdout.take().expect("piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = mpsc::channel();
        let collected = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(entry) = serde_json::from_str::<Value>(&line)
                    && entry["message"] == "listening"
                {
                    let address = entry["address"].as_str().unwrap_or_default().to_owned();
                    let _ = address_tx.send(address);
                }
                collected.lock().unwrap().push(line);
            }
        });
        Self {
            process,
            address: String::new(),
            lines,
            listening: address_rx,
            client: reqwest::Client::new(),
        }
    }

    /// Creates an order that must be accepted; returns its id.
    pub async fn create_order(&self, body: &Value) -> String {
        let url = format!("{}/orders", self.address);
        let response = self
            .client
            .post(url)
            .json(body)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 201, "creating {body}");
        let body: Value = response.json().await.expect("json");
        body["order_id"].as_str().expect("order_id").to_owned()
    }

    /// `GET path`, answered 200 with JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.address);
        let response = self.client.get(url).send().await.expect("request");
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("json")
    }

    /// How many orders `/metrics` counts as `Completed`.
    pub async fn completed(&self) -> u64 {
        self.get_json("/metrics").await["order_counts"]["Completed"]
            .as_u64()
            .expect("a count")
    }

    /// Kills the process with SIGKILL: no shutdown code runs.
    pub fn kill(mut self) -> Vec<Value> {
        self.process.kill().expect("SIGKILL");
        self.process.wait().expect("reaped");
        self.logs()
    }

    /// Sends SIGTERM and waits (up to `timeout`) for the exit status.
    pub fn terminate(mut self, timeout: Duration) -> (ExitStatus, Vec<Value>) {
        let pid = self.process.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(sent.success());
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.process.try_wait().expect("wait") {
                // Let the reader thread drain the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return (status, self.logs());
            }
            if std::time::Instant::now() > deadline {
                let _ = self.process.kill();
                panic!("the server did not exit within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The JSON log lines printed so far.
    pub fn logs(&self) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Runs the binary to completion with `args` and `envs` (and nothing inherited).
pub fn run(args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    Command::new(BINARY)
        .args(args)
        .env_clear()
        .envs(envs.iter().copied())
        .output()
        .expect("run the binary")
}
