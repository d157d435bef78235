//! The traits every backend implements, one file per concern, and `Store`, which is
//! all of them.

mod backend;
mod consumers;
mod deliveries;
mod events;
mod keys;
mod orders;
mod queue;
mod webhooks;

pub use backend::Backend;
pub use consumers::Consumers;
pub use deliveries::Deliveries;
pub use events::Events;
pub use keys::Keys;
pub use orders::Orders;
pub use queue::Queue;
pub use webhooks::Webhooks;

/// The system of record for orders, which is also the work queue: every concern in
/// one object. Each backend implements the eight traits, one file per concern.
pub trait Store:
    Backend + Orders + Queue + Keys + Events + Consumers + Webhooks + Deliveries
{
}

impl<T: Backend + Orders + Queue + Keys + Events + Consumers + Webhooks + Deliveries> Store for T {}
