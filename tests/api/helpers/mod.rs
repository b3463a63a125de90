//! What every integration test starts from, one concern per file:
//!
//! - `app`: `spawn_app*`, `spawn_cluster_pair` (two in-process instances in
//!   cluster mode on one database), `TestApp` (the in-process service and
//!   its HTTP helpers), `Auth` and `Answer`;
//! - `database`: `TestDatabase`, a fresh database per test, dropped after;
//! - `proxy`: `DbProxy`, the fault proxy between the service and PostgreSQL;
//! - `process`: `ServiceProcess` and `spawn_process_app*`, the real binary as
//!   a child process;
//! - `cluster`: `ClusterOf3`, three such processes in cluster mode on one
//!   database and one NATS server;
//! - `nats`: `NatsServer`, a private `nats-server` a test may kill and restart;
//! - `probes`: `/readyz`, `running/` and `/metrics` read off an instance;
//! - `fixtures`: shoppers, markets, running promos and `in_seconds`;
//! - `wait`: `wait_until`, polling with a deadline.
//!
//! Everything is re-exported here, so tests write `use crate::helpers::…`
//! without knowing which file holds what.

mod app;
mod cluster;
mod database;
mod fixtures;
mod nats;
mod probes;
mod process;
mod proxy;
mod wait;

pub use app::{
    spawn_app, spawn_app_through, spawn_app_through_with, spawn_app_with, spawn_cluster_pair,
    Answer, Auth, TestApp, ADMIN_PASSWORD, ADMIN_USERNAME, SHOPPER_PASSWORD,
};
pub use cluster::{ClusterInstance, ClusterOf3, ClusterOptions, Lease};
pub use database::TestDatabase;
pub use fixtures::{in_seconds, Market, Shopper};
pub use nats::NatsServer;
pub use probes::{is_ready, lists_running, metric_value, readiness_of};
pub use process::{
    spawn_process_app, spawn_process_app_with, spawn_process_app_with_env, ServiceProcess,
};
pub use proxy::DbProxy;
pub use wait::wait_until;
