//! The order domain: identifiers, statuses and their legal transitions, money, and
//! the parsing of a client's new order. No HTTP, no SQL, nothing async.

mod money;
#[cfg(test)]
mod money_properties;
mod new_order;
mod order;
mod retry;

pub use money::{Money, MoneyError};
pub use new_order::{FieldError, ItemIds, NewOrder, UserId};
pub use order::{
    Cause, Order, OrderId, OrderStatus, StatusCounts, TRANSITIONS, Timestamp, Transition,
    UnknownStatus, from_millis, now,
};
pub use retry::{AfterFailure, RetryPolicy};
