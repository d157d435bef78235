//! A real NATS server with JetStream for one test: its own process, port and storage
//! directory, so tests can stop and start it, and no two tests share a stream.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use serde_json::Value;
use tempfile::TempDir;

pub struct NatsServer {
    binary: String,
    process: Option<Child>,
    port: u16,
    dir: TempDir,
}

/// `nats-server` from the PATH, or where Debian's package puts it.
fn binary() -> Option<String> {
    let on_path = std::env::var_os("PATH").into_iter().flat_map(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("nats-server"))
            .collect::<Vec<_>>()
    });
    on_path
        .chain([
            "/usr/sbin/nats-server".into(),
            "/usr/bin/nats-server".into(),
        ])
        .find(|path| path.exists())
        .map(|path| path.to_string_lossy().into_owned())
}

impl NatsServer {
    /// A new server; `None` (the test skips, saying so) when `nats-server` is not
    /// installed, unless `REQUIRE_NATS` is set, as CI sets it.
    pub fn start() -> Option<Self> {
        let Some(binary) = binary() else {
            assert!(
                std::env::var_os("REQUIRE_NATS").is_none(),
                "REQUIRE_NATS is set but nats-server is not installed"
            );
            eprintln!(
                "skipping: nats-server is not installed (set REQUIRE_NATS=1 to fail instead)"
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self {
            binary,
            process: None,
            port,
            dir: tempfile::tempdir().unwrap(),
        };
        server.restart();
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (its stored messages stay on disk).
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    /// Starts the server again on the same port and storage, and waits until it listens.
    pub fn restart(&mut self) {
        self.stop();
        let process = Command::new(&self.binary)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.process = Some(process);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many messages `stream` holds (0 if it does not exist yet).
    pub async fn count(&self, stream: &str) -> u64 {
        let client = async_nats::connect(self.url())
            .await
            .expect("connect to NATS");
        let Ok(mut stream) = jetstream::new(client).get_stream(stream).await else {
            return 0;
        };
        stream.info().await.expect("stream info").state.messages
    }

    /// Every message of `stream`, in stream order, as JSON (an empty list if the stream
    /// does not exist yet).
    pub async fn messages(&self, stream: &str) -> Vec<Value> {
        let client = async_nats::connect(self.url())
            .await
            .expect("connect to NATS");
        let jetstream = jetstream::new(client);
        let Ok(mut stream) = jetstream.get_stream(stream).await else {
            return Vec::new();
        };
        let count = stream
            .info()
            .await
            .expect("stream info")
            .state
            .last_sequence;
        let mut messages = Vec::new();
        for sequence in 1..=count {
            let message = stream.get_raw_message(sequence).await.expect("a message");
            let mut body: Value = serde_json::from_slice(&message.payload).expect("JSON");
            body["subject"] = Value::from(message.subject.to_string());
            body["msg_id"] = message
                .headers
                .get("Nats-Msg-Id")
                .map_or(Value::Null, |id| Value::from(id.as_str()));
            messages.push(body);
        }
        messages
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
