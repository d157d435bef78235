//! What the relay asks of JetStream: the subjects it publishes on, a stream that takes
//! them (created, or checked when it exists), and publishing a batch with its
//! acknowledgements.

use std::time::Duration;

use async_nats::jetstream::{message::PublishMessage, stream};
use tracing::{error, warn};

use super::{Backoff, Relay};
use crate::domain::{EventType, OrderEvent};
use crate::wire::EventBody;

/// Every subject the relay publishes on.
pub const SUBJECTS: &str = "orders.events.>";

/// The subject of an event: `orders.events.` and its type without `order.`.
pub fn subject(event_type: EventType) -> String {
    let name = event_type.as_str();
    format!(
        "orders.events.{}",
        name.strip_prefix("order.").unwrap_or(name)
    )
}

impl Relay {
    /// Creates the stream unless it exists; `false` if stopped first.
    pub(super) async fn ensure_stream(&self, name: &str) -> bool {
        let config = stream::Config {
            name: name.to_owned(),
            subjects: vec![SUBJECTS.to_owned()],
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        let mut backoff = Backoff::new();
        loop {
            match self.jetstream.get_or_create_stream(config.clone()).await {
                Ok(stream) => return usable(name, &stream.cached_info().config),
                Err(err) => {
                    warn!(error = %err, stream = name, "cannot reach the JetStream stream yet")
                }
            }
            if !self.pause(backoff.next()).await {
                return false;
            }
        }
    }

    /// Publishes a batch and waits for every acknowledgement; answers how many
    /// JetStream dropped as duplicates (sent before a crash or a lost acknowledgement).
    pub(super) async fn publish(&self, batch: &[OrderEvent]) -> Result<u64, async_nats::Error> {
        let mut acks = Vec::with_capacity(batch.len());
        for event in batch {
            let body = serde_json::to_vec(&EventBody::new(event))?;
            let message = PublishMessage::build()
                .payload(body.into())
                .message_id(event.event_id.hyphenated().to_string());
            acks.push(
                self.jetstream
                    .send_publish(subject(event.event_type), message)
                    .await?,
            );
        }
        let mut duplicates = 0;
        for ack in acks {
            duplicates += u64::from(ack.await?.duplicate);
        }
        Ok(duplicates)
    }
}

/// Whether an existing stream can take the relay's messages, said loudly when not: its
/// subjects must cover [`SUBJECTS`], and a duplicate window shorter than ours lets a
/// crash's republished events through twice.
fn usable(name: &str, config: &stream::Config) -> bool {
    let covers = config
        .subjects
        .iter()
        .any(|subject| [SUBJECTS, "orders.>", ">"].contains(&subject.as_str()));
    if !covers {
        error!(
            stream = name, subjects = ?config.subjects,
            "the JetStream stream does not take orders.events.>; events are NOT relayed \
             (and retention keeps them): add the subjects, or name another stream in \
             EVENTS_NATS_STREAM"
        );
        return false;
    }
    if config.duplicate_window < Duration::from_secs(120) {
        warn!(
            stream = name,
            duplicate_window_s = config.duplicate_window.as_secs(),
            "the stream's duplicate window is under two minutes: events republished after \
             a crash may be stored twice"
        );
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_name_the_type_without_its_prefix() {
        assert_eq!(subject(EventType::Completed), "orders.events.completed");
        assert_eq!(
            subject(EventType::AttemptFailed),
            "orders.events.attempt_failed"
        );
    }
}
