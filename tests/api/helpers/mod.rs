//! What every integration test starts from, one concern per file:
//!
//! - `app`: `spawn_app*`, `spawn_cluster_pair` (two in-process instances in
//!   cluster mode on one database), `TestApp` (the in-process service and
//!   its HTTP helpers), `Auth` and `Answer`;
//! - `database`: `TestDatabase`, a fresh database per test, dropped after;
//! - `proxy`: `DbProxy`, the fault proxy between the service and PostgreSQL;
//! - `process`: `ServiceProcess` and `spawn_process_app*`, the real binary as
//!   a child process;
//! - `fixtures`: shoppers, markets, running promos and `in_seconds`;
//! - `wait`: `wait_until`, polling with a deadline.
//!
//! Everything is re-exported here, so tests write `use crate::helpers::…`
//! without knowing which file holds what.

mod app;
mod database;
mod fixtures;
mod process;
mod proxy;
mod wait;

pub use app::{
    spawn_app, spawn_app_through, spawn_app_through_with, spawn_app_with, spawn_cluster_pair,
    Answer, Auth, TestApp, ADMIN_PASSWORD, ADMIN_USERNAME, SHOPPER_PASSWORD,
};
pub use database::TestDatabase;
pub use fixtures::{in_seconds, Market, Shopper};
pub use process::{
    spawn_process_app, spawn_process_app_with, spawn_process_app_with_env, ServiceProcess,
};
pub use proxy::DbProxy;
pub use wait::wait_until;
