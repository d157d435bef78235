//! The connection settings: how many a client may hold open and how long it may take
//! to send a request or read a response, and the `ServeLimits` built from them.

use std::time::Duration;

use clap::Args;

use super::parse::DAY_MS;

/// What a client may hold of the HTTP server, as set.
#[derive(Debug, Clone, Args)]
pub struct ConnectionConfig {
    /// Most open connections per instance; past it new ones are closed at once.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,

    /// Time allowed to receive a request's headers, in milliseconds (then the
    /// connection is closed).
    #[arg(long, env = "HEADER_READ_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..=DAY_MS))]
    pub header_read_timeout_ms: u64,

    /// Time allowed to receive a request's body after its headers, in milliseconds
    /// (then 408, and the connection is closed).
    #[arg(long, env = "BODY_READ_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..=DAY_MS))]
    pub body_read_timeout_ms: u64,

    /// Time a write to a client may wait while the client reads nothing, in
    /// milliseconds (then the connection is closed).
    #[arg(long, env = "WRITE_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..=DAY_MS))]
    pub write_timeout_ms: u64,
}

/// What one instance lets its clients hold: connections, and time to send a request.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Open connections at most; past it a new connection is closed as soon as it is
    /// accepted (never queued), so stalled clients cannot take every file descriptor.
    pub max_connections: usize,
    /// Time from a connection's accept (or the end of its last response) to the end
    /// of a request's headers; past it hyper closes the connection.
    pub header_read_timeout: Duration,
    /// Time from the end of a request's headers to the end of its body; past it the
    /// request is answered 408 and the connection closed.
    pub body_read_timeout: Duration,
    /// Time a write to the client may wait for room in the socket (the client not
    /// reading); past it the connection is closed.
    pub write_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
        }
    }
}

impl ConnectionConfig {
    /// What a client may hold of the HTTP server: connections and time.
    pub fn serve_limits(&self) -> ServeLimits {
        ServeLimits {
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            body_read_timeout: Duration::from_millis(self.body_read_timeout_ms),
            write_timeout: Duration::from_millis(self.write_timeout_ms),
        }
    }
}
