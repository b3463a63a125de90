//! promo-engine: an actor-based realtime engine for marketplace flash promos
//! and email raffle campaigns.
//!
//! Module map (dependencies point one way: `http` → `actors` → `db` → `domain`;
//! the one exception is `actors::ws_session`, the WebSocket edge, which reuses
//! the HTTP layer's location and reservation steps so both channels share them):
//!
//! - [`config`] — typed configuration, read once from the environment.
//! - [`startup`] — [`startup::Application`]: pool, migrations, the admin
//!   account, the HTTP server. `main.rs` and the integration tests share it.
//! - [`cli`] — the command line: `serve`, `migrate`, `demo-data`, `loadgen`.
//! - [`actors`] — the realtime engine: promo registry and promo actors, the
//!   audience index, the notifier, the WebSocket session hub and sessions.
//! - [`domain`] — pure types and rules (names, money, coordinates, accounts,
//!   promo terms, stock and holds, eligibility, WebSocket frames): no actix,
//!   no SQL, no clock reads.
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
