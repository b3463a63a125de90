//! What the service tells about itself: logs (a `tracing` subscriber
//! filtered by `RUST_LOG`, set up here) and Prometheus metrics
//! ([`prometheus`]).
//!
//! The subscriber is installed once by the command line; tests leave it unset
//! unless `TEST_LOG` asks for output, so their runs stay quiet.

pub mod prometheus;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; `default_filter` applies when `RUST_LOG` is unset.
/// A second call is harmless (the first subscriber stays).
pub fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}
