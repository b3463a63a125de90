//! `DbProxy`: the library's fault proxy between a test's service and the
//! test PostgreSQL server, so a test can cut, delay or swallow replies.

use std::net::SocketAddr;

use promo_engine::cli::fault_proxy::FaultProxy;

use super::database::server_url;

/// The library's [`FaultProxy`] in front of the test server: `cut()`,
/// `restore()`, `port()` and every other fault through `Deref`.
pub struct DbProxy(FaultProxy);

impl DbProxy {
    /// A proxy listening on a free port, forwarding to the test server.
    pub async fn start() -> DbProxy {
        let config: tokio_postgres::Config = server_url().parse().expect("TEST_DATABASE_URL");
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let target = SocketAddr::from(([127, 0, 0, 1], port));
        DbProxy(FaultProxy::start_to(target).await.expect("proxy listens"))
    }
}

impl std::ops::Deref for DbProxy {
    type Target = FaultProxy;

    fn deref(&self) -> &FaultProxy {
        &self.0
    }
}
