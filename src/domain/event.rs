//! The order's event log as the domain sees it: the one list of event types, an event
//! (the change and the order right after it), and a canceller's reason.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{FieldError, Order, OrderId, Timestamp};

/// What happened to an order. Every change of an order writes exactly one event, in
/// the transaction of the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// The order entered the service: accepted as `Pending` (or imported by `seed`, in
    /// whatever status it was imported).
    Created,
    /// Claimed by a worker: an attempt starts (`data.attempts` is its number).
    Processing,
    /// An attempt failed with attempts left (`data.last_error`, `data.attempts`,
    /// `data.next_attempt_at`).
    AttemptFailed,
    /// Back in the queue without a failure: a lease ran out, or a stopping worker
    /// handed its claim back.
    Requeued,
    /// Dead-lettered: the last attempt failed, or the last lease ran out.
    Failed,
    /// An operator put a dead letter back in the queue.
    Retried,
    /// Processing finished.
    Completed,
    /// Called off (`data.cancel_reason`).
    Cancelled,
}

/// An event type text that names no type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type {0:?}")]
pub struct UnknownEventType(pub String);

impl EventType {
    /// Every type, in lifecycle order.
    pub const ALL: [EventType; 8] = [
        Self::Created,
        Self::Processing,
        Self::AttemptFailed,
        Self::Requeued,
        Self::Failed,
        Self::Retried,
        Self::Completed,
        Self::Cancelled,
    ];

    /// The type's name, as stored and as answered.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "order.created",
            Self::Processing => "order.processing",
            Self::AttemptFailed => "order.attempt_failed",
            Self::Requeued => "order.requeued",
            Self::Failed => "order.failed",
            Self::Retried => "order.retried",
            Self::Completed => "order.completed",
            Self::Cancelled => "order.cancelled",
        }
    }

    /// Whether this event ends the order's life: nothing follows it.
    pub fn is_last(self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled)
    }
}

impl FromStr for EventType {
    type Err = UnknownEventType;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| UnknownEventType(text.to_owned()))
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One change of one order, as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderEvent {
    /// A UUIDv7, unique to this event: receivers deduplicate by it.
    pub event_id: Uuid,
    pub order_id: OrderId,
    /// 1, 2, 3... per order, without gaps.
    pub seq: u32,
    pub event_type: EventType,
    pub occurred_at: Timestamp,
    /// Orders every event of every order; a reader that pages by it never skips one.
    pub position: i64,
    /// The order right after the change.
    pub order: Order,
}

/// The id of an order's `seq`th event, which happened at `occurred_at`: a UUIDv7 whose
/// time is `occurred_at` and whose other 74 bits come from a hash of the order and the
/// seq rather than a random source, so the id need not be stored (events are written
/// on the hot path of every change) and is the same however often, and wherever, the
/// event is read or delivered. Never change this derivation: receivers deduplicate by
/// these ids.
pub fn event_id(order_id: OrderId, seq: u32, occurred_at: Timestamp) -> Uuid {
    let mut hash = Sha256::new();
    hash.update(order_id.as_uuid().as_bytes());
    hash.update(seq.to_be_bytes());
    let digest = hash.finalize();
    let bits: [u8; 10] = *digest.first_chunk().expect("32 >= 10");
    let ms = u64::try_from(occurred_at.timestamp_millis()).unwrap_or_default();
    uuid::Builder::from_unix_timestamp_millis(ms, &bits).into_uuid()
}

/// Why an order was cancelled: at most 500 characters, no NUL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelReason(String);

/// Longest reason accepted, in characters.
const MAX_REASON_CHARS: usize = 500;

impl CancelReason {
    /// The reason, if it is within the limits; the error names the field `reason`.
    pub fn parse(text: String) -> Result<Self, FieldError> {
        const FIELD: &str = "reason";
        if text.contains('\0') {
            Err(FieldError::new(
                FIELD,
                "must not contain NUL (\\u0000) characters",
            ))
        } else if text.chars().count() > MAX_REASON_CHARS {
            Err(FieldError::new(
                FIELD,
                format!("must be at most {MAX_REASON_CHARS} characters"),
            ))
        } else {
            Ok(Self(text))
        }
    }

    /// The reason as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_names_round_trip_and_are_distinct() {
        for kind in EventType::ALL {
            assert_eq!(kind.as_str().parse::<EventType>(), Ok(kind));
        }
        let mut names: Vec<_> = EventType::ALL.iter().map(|k| k.as_str()).collect();
        names.dedup();
        assert_eq!(names.len(), EventType::ALL.len());
        assert!("order.shipped".parse::<EventType>().is_err());
    }

    #[test]
    fn only_completion_and_cancellation_end_a_log() {
        let last: Vec<_> = EventType::ALL.into_iter().filter(|k| k.is_last()).collect();
        assert_eq!(last, [EventType::Completed, EventType::Cancelled]);
    }

    #[test]
    fn event_ids_are_version_7_stable_and_distinct() {
        let at = super::super::from_millis(1_764_000_000_123);
        let order = OrderId::new_at(at);
        let id = event_id(order, 1, at);
        assert_eq!(id.get_version_num(), 7);
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        let (secs, nanos) = id.get_timestamp().unwrap().to_unix();
        assert_eq!(
            secs * 1000 + u64::from(nanos / 1_000_000),
            1_764_000_000_123
        );
        assert_eq!(event_id(order, 1, at), id, "the same event, the same id");
        assert_ne!(event_id(order, 2, at), id);
        assert_ne!(event_id(OrderId::new_at(at), 1, at), id);
    }

    #[test]
    fn a_reason_is_bounded_and_has_no_nul() {
        assert!(CancelReason::parse("customer asked".into()).is_ok());
        assert!(CancelReason::parse(String::new()).is_ok());
        assert!(CancelReason::parse("é".repeat(500)).is_ok());
        let long = CancelReason::parse("é".repeat(501)).unwrap_err();
        assert_eq!(long.field, "reason");
        assert!(long.message.contains("500"), "{}", long.message);
        let nul = CancelReason::parse("a\0b".into()).unwrap_err();
        assert!(nul.message.contains("NUL"), "{}", nul.message);
    }
}
