//! A TCP proxy in front of PostgreSQL that a test can cut and restore, to make the
//! database unreachable for one app without stopping it for every other test.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::helpers::TestDb;

pub struct Proxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    acceptor: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let acceptor = tokio::spawn({
            let (up, connections) = (up.clone(), connections.clone());
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        // Down: accept and hang up at once, like a dead server.
                        drop(client);
                        continue;
                    }
                    let upstream = upstream.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(&upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    connections.lock().unwrap().push(task);
                }
            }
        });
        Self {
            port,
            up,
            connections,
            acceptor,
        }
    }

    /// A proxy in front of a PostgreSQL test database, and the database with its URL
    /// pointing through the proxy.
    pub async fn in_front_of(db: TestDb) -> (Self, TestDb) {
        let direct = url::Url::parse(&db.url).unwrap();
        let upstream = format!(
            "{}:{}",
            direct.host_str().unwrap(),
            direct.port().unwrap_or(5432)
        );
        let proxy = Self::start(upstream).await;
        let mut proxied = direct.clone();
        proxied.set_host(Some("127.0.0.1")).unwrap();
        proxied.set_port(Some(proxy.port)).unwrap();
        let db = TestDb {
            url: proxied.to_string(),
            ..db
        };
        (proxy, db)
    }

    /// Cuts every open connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        self.cut();
    }
}
