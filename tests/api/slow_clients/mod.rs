//! Clients that hold connections without finishing a request: stalled headers and
//! bodies are timed out and closed, and the number of open connections is capped,
//! while ordinary clients are still answered; clients that hang up mid-request leave
//! nothing behind. A file per concern (`timeouts`, `many_connections`, `hang_ups`);
//! the raw-socket helpers they share are here.

mod hang_ups;
mod many_connections;
mod timeouts;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Options, TestApp, TestDb, spawn_app_with};

pub(crate) fn socket_address(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_owned()
}

/// Opens a connection and sends `bytes`: the start of a request it never finishes.
pub(crate) async fn stall(address: &str, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    stream
}

/// Headers cut off before their blank line.
const HALF_HEADERS: &[u8] = b"POST /orders HTTP/1.1\r\nHost: test\r\nContent-Type: applic";

/// Complete headers promising 200 bytes of body, and the first few of them.
pub(crate) const HALF_BODY: &[u8] =
    b"POST /orders HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
Content-Length: 200\r\n\r\n{\"user_id\": \"u1\", ";

/// Reads until the server closes the connection (end of stream or reset), within
/// `limit`; returns what it sent, or `None` if it was still open.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| received)
}

async fn app_with(db: TestDb, edit: impl FnOnce(&mut Options)) -> TestApp {
    let mut options = Options::default();
    edit(&mut options);
    spawn_app_with(db, options).await
}
