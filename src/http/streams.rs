//! Server-Sent Events: one order's events, or every order's, first those the client
//! has not seen (all, or those after `Last-Event-ID`), then each new one as it commits.
//! Each stream is a task writing into a small bounded channel that the response body
//! reads; a client too slow to keep up with the live feed is cut off and resumes with
//! `Last-Event-ID`, so nothing buffers without bound.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::error::ApiError;
use super::live::{Frame, LiveFeed, PAGE};
use crate::domain::OrderId;
use crate::store::Store;

/// Frames a stream may have written ahead of its client; the socket's own buffers
/// come after these.
const AHEAD: usize = 32;

/// The open streams of this instance, and how each behaves.
pub struct Streams {
    pub feed: Arc<LiveFeed>,
    /// Streams open now; a Prometheus gauge too.
    open: Arc<AtomicUsize>,
    /// Most streams open at once (`MAX_STREAMS`); past it, 503.
    pub max: usize,
    /// A comment line this often keeps proxies from closing an idle stream.
    pub heartbeat: Duration,
    /// What the `retry:` line tells a browser to wait before reconnecting.
    pub retry: Duration,
    /// Ends every stream when the service stops.
    pub stop: CancellationToken,
}

/// Which events a stream follows.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    /// One order's; `terminal` when the order could change no more when the stream
    /// was asked for (then the stream ends once its history is sent).
    Order { id: OrderId, terminal: bool },
    /// Every order's, by position.
    All,
}

/// One place among the open streams, given back when the stream ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!("event_streams_open").decrement(1.0);
    }
}

impl Streams {
    pub fn new(
        feed: Arc<LiveFeed>,
        max: usize,
        heartbeat: Duration,
        retry: Duration,
        stop: CancellationToken,
    ) -> Self {
        Self {
            feed,
            open: Arc::default(),
            max,
            heartbeat,
            retry,
            stop,
        }
    }

    /// A place among the open streams, if one is free; never counts past `max`, so a
    /// refused request cannot make another one look refused too.
    fn take_slot(&self) -> Result<Slot, ApiError> {
        self.open
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |open| {
                (open < self.max).then_some(open + 1)
            })
            .map_err(|_| ApiError::TooManyStreams(self.max))?;
        // Increments and decrements, not the count: two `set`s could land out of order.
        metrics::gauge!("event_streams_open").increment(1.0);
        Ok(Slot(self.open.clone()))
    }

    /// Opens a stream of `scope`'s events after position `after`.
    pub fn open(
        &self,
        store: Arc<dyn Store>,
        scope: Scope,
        after: i64,
    ) -> Result<Response, ApiError> {
        let slot = self.take_slot()?;
        // Subscribed before the history is read, so nothing falls between the two.
        let live = match scope {
            Scope::Order { id, .. } => self.feed.subscribe_order(id),
            Scope::All => self.feed.subscribe_all(),
        };
        let (frames, body) = mpsc::channel::<Bytes>(AHEAD);
        let stream = Stream {
            feed: self.feed.clone(),
            store,
            scope,
            last: after,
            frames,
            heartbeat: self.heartbeat,
            stop: self.stop.clone(),
        };
        let retry = format!("retry: {}\n\n", self.retry.as_millis());
        tokio::spawn(async move {
            let _slot = slot;
            let feed = stream.feed.clone();
            stream.run(Bytes::from(retry), live).await;
            // The receiver is gone with the stream: the order's entry may go too.
            if let Scope::Order { id, .. } = scope {
                feed.forget_order(id);
            }
        });
        let body = futures::stream::unfold(body, |mut body| async move {
            body.recv()
                .await
                .map(|bytes| (Ok::<_, Infallible>(bytes), body))
        });
        let mut response = Response::new(Body::from_stream(body));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        // Tells nginx not to hold the stream back in its buffers.
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        Ok(response)
    }
}

/// One open stream, on its own task.
struct Stream {
    feed: Arc<LiveFeed>,
    store: Arc<dyn Store>,
    scope: Scope,
    /// The position of the last event sent (or the client's `Last-Event-ID`).
    last: i64,
    frames: mpsc::Sender<Bytes>,
    heartbeat: Duration,
    stop: CancellationToken,
}

/// The stream has nothing more to send: the client left, the order's log ended, or
/// the service is stopping.
struct Ended;

impl Stream {
    async fn run(mut self, retry: Bytes, mut live: tokio::sync::broadcast::Receiver<Arc<Frame>>) {
        if self.send(retry).await.is_err() || self.history().await.is_err() {
            return;
        }
        if let Scope::Order { terminal: true, .. } = self.scope {
            return;
        }
        let mut beat = tokio::time::interval(self.heartbeat);
        beat.tick().await;
        loop {
            let frame = tokio::select! {
                frame = live.recv() => frame,
                _ = beat.tick() => {
                    if self.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                        return;
                    }
                    continue;
                }
                () = self.frames.closed() => return,
                () = self.stop.cancelled() => return,
            };
            let frame = match frame {
                Ok(frame) => frame,
                Err(RecvError::Lagged(_)) => {
                    tracing::info!(
                        "an event stream fell too far behind the live feed; closed it \
                         (the client resumes with Last-Event-ID)"
                    );
                    return;
                }
                Err(RecvError::Closed) => return,
            };
            if frame.position <= self.last {
                continue;
            }
            if let Scope::Order { id, .. } = self.scope
                && frame.order_id != id
            {
                continue;
            }
            if self.send(frame.bytes.clone()).await.is_err() {
                return;
            }
            self.last = frame.position;
            if frame.last && matches!(self.scope, Scope::Order { .. }) {
                return;
            }
        }
    }

    /// Sends what the client has not seen from the log. For one order, ends the stream
    /// (as an error) once its last event is sent.
    async fn history(&mut self) -> Result<(), Ended> {
        loop {
            let events = match self.scope {
                Scope::Order { id, .. } => self.store.order_events(id, self.last).await,
                Scope::All => self.store.events_after(self.last, PAGE).await,
            };
            let events = match events {
                Ok(events) => events,
                Err(err) => {
                    tracing::warn!(error = %err, "reading an event stream's history failed");
                    return Err(Ended);
                }
            };
            for event in &events {
                self.send(Frame::new(event).bytes).await?;
                self.last = event.position;
                if event.event_type.is_last() && matches!(self.scope, Scope::Order { .. }) {
                    return Err(Ended);
                }
            }
            if matches!(self.scope, Scope::Order { .. }) || events.len() < PAGE {
                return Ok(());
            }
        }
    }

    /// Waits for room ahead of the client; an error when the client has gone.
    async fn send(&self, bytes: Bytes) -> Result<(), Ended> {
        tokio::select! {
            sent = self.frames.send(bytes) => sent.map_err(|_| Ended),
            () = self.stop.cancelled() => Err(Ended),
        }
    }
}
