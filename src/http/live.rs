//! The live feed of one instance: a single task follows the event log (woken when the
//! store says events may have committed, polling as a fallback) and hands each new event,
//! already framed for Server-Sent Events, to every open stream. However many clients
//! follow, the log is read once and each event serialised once.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::order_json::EventBody;
use crate::domain::{OrderEvent, OrderId};
use crate::store::{Store, StoreError};

/// Frames kept for streams that have not taken them yet. A stream further behind than
/// this is cut off (its client resumes with `Last-Event-ID`), so no stream buffers
/// without bound: the frames are shared, so this costs the same for every stream.
const BACKLOG_FRAMES: usize = 4_096;

/// How often the log is read when no wake-up arrives: wake-ups from other instances
/// can be lost while the LISTEN connection reconnects.
const POLL: Duration = Duration::from_millis(500);

/// Most events read in one go.
const PAGE: usize = 1_000;

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
        Self {
            position: event.position,
            order_id: event.order_id,
            last: event.event_type.is_last(),
            // Compact JSON has no line breaks, so the data is one `data:` line.
            bytes: Bytes::from(format!(
                "id: {}\nevent: {}\ndata: {data}\n\n",
                event.position, event.event_type
            )),
        }
    }
}

/// The fan-out of new events to this instance's streams.
pub struct LiveFeed {
    frames: broadcast::Sender<Arc<Frame>>,
}

impl LiveFeed {
    /// Starts following the log from its current end; stops with `stop` (then every
    /// stream ends).
    pub async fn start(
        store: Arc<dyn Store>,
        stop: CancellationToken,
    ) -> Result<Arc<Self>, StoreError> {
        let end = store.last_position().await?;
        let (frames, _) = broadcast::channel(BACKLOG_FRAMES);
        tokio::spawn(follow(store, frames.clone(), end, stop));
        Ok(Arc::new(Self { frames }))
    }

    /// Every event committed from about now on. A stream subscribes first, then reads
    /// what it has missed from the log, then skips the frames it has already sent:
    /// so nothing falls between the two.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Frame>> {
        self.frames.subscribe()
    }
}

async fn follow(
    store: Arc<dyn Store>,
    frames: broadcast::Sender<Arc<Frame>>,
    mut cursor: i64,
    stop: CancellationToken,
) {
    let wake = store.new_events();
    loop {
        // With no stream open, only the end of the log is noted, not read: the log's
        // cost stays off the write path until someone follows it. The streams are
        // counted again after the end is read: a stream that opened before that reads
        // everything up to the end from the log itself, and for one that opened
        // meanwhile the cursor stays where it was.
        if frames.receiver_count() == 0 {
            match store.last_position().await {
                Ok(end) if frames.receiver_count() == 0 => cursor = end,
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "reading the event log failed"),
            }
        }
        if frames.receiver_count() > 0 {
            match forward(&*store, &frames, cursor).await {
                Ok(position) => cursor = position,
                Err(err) => tracing::warn!(error = %err, "reading the event log failed"),
            }
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(POLL) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Sends every event after `after` to the streams; returns the last position sent.
async fn forward(
    store: &dyn Store,
    frames: &broadcast::Sender<Arc<Frame>>,
    mut after: i64,
) -> Result<i64, StoreError> {
    loop {
        let events = store.events_after(after, PAGE).await?;
        for event in &events {
            after = event.position;
            // An error means no stream is open right now; nothing is owed to anyone.
            let _ = frames.send(Arc::new(Frame::new(event)));
        }
        if events.len() < PAGE {
            return Ok(after);
        }
    }
}
