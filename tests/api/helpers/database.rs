//! `TestDatabase`: a fresh `promo_test_<uuid>` database per test, dropped
//! (with its connections, `WITH (FORCE)`) when the test ends.
//!
//! `TEST_DATABASE_URL` names the server (default: postgres on 127.0.0.1:5432,
//! or `PROMO_ENGINE_DEFAULT_DATABASE_URL`). When it is unset and nothing
//! answers at the default, the tests start the private cluster of
//! `promo_engine::private_cluster` under `target/tmp/postgres`, shared by every
//! test of the run, reused by the next run, stopped when the test process exits.

use std::sync::{Mutex, OnceLock};

use promo_engine::private_cluster::binaries::SearchPlaces;
use promo_engine::private_cluster::{default_address_answers, unix_socket_url, PrivateCluster};

const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The private cluster, when the tests run one (taken and stopped at exit).
static CLUSTER: Mutex<Option<PrivateCluster>> = Mutex::new(None);

/// The PostgreSQL server the tests use, chosen once per run.
pub(super) fn server_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(choose_server).clone()
}

fn choose_server() -> String {
    if let Some(url) = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
    {
        return url;
    }
    let default = std::env::var("PROMO_ENGINE_DEFAULT_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
    if default_address_answers(&default) {
        return default;
    }
    start_private_cluster(&default)
}

fn start_private_cluster(probed: &str) -> String {
    let data_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let cluster = PrivateCluster::start(data_dir, &SearchPlaces::from_env())
        .unwrap_or_else(|error| panic!("nothing answers at {probed}: {error:#}"));
    eprintln!(
        "tests: TEST_DATABASE_URL is unset and nothing answers at {probed}: using the private \
         PostgreSQL cluster in {}",
        cluster.data_dir().display()
    );
    let url = cluster.url("postgres");
    *CLUSTER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(cluster);
    extern "C" fn stop_cluster() {
        let cluster = CLUSTER.lock().ok().and_then(|mut slot| slot.take());
        if let Some(cluster) = cluster {
            let _ = cluster.stop();
        }
    }
    // SAFETY: registers a plain function, run by exit() once the tests are done.
    unsafe { libc::atexit(stop_cluster) };
    url
}

/// A database of its own for one test, dropped (with its connections) afterwards.
pub struct TestDatabase {
    pub(super) name: String,
}

impl TestDatabase {
    /// A new, unique name; the database itself is created by whoever first migrates it.
    pub fn new() -> TestDatabase {
        TestDatabase {
            name: format!("promo_test_{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// Its URL on the test server.
    pub fn url(&self) -> String {
        let config: tokio_postgres::Config = server_url().parse().expect("TEST_DATABASE_URL");
        let user = config.get_user().unwrap_or("postgres").to_owned();
        if let Some(tokio_postgres::config::Host::Unix(dir)) = config.get_hosts().first() {
            return unix_socket_url(dir, &user, &self.name);
        }
        let host = "127.0.0.1";
        let port = config.get_ports().first().copied().unwrap_or(5432);
        format!("postgres://{user}@{host}:{port}/{}", self.name)
    }
}
impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside any async context we may block; use a thread of its own.
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let (client, connection) =
                    tokio_postgres::connect(&server_url(), tokio_postgres::NoTls)
                        .await
                        .ok()?;
                tokio::spawn(connection);
                let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                client.batch_execute(&sql).await.ok()
            })
        });
        let _ = dropper.join();
    }
}
