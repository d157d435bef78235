//! An order as stored: its identifier, its status and the transitions between them.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use super::{ItemIds, Money, NewOrder, OrderResult, UserId};

/// A point in time, UTC, at millisecond precision: the precision every backend
/// keeps and every answer prints, so a value read back equals the value written.
pub type Timestamp = DateTime<Utc>;

/// The current time truncated to whole milliseconds.
pub fn now() -> Timestamp {
    from_millis(Utc::now().timestamp_millis())
}

/// A timestamp from milliseconds since the Unix epoch (clamped to the epoch if out of range).
pub fn from_millis(ms: i64) -> Timestamp {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// A random UUIDv7 whose timestamp part is `at`: unique, and sorting by time.
fn uuid_v7_at(at: Timestamp) -> Uuid {
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or_default();
    let random: [u8; 10] = *Uuid::new_v4().as_bytes().first_chunk().expect("16 >= 10");
    uuid::Builder::from_unix_timestamp_millis(ms, &random).into_uuid()
}

/// An order's identifier: a UUIDv7, so ids sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrderId(Uuid);

impl OrderId {
    /// A new id whose timestamp part is `at`.
    pub fn new_at(at: Timestamp) -> Self {
        Self(uuid_v7_at(at))
    }

    /// Wraps an existing UUID (as read back from storage).
    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl FromStr for OrderId {
    type Err = uuid::Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Uuid::try_parse(text).map(Self)
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Where an order is in its lifecycle.
///
/// `Pending` -> `Processing` (claimed by a worker under a lease) -> `Completed`.
/// A failed attempt, a released claim or an expired lease goes back to `Pending`
/// (after a backoff, for a failure), until the attempts run out: then `Failed`, the
/// dead-letter state, which only an operator's retry moves back to `Pending`. A
/// `Pending` or `Failed` order can be `Cancelled`, for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OrderStatus {
    Pending,
    Processing,
    Completed,
    Failed,
    Cancelled,
}

/// A status text that names no status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown order status {0:?}")]
pub struct UnknownStatus(pub String);

impl OrderStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [OrderStatus; 5] = [
        Self::Pending,
        Self::Processing,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
    ];

    /// The status's place in [`Self::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The status's name, as stored and as answered.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Processing => "Processing",
            Self::Completed => "Completed",
            Self::Failed => "Failed",
            Self::Cancelled => "Cancelled",
        }
    }

    /// Whether nothing can move an order on from this status (the transition table
    /// has no way out of it).
    pub fn is_terminal(self) -> bool {
        !super::TRANSITIONS.iter().any(|t| t.from == self)
    }
}

impl FromStr for OrderStatus {
    type Err = UnknownStatus;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| UnknownStatus(text.to_owned()))
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Serialised as its name, as stored and as answered.
impl serde::Serialize for OrderStatus {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// An order as the system of record holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub user_id: UserId,
    pub item_ids: ItemIds,
    pub total_amount: Money,
    pub status: OrderStatus,
    pub created_at: Timestamp,
    /// Set once, when the order becomes `Completed`.
    pub completed_at: Option<Timestamp>,
    /// How many times processing has started since the order was created or last
    /// retried by an operator.
    pub attempts: u32,
    /// Why the last attempt failed, if one did.
    pub last_error: Option<String>,
    /// Set when the order became `Failed` (dead-lettered).
    pub failed_at: Option<Timestamp>,
    /// While `Pending`, the earliest time a worker may claim it: its creation, or the
    /// end of a failed attempt's backoff. `None` in every other status.
    pub next_attempt_at: Option<Timestamp>,
    /// Set when the order became `Cancelled`.
    pub cancelled_at: Option<Timestamp>,
    /// Why it was cancelled, if the canceller said.
    pub cancel_reason: Option<String>,
    /// What the processing step answered about its work, kept when it completed the
    /// order with a JSON object.
    pub result: Option<OrderResult>,
}

impl Order {
    /// A freshly accepted order: `Pending`, never attempted, id and `created_at` from `now`.
    pub fn accept(new: NewOrder, now: Timestamp) -> Self {
        Self {
            id: OrderId::new_at(now),
            user_id: new.user_id,
            item_ids: new.item_ids,
            total_amount: new.total_amount,
            status: OrderStatus::Pending,
            created_at: now,
            completed_at: None,
            attempts: 0,
            last_error: None,
            failed_at: None,
            next_attempt_at: Some(now),
            cancelled_at: None,
            cancel_reason: None,
            result: None,
        }
    }
}

/// How many orders are in each status, read together; one slot per status of
/// [`OrderStatus::ALL`], so a new status is counted without a change here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusCounts([u64; OrderStatus::ALL.len()]);

impl StatusCounts {
    /// The count for one status.
    pub fn get(&self, status: OrderStatus) -> u64 {
        self.0[status.index()]
    }

    /// Adds `n` to one status's count.
    pub fn add(&mut self, status: OrderStatus, n: u64) {
        self.0[status.index()] += n;
    }

    /// Every status with its count, in lifecycle order.
    pub fn iter(&self) -> impl Iterator<Item = (OrderStatus, u64)> + '_ {
        OrderStatus::ALL.into_iter().zip(self.0)
    }

    /// All orders, whatever their status.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_status_once_in_declaration_order() {
        for (index, status) in OrderStatus::ALL.into_iter().enumerate() {
            assert_eq!(status.index(), index, "{status}");
        }
    }

    #[test]
    fn counts_are_kept_per_status_and_summed() {
        let mut counts = StatusCounts::default();
        counts.add(OrderStatus::Failed, 2);
        counts.add(OrderStatus::Pending, 3);
        counts.add(OrderStatus::Failed, 1);
        assert_eq!(counts.get(OrderStatus::Failed), 3);
        assert_eq!(counts.get(OrderStatus::Completed), 0);
        assert_eq!(counts.total(), 6);
        let listed: Vec<_> = counts.iter().collect();
        assert_eq!(listed.len(), OrderStatus::ALL.len());
        assert_eq!(listed[0], (OrderStatus::Pending, 3));
    }

    #[test]
    fn status_names_round_trip() {
        for status in OrderStatus::ALL {
            assert_eq!(status.as_str().parse::<OrderStatus>(), Ok(status));
        }
        assert!("pending".parse::<OrderStatus>().is_err());
    }

    #[test]
    fn new_ids_are_version_7_and_carry_their_time() {
        let at = from_millis(1_764_000_000_123);
        let id = OrderId::new_at(at);
        assert_eq!(id.as_uuid().get_version_num(), 7);
        let (secs, nanos) = id.as_uuid().get_timestamp().unwrap().to_unix();
        assert_eq!(
            secs * 1000 + u64::from(nanos / 1_000_000),
            1_764_000_000_123
        );
        assert_ne!(OrderId::new_at(at), id);
    }

    #[test]
    fn now_has_millisecond_precision() {
        assert_eq!(now().timestamp_subsec_nanos() % 1_000_000, 0);
    }
}
