//! Webhook deliveries as the domain sees them: one event owed to one endpoint, its
//! states, the retry schedule, and what an attempt's answer means for what follows.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use uuid::Uuid;

use super::{EventType, OrderEvent, OrderId, Timestamp, WebhookId, from_millis};

/// A delivery's identifier: a UUIDv7, so ids sort by the time the delivery was owed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeliveryId(Uuid);

impl DeliveryId {
    /// A new id whose timestamp part is `at`.
    pub fn new_at(at: Timestamp) -> Self {
        let ms = u64::try_from(at.timestamp_millis()).unwrap_or_default();
        let random: [u8; 10] = *Uuid::new_v4().as_bytes().first_chunk().expect("16 >= 10");
        Self(uuid::Builder::from_unix_timestamp_millis(ms, &random).into_uuid())
    }

    /// The smallest id a delivery owed at `at` or later can have: where a range of
    /// deliveries by time starts.
    pub fn first_at(at: Timestamp) -> Self {
        let ms = u64::try_from(at.timestamp_millis()).unwrap_or_default();
        Self(uuid::Builder::from_unix_timestamp_millis(ms, &[0; 10]).into_uuid())
    }

    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl FromStr for DeliveryId {
    type Err = uuid::Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Uuid::try_parse(text).map(Self)
    }
}

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Still owed: due at its next attempt, in flight, or waiting behind an earlier
    /// event of its order for the same endpoint.
    Pending,
    /// The endpoint answered `2xx`.
    Delivered,
    /// Every attempt of the schedule failed.
    Failed,
}

/// A status text that names no delivery status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown delivery status {0:?}")]
pub struct UnknownDeliveryStatus(pub String);

impl DeliveryStatus {
    /// Every status: the one list the store, the API and its document use.
    pub const ALL: [DeliveryStatus; 3] = [Self::Pending, Self::Delivered, Self::Failed];

    /// The status's name, as stored and as answered.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

impl FromStr for DeliveryStatus {
    type Err = UnknownDeliveryStatus;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| UnknownDeliveryStatus(text.to_owned()))
    }
}

impl serde::Serialize for DeliveryStatus {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event owed to one endpoint, and how its attempts went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: DeliveryId,
    pub endpoint_id: WebhookId,
    /// The event's position in the log, where its body is read from.
    pub event_position: i64,
    /// The event's id: the `webhook-id` of every attempt.
    pub event_id: Uuid,
    pub order_id: OrderId,
    pub seq: u32,
    pub event_type: EventType,
    /// When the event happened (the `timestamp` of the body).
    pub occurred_at: Timestamp,
    pub status: DeliveryStatus,
    /// Attempts started (a claim counts one, even if its sender died).
    pub attempts: u32,
    /// While `Pending`: when it may next be claimed; `None` while an earlier event of
    /// its order waits for the same endpoint.
    pub next_attempt_at: Option<Timestamp>,
    pub last_attempt_at: Option<Timestamp>,
    /// The last answer's status code; `None` if there was none (a timeout, a refused
    /// connection).
    pub last_status_code: Option<u16>,
    /// What went wrong last: the start of the answer, or the connection's error.
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    /// When it was delivered, or failed for good.
    pub finished_at: Option<Timestamp>,
}

impl Delivery {
    /// A delivery of `event` to `endpoint`, owed from `now` and due at once.
    pub fn new(endpoint: WebhookId, event: &OrderEvent, now: Timestamp) -> Self {
        Self {
            id: DeliveryId::new_at(now),
            endpoint_id: endpoint,
            event_position: event.position,
            event_id: event.event_id,
            order_id: event.order_id,
            seq: event.seq,
            event_type: event.event_type,
            occurred_at: event.occurred_at,
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: Some(now),
            last_attempt_at: None,
            last_status_code: None,
            last_error: None,
            created_at: now,
            finished_at: None,
        }
    }
}

/// The waits between attempts after a failure, as Standard Webhooks senders use them:
/// eight attempts over about a day and a half.
pub const RETRY_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3_600),
    Duration::from_secs(5 * 3_600),
    Duration::from_secs(10 * 3_600),
    Duration::from_secs(10 * 3_600),
];

/// The longest a receiver's `Retry-After` is honoured: a day, so that a receiver's
/// mistake (a year) cannot park a delivery for good.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3_600);

/// The schedule, stretched or shrunk (`WEBHOOK_RETRY_SCALE`; tests run it in
/// milliseconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeliverySchedule {
    pub scale: f64,
}

/// What follows an attempt that was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterAttempt {
    /// Tried again, not before this time.
    RetryAt(Timestamp),
    /// That was the last attempt: the delivery is `Failed`.
    GiveUp,
}

