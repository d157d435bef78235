//! The order domain: identifiers, statuses and their legal transitions, money, and
//! the parsing of a client's new order. No HTTP, no SQL, nothing async.

mod delivery;
mod event;
mod money;
#[cfg(test)]
mod money_properties;
mod new_order;
mod number_text;
mod order;
mod result;
mod retry;
mod transitions;
mod webhook;

pub use delivery::{
    AfterAttempt, Answer, Delivery, DeliveryId, DeliverySchedule, DeliveryStatus, RETRY_SCHEDULE,
    UnknownDeliveryStatus,
};
pub use event::{CancelReason, EventType, OrderEvent, UnknownEventType, event_id};
pub use money::{Money, MoneyError};
pub use new_order::{FieldError, ItemIds, NewOrder, UserId};
pub use order::{
    Order, OrderId, OrderStatus, StatusCounts, Timestamp, UnknownStatus, from_millis, now,
};
pub use result::{MAX_RESULT_BYTES, OrderResult, ResultRejected};
pub use retry::{AfterFailure, RetryPolicy};
pub use transitions::{Cause, TRANSITIONS, Transition};
pub use webhook::{
    WebhookEndpoint, WebhookHost, WebhookId, WebhookUrl, new_secret, non_public, parse_description,
    parse_event_types,
};
