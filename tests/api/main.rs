//! Integration tests: the real service, a real PostgreSQL database per test and
//! a real HTTP client. One module per capability; `helpers` starts the app.

mod auth;
mod browser;
mod cli;
mod client_addresses;
mod clients;
mod cluster;
mod cluster_events;
mod daily_holds;
mod daily_windows;
mod errors;
mod faults;
mod fence;
mod health;
#[allow(dead_code)] // helpers serve every module; not each uses every one
mod helpers;
mod idempotency;
mod leases;
mod mail;
mod metrics;
mod notifications;
mod openapi;
mod outbox;
mod pagination;
mod private_cluster;
mod products;
mod promos;
mod raffles;
mod reservation_races;
mod reservations;
mod segments;
mod stores;
mod web_assets;
mod websocket;
