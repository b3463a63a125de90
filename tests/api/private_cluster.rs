//! The embedded default database, through the real binary: with
//! `DATABASE_URL` unset and nothing answering at the default address (a
//! closed port here, through `PROMO_ENGINE_DEFAULT_DATABASE_URL`: the
//! machine's own server must keep running), `demo-data` and `serve` start a
//! private cluster under `DATA_DIR`, say so in one log line, reuse it on the
//! next start and leave no PostgreSQL running once they exit.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::wait_until;

const LOG_LINE: &str = "using the private PostgreSQL cluster in";

/// A `DATA_DIR` the `postgres` user can enter (the cluster runs as it when we are root).
fn data_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .permissions(std::fs::Permissions::from_mode(0o755))
        .tempdir()
        .expect("a data directory")
}

/// An address where nothing answers: a port just freed.
fn closed_default_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().expect("its address").port();
    format!("postgres://postgres@127.0.0.1:{port}/promo_engine")
}

fn promo_engine(data_dir: &Path, default_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_promo-engine"));
    command
        .env_remove("DATABASE_URL")
        .env("PROMO_ENGINE_DEFAULT_DATABASE_URL", default_url)
        .env("DATA_DIR", data_dir)
        .env("RUST_LOG", "info")
        .env("ADMIN_PASSWORD", "admin-password-1")
        .env("NO_COLOR", "1");
    command
}

fn demo_data(data_dir: &Path, default_url: &str) -> (Output, Duration) {
    let started = Instant::now();
    let output = promo_engine(data_dir, default_url)
        .args(["demo-data", "--clients", "0"])
        .output()
        .expect("the binary runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (output, started.elapsed())
}

/// True while any process's command line names the cluster's directory
/// (the postmaster runs as `postgres -D <dir>`).
fn postgres_runs_in(cluster: &Path) -> bool {
    let needle = cluster.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .expect("procfs")
        .filter_map(Result::ok)
        .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
        .any(|cmdline| String::from_utf8_lossy(&cmdline).contains(&needle))
}

fn assert_stopped(cluster: &Path) {
    assert!(
        !cluster.join("postmaster.pid").exists(),
        "postmaster.pid remains"
    );
    assert!(!postgres_runs_in(cluster), "a postgres process remains");
}

#[actix_web::test]
async fn demo_data_starts_a_private_cluster_and_reuses_it() {
    let data = data_dir();
    let default_url = closed_default_url();
    let cluster = data.path().canonicalize().unwrap().join("postgres");

    let (first, first_took) = demo_data(data.path(), &default_url);
    let log = String::from_utf8_lossy(&first.stdout);
    let announced: Vec<&str> = log.lines().filter(|line| line.contains(LOG_LINE)).collect();
    assert_eq!(announced.len(), 1, "one log line: {log}");
    assert!(announced[0].contains(&cluster.to_string_lossy().into_owned()));
    assert!(announced[0].contains("created=true"), "{}", announced[0]);
    assert!(
        cluster.join("PG_VERSION").is_file(),
        "the cluster is under DATA_DIR"
    );
    assert!(log.contains("3 shoppers (3 new)"), "{log}");
    assert_stopped(&cluster);

    let (second, second_took) = demo_data(data.path(), &default_url);
    let log = String::from_utf8_lossy(&second.stdout);
    assert!(log.contains("created=false"), "reused: {log}");
    assert!(
        log.contains("3 shoppers (0 new)"),
        "the same cluster's data: {log}"
    );
    assert!(
        second_took < first_took,
        "reuse ({second_took:?}) is faster than creation ({first_took:?})"
    );
    assert_stopped(&cluster);
}

#[actix_web::test]
async fn serve_stops_its_private_cluster_on_sigterm() {
    let data = data_dir();
    let default_url = closed_default_url();
    let cluster = data.path().canonicalize().unwrap().join("postgres");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let mut child = promo_engine(data.path(), &default_url)
        .arg("serve")
        .env("BIND", format!("127.0.0.1:{port}"))
        .env("HTTP_WORKERS", "1")
        .env("DATABASE_POOL_SIZE", "2")
        .stdout(Stdio::null())
        .spawn()
        .expect("the service starts");
    let http = reqwest::Client::new();
    let ready = format!("http://127.0.0.1:{port}/readyz");
    let up = wait_until(Duration::from_secs(60), || async {
        http.get(&ready)
            .send()
            .await
            .is_ok_and(|response| response.status().is_success())
    })
    .await;
    assert!(up, "serve did not come up on its private cluster");
    assert!(postgres_runs_in(&cluster));

    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait().expect("serve exits");
    assert!(status.success(), "{status}");
    assert_stopped(&cluster);
}
