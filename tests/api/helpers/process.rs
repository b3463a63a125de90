//! `ServiceProcess` and `spawn_process_app*`: the real binary as a child
//! process, for tests that kill it (`kill -9`) or run several instances on
//! one database, each with a `TestApp` that talks to it.

use std::sync::Arc;
use std::time::Duration;

use super::app::{Auth, TestApp, ADMIN_PASSWORD, ADMIN_USERNAME};
use super::database::TestDatabase;
use super::wait::wait_until;

/// The real binary serving on its own port, for tests that kill it (`kill -9`).
pub struct ServiceProcess {
    child: std::process::Child,
    /// Set once `kill` has reaped the child: its pid may be reused since.
    reaped: bool,
    pub address: String,
}

impl ServiceProcess {
    /// Starts `promo-engine serve` on `database_url` and waits until it answers.
    pub async fn start(database_url: &str, hold_seconds: u64) -> ServiceProcess {
        ServiceProcess::start_with(database_url, hold_seconds, &[]).await
    }

    /// Starts `promo-engine serve <extra_args>` and waits until it answers.
    pub async fn start_with(
        database_url: &str,
        hold_seconds: u64,
        extra_args: &[&str],
    ) -> ServiceProcess {
        let data_dir = std::env::temp_dir().join("promo-engine-test-processes");
        let data_dir = data_dir.to_string_lossy().into_owned();
        let env = [("DATA_DIR", data_dir.as_str())];
        ServiceProcess::start_with_env(database_url, hold_seconds, extra_args, &env).await
    }

    /// Starts `promo-engine serve <extra_args>` with extra environment variables.
    pub async fn start_with_env(
        database_url: &str,
        hold_seconds: u64,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> ServiceProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_promo-engine"))
            .arg("serve")
            .args(extra_args)
            .env("DATABASE_URL", database_url)
            .env("BIND", format!("127.0.0.1:{port}"))
            .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RESERVATION_HOLD_SECONDS", hold_seconds.to_string())
            .env("HTTP_WORKERS", "1")
            .env("DATABASE_POOL_SIZE", "4")
            .env("RUST_LOG", "warn")
            .env("RATE_LIMIT_SUBSCRIBE_PER_MINUTE", "0")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("the service starts");
        let mut process = ServiceProcess {
            child,
            reaped: false,
            address: format!("http://127.0.0.1:{port}"),
        };
        process.wait_until_up().await;
        process
    }

    /// Waits until `/healthz` answers; fails at once if the process exits.
    async fn wait_until_up(&mut self) {
        let http = reqwest::Client::new();
        let health = format!("{}/healthz", self.address);
        let mut exited = None;
        let up = wait_until(Duration::from_secs(30), || {
            if exited.is_none() {
                exited = self.child.try_wait().ok().flatten();
            }
            let (http, health, gone) = (&http, &health, exited.is_some());
            async move {
                gone || http
                    .get(health)
                    .send()
                    .await
                    .is_ok_and(|response| response.status().is_success())
            }
        })
        .await;
        if let Some(status) = exited {
            self.reaped = true;
            panic!("the service exited at start ({status}); its stderr says why");
        }
        assert!(up, "the service did not come up");
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.reaped = true;
    }

    /// Sends `signal` (`SIGKILL`, `SIGSTOP`, `SIGCONT`, …) without waiting:
    /// for a test that signals one instance while it talks to the others.
    /// The child is reaped only by `kill` or on drop, so until then its pid
    /// is still this child's.
    pub fn signal(&self, signal: libc::c_int) {
        if self.reaped {
            return;
        }
        // SAFETY: signals our own child, not yet reaped (see above).
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `TestApp` whose service is a separate process on a fresh database.
pub async fn spawn_process_app(hold_seconds: u64) -> (TestApp, ServiceProcess) {
    spawn_process_app_with(hold_seconds, &[]).await
}

/// A `TestApp` (not signed in yet) for the service `process` runs on
/// `database` with `DATA_DIR` = `data_dir`.
pub fn client_of(
    process: &ServiceProcess,
    pool: promo_engine::db::DbPool,
    database: Arc<TestDatabase>,
    data_dir: Arc<tempfile::TempDir>,
) -> TestApp {
    TestApp {
        address: process.address.clone(),
        pool,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("http client"),
        admin: Auth::None,
        handle: None,
        mail_dir: data_dir.path().join("mail"),
        database,
        _data_dir: data_dir,
    }
}

/// A `TestApp` whose service is `serve <extra_args>` in a separate process.
pub async fn spawn_process_app_with(
    hold_seconds: u64,
    extra_args: &[&str],
) -> (TestApp, ServiceProcess) {
    spawn_process_app_with_env(hold_seconds, extra_args, &[]).await
}

/// A `TestApp` whose service is `serve <extra_args>` in a separate process,
/// with extra environment variables (`DATA_DIR` is the app's own).
pub async fn spawn_process_app_with_env(
    hold_seconds: u64,
    extra_args: &[&str],
    env: &[(&str, &str)],
) -> (TestApp, ServiceProcess) {
    let database = TestDatabase::new();
    let data_dir = Arc::new(tempfile::tempdir().expect("a data directory"));
    let data_path = data_dir.path().to_string_lossy().into_owned();
    let mut env = env.to_vec();
    env.push(("DATA_DIR", &data_path));
    let process =
        ServiceProcess::start_with_env(&database.url(), hold_seconds, extra_args, &env).await;
    let pool = promo_engine::db::create_pool(&database.url(), 2).expect("pool");
    let mut app = client_of(&process, pool, Arc::new(database), data_dir);
    app.admin = app.login(ADMIN_USERNAME, ADMIN_PASSWORD).await;
    (app, process)
}
