//! The integration-test binary. API tests talk to the real app over real HTTP (in this
//! process, or as the real binary); store tests call the `Store` trait directly. Most
//! run once per backend through `on_every_backend!`: on a fresh SQLite file, and on a
//! fresh PostgreSQL schema when `TEST_DATABASE_URL` is set.

mod access;
mod auth;
mod auth_keys;
mod background;
mod binary;
mod body_properties;
mod helpers;
mod nats_server;
mod receiver;
mod test_db;

mod bulk_retry;
mod cancel;
mod cli;
mod contract;
mod crash;
mod dashboard;
mod deliveries;
mod delivery_faults;
mod delivery_ops;
mod event_feed;
mod events;
mod failures;
mod http_processor;
mod idempotency;
mod leases;
mod lifecycle;
mod listing;
mod load;
mod loadtest;
mod metrics;
mod nats;
mod observability;
mod openapi;
mod proxy;
mod rate_limit;
mod restart;
mod scale_out;
mod shutdown;
mod slow_clients;
mod sqlite_upgrade;
mod store_conformance;
mod stream_limits;
mod streams;
mod validation;
mod webhooks;
