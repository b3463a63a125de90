//! promo-engine: an actor-based realtime engine for marketplace flash promos
//! and email raffle campaigns.
//!
//! Module map (dependencies point one way: `http` → `engine` → `actors` →
//! `db` → `domain`; the WebSocket session in `actors` reaches the engine
//! through the [`engine::Engine`] it is given, never through `http`):
//!
//! - [`config`] — typed configuration, read once from the environment.
//! - [`startup`] — [`startup::Application`]: pool, migrations, the admin
//!   account, the HTTP server. `main.rs` and the integration tests share it.
//! - [`cli`] — the command line: `serve`, `migrate`, `demo-data`, `loadgen`.
//! - [`private_cluster`] — the embedded default database: a PostgreSQL
//!   cluster of our own under `DATA_DIR` when `DATABASE_URL` is unset and
//!   nothing answers at the default address.
//! - [`engine`] — the [`engine::Engine`] façade: the one way in for both
//!   edges (reserve, complete, cancel; move a shopper and refresh their
//!   watches; announce, stop or refresh promos; enter a raffle), returning
//!   [`engine::EngineError`], which each edge maps once.
//! - [`actors`] — the realtime engine's actors: promo registry and promo
//!   actors, the audience index, the notifier, the WebSocket session hub and
//!   sessions, the raffle campaigns and the mailer.
//! - [`domain`] — pure types and rules (names, money, coordinates, accounts,
//!   promo terms, stock and holds, eligibility, WebSocket frames): no actix,
//!   no SQL, no clock reads.
//! - [`db`] — the connection pool, migrations and every SQL statement.
//! - [`http`] — the REST edge: the route table, authentication, pagination,
//!   the error type (statuses decided once) and one module per resource.
//! - [`telemetry`] — `tracing` subscriber set-up and the Prometheus metrics.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod actors;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod db;
pub mod domain;
pub mod engine;
pub mod http;
pub mod private_cluster;
pub mod startup;
pub mod telemetry;
