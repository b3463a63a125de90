//! promo-engine: an actor-based realtime engine for marketplace flash promos
//! and email raffle campaigns.
//!
//! Module map (dependencies point one way: `http` → `actors` → `db` → `domain`):
//!
//! - [`config`] — typed configuration, read once from the environment.
//! - [`startup`] — [`startup::Application`]: pool, migrations, the admin
//!   account, the HTTP server. `main.rs` and the integration tests share it.
//! - [`cli`] — the command line: `serve`, `migrate`, `demo-data`.
//! - [`domain`] — pure types and rules (names, money, coordinates, accounts):
//!   no actix, no SQL, no clock reads.
//! - [`db`] — the connection pool, migrations and every SQL statement.
//! - [`http`] — the route table, authentication, pagination, the error type and
//!   one module per REST resource.
//! - [`telemetry`] — `tracing` subscriber set-up.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod actors;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod http;
pub mod startup;
pub mod telemetry;
