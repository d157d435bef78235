//! The order domain: identifiers, statuses and their legal transitions, money, and
//! the parsing of a client's new order. No HTTP, no SQL, nothing async.

mod delivery;
mod event;
mod money;
#[cfg(test)]
mod money_properties;
mod new_order;
mod non_public;
mod number_text;
mod order;
mod result;
mod retry;
mod transitions;
mod webhook;
mod webhook_url;

pub use delivery::{
    AfterAttempt, Answer, Delivery, DeliveryId, DeliverySchedule, DeliveryStatus, RETRY_SCHEDULE,
    UnknownDeliveryStatus,
};
pub use event::{CancelReason, EventType, OrderEvent, UnknownEventType, event_id};
pub use money::{Money, MoneyError};
pub use new_order::{FieldError, ItemIds, NewOrder, UserId};
pub use non_public::non_public;
pub use order::{
    Order, OrderId, OrderStatus, StatusCounts, Timestamp, UnknownStatus, from_millis, now,
};
pub use result::{MAX_RESULT_BYTES, OrderResult, ResultRejected};
pub use retry::{AfterFailure, RetryPolicy};
pub use transitions::{Cause, TRANSITIONS, Transition};
pub use webhook::{WebhookEndpoint, WebhookId, new_secret, parse_description, parse_event_types};
pub use webhook_url::{WebhookHost, WebhookUrl};
