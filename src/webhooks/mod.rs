//! Webhooks: signed deliveries of the event log to the shop's endpoints. So far, the
//! check an endpoint's address passes before it is registered (`network.rs`).

mod network;

pub use network::{NetworkPolicy, check_reachable};
