//! The storm's surroundings: [`Server`], where PostgreSQL is (loopback only)
//! and how to name a database on it, and [`Service`], this binary's `serve`
//! as a child process with short holds, killed when dropped.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};

use super::ChaosArgs;

/// Where PostgreSQL is (loopback only) and how to name a database on it.
pub(super) struct Server {
    url: url::Url,
    /// Its loopback address and port.
    pub(super) address: SocketAddr,
}

impl Server {
    /// Reads `DATABASE_URL`; refuses any host but this machine.
    pub(super) fn from_url(database_url: &str) -> anyhow::Result<Server> {
        let url = url::Url::parse(database_url).context("DATABASE_URL is not a URL")?;
        let host = url.host_str().unwrap_or("localhost");
        ensure!(
            matches!(host, "localhost" | "127.0.0.1" | "::1" | "[::1]"),
            "chaos runs on loopback only; DATABASE_URL names {host}"
        );
        let port = url.port().unwrap_or(5432);
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        Ok(Server { url, address })
    }

    /// The server's URL with another port (the proxy's) and database.
    pub(super) fn url_for(&self, port: u16, database: &str) -> anyhow::Result<String> {
        let mut url = self.url.clone();
        let set = url.set_host(Some("127.0.0.1")).is_ok() && url.set_port(Some(port)).is_ok();
        ensure!(set, "cannot rewrite DATABASE_URL");
        url.set_path(database);
        Ok(url.to_string())
    }
}

/// The service as a child process, killed when dropped.
pub(super) struct Service {
    child: Child,
    /// Its base URL.
    pub(super) url: String,
    /// The file its log goes to.
    pub(super) log: String,
}

impl Service {
    /// Starts `serve` on `database_url` on a free port, its log in a file.
    pub(super) fn spawn(
        database_url: &str,
        password: &str,
        args: &ChaosArgs,
    ) -> anyhow::Result<Service> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let data_dir = std::env::temp_dir().join(format!("promo-chaos-{port}"));
        std::fs::create_dir_all(&data_dir)?;
        let log = data_dir.join("service.log");
        let child = Command::new(std::env::current_exe()?)
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("BIND", format!("127.0.0.1:{port}"))
            .env("ADMIN_PASSWORD", password)
            .env(
                "RESERVATION_HOLD_SECONDS",
                args.hold_seconds.max(1).to_string(),
            )
            .env("DATA_DIR", &data_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("cannot start the service")?;
        Ok(Service {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log: log.display().to_string(),
        })
    }

    /// Waits (bounded) until `/healthz` answers; fails if the process exits.
    pub(super) async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("the service exited ({status}); see {}", self.log);
            }
            let health = http.get(format!("{}/healthz", self.url)).send().await;
            if health.is_ok_and(|response| response.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the service did not come up; see {}", self.log)
    }

    /// Stops the service (it has settled: nothing is in flight).
    pub(super) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}
