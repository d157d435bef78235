//! Serving the router over HTTP/1.1 with hyper: accept connections (up to a limit),
//! run each on its own task with deadlines on receiving a request and on sending its
//! answer, and on shutdown stop accepting and let every connection finish the request
//! it is on.
//!
//! This replaces `axum::serve` for two measured reasons (figures in bench/NOTES.md):
//! hyper's read buffer can be capped (`max_buf_size`), where `axum::serve` lets it grow
//! well past it per connection, and serving HTTP/1.1 alone skips the protocol sniffing
//! of hyper-util's auto builder. With 1,000 connections the no-database ceiling held
//! less memory here, and answered more requests per second.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_service::Service;

use super::body_deadline::DeadlineBody;
use super::write_deadline::WriteDeadline;
use crate::config::ServeLimits;

/// Largest read buffer per connection: hyper's minimum, and ample for our requests.
/// It bounds the request line and headers together (more answers 431, as nginx's
/// default does past 8 KB for one header line); bodies stream past it, and their size
/// is limited separately.
const MAX_READ_BUFFER: usize = 8 * 1024;

/// Serves `router` on `listener` until `shutdown` resolves, then waits for the
/// requests in progress (idle keep-alive connections are closed at once). Each
/// request carries its peer address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    // The timer turns on the header read timeout: a client that never finishes its
    // headers cannot hold a connection, or a graceful shutdown, open for ever.
    http.max_buf_size(MAX_READ_BUFFER)
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let refused = metrics::counter!("http_connections_refused_total");
    let connections = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = accept_failed(err) => continue,
                }
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            // Closed at once: the client sees a reset or an end of stream and can go to
            // another instance, where a queue would only hold it longer.
            refused.increment(1);
            tracing::debug!(%peer, "connection refused: MAX_CONNECTIONS are open");
            drop(stream);
            continue;
        };
        let router = router.clone();
        let body_read_timeout = limits.body_read_timeout;
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            // Measured from here, the end of the headers.
            let deadline = tokio::time::Instant::now() + body_read_timeout;
            let mut request = request.map(|body| DeadlineBody::new(body, deadline));
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().call(request)
        });
        let stream = WriteDeadline::new(stream, limits.write_timeout);
        let connection = connections.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A client that goes away mid-request is its own business.
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    connections.shutdown().await;
    Ok(())
}

/// An accept can fail for one connection (reset before it was taken: try the next at
/// once) or for the process (out of file descriptors: wait, or the loop would spin).
async fn accept_failed(err: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        err.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %err, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
