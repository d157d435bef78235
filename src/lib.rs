//! order-processor: an order-processing backend. Clients create orders over HTTP, a
//! worker pool processes them from a durable queue in the database, operators read metrics.

pub mod api_load;
pub mod app;
pub mod auth;
pub mod background;
pub mod cli;
pub mod config;
pub mod domain;
pub mod http;
pub mod loadtest;
pub mod outbound;
pub mod relay;
pub mod seed;
pub mod signature;
pub mod store;
pub mod telemetry;
pub mod webhooks;
pub mod wire;
pub mod worker;
