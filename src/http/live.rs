//! The live feed of one instance: a single task follows the event log (woken when the
//! store says events may have committed, polling as a fallback) and hands each new event,
//! already framed for Server-Sent Events, to the streams that follow it: those of every
//! order's events, and those of its order. However many clients follow, the log is read
//! once and each event serialised once, and an event reaches only the streams that
//! want it (ten thousand streams of a thousand orders do not each look at every event).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::domain::{OrderEvent, OrderId};
use crate::store::{Store, StoreError};
use crate::wire::EventBody;

/// Frames kept for the streams of every order's events that have not taken them yet. A
/// stream further behind than this is cut off (its client resumes with
/// `Last-Event-ID`), so no stream buffers without bound: the frames are shared, so this
/// costs the same for every stream.
const BACKLOG_FRAMES: usize = 4_096;

/// The same for the streams of one order, whose events are few.
const ORDER_BACKLOG_FRAMES: usize = 64;

/// How often the log is read when no wake-up arrives: wake-ups from other instances
/// can be lost while the LISTEN connection reconnects.
const POLL: Duration = Duration::from_millis(500);

/// How often the end of the log is noted while no stream is open: at most this much
/// of the log is read again, and handed to the streams at once, when the first stream
/// opens. At the highest write rates measured (about 100,000 events a second) that is
/// about 500 frames, an eighth of `BACKLOG_FRAMES`, so the new stream, still sending
/// its history, is not cut off for it.
const NOTE_END: Duration = Duration::from_millis(5);

/// Most events read from the log in one go, by the feed and by a stream catching up.
pub(super) const PAGE: usize = 1_000;

/// One event, framed for SSE: `id`, `event` and `data` lines.
#[derive(Debug)]
pub struct Frame {
    pub position: i64,
    pub order_id: OrderId,
    /// The order's last event: its stream ends after it.
    pub last: bool,
    pub bytes: Bytes,
}

impl Frame {
    pub fn new(event: &OrderEvent) -> Self {
        let data = serde_json::to_string(&EventBody::new(event)).expect("an event serialises");
        let mut bytes = format!("id: {}\nevent: {}\n", event.position, event.event_type);
        // Compact JSON is one line, except where it holds a processor's result as the
        // processor wrote it: each of its lines is a `data:` line, which a client joins
        // back with line feeds (JSON whitespace, so the data parses the same).
        for line in data.split(['\n', '\r']) {
            bytes.push_str("data: ");
            bytes.push_str(line);
            bytes.push('\n');
        }
        bytes.push('\n');
        Self {
            position: event.position,
            order_id: event.order_id,
            last: event.event_type.is_last(),
            bytes: Bytes::from(bytes),
        }
    }
}

/// The fan-out of new events to this instance's streams.
pub struct LiveFeed {
    /// To the streams of every order's events.
    all: broadcast::Sender<Arc<Frame>>,
    /// To the streams of one order, by order; an entry lives while a stream follows it.
    orders: Mutex<HashMap<OrderId, broadcast::Sender<Arc<Frame>>>>,
}

impl LiveFeed {
    /// Starts following the log from its current end; stops with `stop`.
    pub async fn start(
        store: Arc<dyn Store>,
        stop: CancellationToken,
    ) -> Result<Arc<Self>, StoreError> {
        let end = store.last_position().await?;
        let feed = Arc::new(Self {
            all: broadcast::channel(BACKLOG_FRAMES).0,
            orders: Mutex::default(),
        });
        tokio::spawn(follow(store, feed.clone(), end, stop));
        Ok(feed)
    }

    /// Every event committed from about now on. A stream subscribes first, then reads
    /// what it has missed from the log, then skips the frames it has already sent:
    /// so nothing falls between the two.
    pub fn subscribe_all(&self) -> broadcast::Receiver<Arc<Frame>> {
        self.all.subscribe()
    }

    /// One order's events from about now on (as `subscribe_all`).
    pub fn subscribe_order(&self, id: OrderId) -> broadcast::Receiver<Arc<Frame>> {
        let mut orders = self.orders.lock().expect("not poisoned");
        orders
            .entry(id)
            .or_insert_with(|| broadcast::channel(ORDER_BACKLOG_FRAMES).0)
            .subscribe()
    }

    /// Called by a stream of one order once it has dropped its receiver: the order's
    /// entry goes when no stream follows it any more.
    pub fn forget_order(&self, id: OrderId) {
        let mut orders = self.orders.lock().expect("not poisoned");
        if orders.get(&id).is_some_and(|tx| tx.receiver_count() == 0) {
            orders.remove(&id);
        }
    }

    fn has_streams(&self) -> bool {
        self.all.receiver_count() > 0 || !self.orders.lock().expect("not poisoned").is_empty()
    }

    /// Frames `event` once, if any stream wants it, and hands it to them.
    fn dispatch(&self, event: &OrderEvent) {
        let order = self
            .orders
            .lock()
            .expect("not poisoned")
            .get(&event.order_id)
            .cloned();
        if self.all.receiver_count() == 0 && order.is_none() {
            return;
        }
        let frame = Arc::new(Frame::new(event));
        // An error means no stream follows right now; nothing is owed to anyone.
        let _ = self.all.send(frame.clone());
        if let Some(order) = order {
            let _ = order.send(frame);
        }
    }
}

async fn follow(
    store: Arc<dyn Store>,
    feed: Arc<LiveFeed>,
    mut cursor: i64,
    stop: CancellationToken,
) {
    let mut wake = store.new_events();
    let mut noted = Instant::now();
    loop {
        // With no stream open, only the end of the log is noted, not read: the log's
        // cost stays off the write path until someone follows it. The streams are
        // counted again after the end is read: a stream that opened before that reads
        // everything up to the end from the log itself, and for one that opened
        // meanwhile the cursor stays where it was. Noted at most every `NOTE_END`, not
        // at every commit: an older cursor is as sound (a stream skips what it has
        // already sent), and the first stream after a quiet spell costs one read of
        // the events committed since.
        if !feed.has_streams() && noted.elapsed() >= NOTE_END {
            match store.last_position().await {
                Ok(end) if !feed.has_streams() => cursor = end,
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "reading the event log failed"),
            }
            noted = Instant::now();
        }
        if feed.has_streams() {
            match forward(&*store, &feed, cursor).await {
                Ok(position) => cursor = position,
                Err(err) => tracing::warn!(error = %err, "reading the event log failed"),
            }
        }
        tokio::select! {
            // The store gone (only at exit) leaves the poll.
            Ok(()) = wake.changed() => {}
            () = tokio::time::sleep(POLL) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Hands every event after `after` to the streams; returns the last position read.
async fn forward(store: &dyn Store, feed: &LiveFeed, mut after: i64) -> Result<i64, StoreError> {
    loop {
        let events = store.events_after(after, PAGE).await?;
        for event in &events {
            after = event.position;
            feed.dispatch(event);
        }
        if events.len() < PAGE {
            return Ok(after);
        }
    }
}
