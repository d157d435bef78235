//! The integration-test binary: every test talks to the real app over real HTTP, on a
//! fresh SQLite file of its own.

mod access;
mod auth;
mod binary;
mod body_properties;
mod helpers;

mod cli;
mod contract;
mod crash;
mod failures;
mod idempotency;
mod lifecycle;
mod listing;
mod load;
mod loadtest;
mod observability;
mod proxy;
mod rate_limit;
mod restart;
mod scale_out;
mod shutdown;
mod slow_clients;
mod sqlite_upgrade;
mod store_conformance;
mod store_transitions;
mod validation;