impl DeliverySchedule {
    /// The wait after the `attempts`-th attempt failed, with up to 20% of jitter either
    /// way (`jitter` in `[0, 1]`), so that retries of many deliveries spread out;
    /// `None` after the last attempt.
    pub fn wait(&self, attempts: u32, jitter: f64) -> Option<Duration> {
        let step = RETRY_SCHEDULE.get(usize::try_from(attempts).ok()?.checked_sub(1)?)?;
        let factor = self.scale.max(0.0) * (0.8 + 0.4 * jitter.clamp(0.0, 1.0));
        Some(Duration::try_from_secs_f64(step.as_secs_f64() * factor).unwrap_or(Duration::MAX))
    }

    /// What follows the `attempts`-th attempt, failed at `now`; `retry_after` is what
    /// a `429` or `503` asked for (never sooner, capped at the schedule's longest wait).
    pub fn after(
        &self,
        attempts: u32,
        now: Timestamp,
        jitter: f64,
        retry_after: Option<Duration>,
    ) -> AfterAttempt {
        let Some(wait) = self.wait(attempts, jitter) else {
            return AfterAttempt::GiveUp;
        };
        let wait = wait.max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER));
        let wait = chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
        let at = now.checked_add_signed(wait).unwrap_or(now);
        // Millisecond precision, like every stored time.
        AfterAttempt::RetryAt(from_millis(at.timestamp_millis()))
    }
}

/// What an endpoint's answer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// `2xx`: delivered.
    Accepted,
    /// `410 Gone`: the endpoint is disabled at once; the delivery stays owed, so an
    /// operator who enables it again loses nothing.
    Gone,
    /// `429` or `503`: retried, no sooner than its `Retry-After` says.
    Busy,
    /// Anything else: retried on the schedule.
    Refused,
}

impl Answer {
    pub fn of(status: u16) -> Self {
        match status {
            200..=299 => Self::Accepted,
            410 => Self::Gone,
            429 | 503 => Self::Busy,
            _ => Self::Refused,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_the_standard_one_scaled_with_jitter_of_a_fifth() {
        let real = DeliverySchedule { scale: 1.0 };
        let waits: Vec<u64> = (1..=7)
            .map(|n| real.wait(n, 0.5).unwrap().as_secs())
            .collect();
        assert_eq!(waits, [5, 300, 1_800, 7_200, 18_000, 36_000, 36_000]);
        assert_eq!(real.wait(8, 0.5), None, "eight attempts in all");
        assert_eq!(real.wait(0, 0.5), None);
        assert_eq!(real.wait(1, 0.0), Some(Duration::from_secs(4)));
        assert_eq!(real.wait(1, 1.0), Some(Duration::from_secs(6)));
        let fast = DeliverySchedule { scale: 0.001 };
        assert_eq!(fast.wait(1, 0.5), Some(Duration::from_millis(5)));
        assert_eq!(fast.wait(7, 0.5), Some(Duration::from_secs(36)));
    }

    #[test]
    fn retry_after_is_honoured_but_never_shortens_the_schedule() {
        let schedule = DeliverySchedule { scale: 0.001 };
        let now = from_millis(1_000_000);
        let at = |retry_after| match schedule.after(1, now, 0.5, retry_after) {
            AfterAttempt::RetryAt(at) => (at - now).num_milliseconds(),
            AfterAttempt::GiveUp => panic!("attempts are left"),
        };
        assert_eq!(at(None), 5);
        assert_eq!(at(Some(Duration::from_secs(2))), 2_000);
        assert_eq!(at(Some(Duration::ZERO)), 5);
        assert_eq!(
            at(Some(Duration::from_secs(7 * 24 * 3_600))),
            86_400_000,
            "capped at a day"
        );
        assert_eq!(schedule.after(8, now, 0.5, None), AfterAttempt::GiveUp);
    }

    #[test]
    fn answers_are_read_as_the_standard_says() {
        assert_eq!(Answer::of(200), Answer::Accepted);
        assert_eq!(Answer::of(204), Answer::Accepted);
        assert_eq!(Answer::of(410), Answer::Gone);
        assert_eq!(Answer::of(429), Answer::Busy);
        assert_eq!(Answer::of(503), Answer::Busy);
        for status in [301, 400, 404, 500, 502] {
            assert_eq!(Answer::of(status), Answer::Refused, "{status}");
        }
    }

    #[test]
    fn ids_sort_by_time_and_the_first_id_of_a_time_sorts_before_all_of_it() {
        let at = from_millis(1_700_000_000_000);
        let first = DeliveryId::first_at(at);
        assert!(first <= DeliveryId::new_at(at));
        assert!(DeliveryId::new_at(from_millis(1_699_999_999_999)) < first);
        assert!(
            first.to_string() <= DeliveryId::new_at(at).to_string(),
            "text sorts the same way"
        );
    }
}
