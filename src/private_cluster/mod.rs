//! `PrivateCluster`: the embedded default database. When `DATABASE_URL` is
//! unset and nothing answers at the default address, `serve`, `migrate`,
//! `demo-data` (and the integration tests' helpers) run a PostgreSQL cluster
//! of their own under `DATA_DIR/postgres`, made with the machine's `initdb`
//! and driven with its `pg_ctl` (see [`binaries`]).
//!
//! Invariants and choices:
//! - It listens on no TCP address, only on a Unix socket inside its own
//!   directory, and trusts local-socket connections only (`initdb
//!   --auth-local=trust --auth-host=reject`); the superuser is `postgres`.
//!   The listening settings live in `promo-engine.conf`, rewritten at every
//!   start so a moved `DATA_DIR` still works.
//! - The next start reuses it. A cluster left running by a process that was
//!   killed is adopted (its owner, recorded in `DATA_DIR/postgres.owner`, is
//!   dead); one started by a process still alive is shared and left to that
//!   process to stop. A stale `postmaster.pid` is `pg_ctl start`'s business.
//! - The process that started (or adopted) it stops it with `pg_ctl stop -m
//!   fast` when it ends: [`PrivateCluster::stop`], or on drop.
//! - As root, the programs run as the `postgres` user ([`system_user`]).
//! - `DATA_DIR/postgres.lock` keeps two processes from starting it at once.

pub mod binaries;
pub mod system_user;

use std::fs::File;
use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;

use binaries::{PgBinaries, SearchPlaces};
use system_user::ServerUser;

/// How long the default address may take to accept a TCP connection.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// The longest Unix socket path the kernel accepts (`sun_path`, minus its NUL).
const MAX_SOCKET_PATH: usize = 107;
/// The socket file's name inside its directory, for the default port.
const SOCKET_FILE: &str = ".s.PGSQL.5432";
/// Seconds `pg_ctl` waits for the server to start or stop.
const PG_CTL_WAIT_SECONDS: &str = "60";

/// A running private cluster; stopped on drop when this process started it.
#[derive(Debug)]
pub struct PrivateCluster {
    data: PathBuf,
    binaries: PgBinaries,
    user: ServerUser,
    /// This process started or adopted it, so stops it.
    owned: bool,
    /// Made by this start (rather than reused).
    created: bool,
}

/// True when something accepts a TCP connection at one of `url`'s addresses
/// (a Unix socket or an unparsable URL counts as answering: it is not ours
/// to replace).
pub fn default_address_answers(url: &str) -> bool {
    let Ok(config) = url.parse::<tokio_postgres::Config>() else {
        return true;
    };
    let ports = config.get_ports();
    config.get_hosts().iter().enumerate().any(|(index, host)| {
        let tokio_postgres::config::Host::Tcp(host) = host else {
            return true;
        };
        let port = ports.get(index).or(ports.first()).copied().unwrap_or(5432);
        (host.as_str(), port)
            .to_socket_addrs()
            .map(|mut addrs| {
                addrs.any(|addr| TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).is_ok())
            })
            .unwrap_or(false)
    })
}

impl PrivateCluster {
    /// Starts (creating it first when missing) the cluster under `data_dir`.
    pub fn start(data_dir: &Path, places: &SearchPlaces) -> anyhow::Result<PrivateCluster> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create DATA_DIR={}", data_dir.display()))?;
        let root = data_dir.canonicalize()?;
        let data = root.join("postgres");
        let socket_len = data.join(SOCKET_FILE).as_os_str().len();
        anyhow::ensure!(
            socket_len <= MAX_SOCKET_PATH,
            "DATA_DIR={} is too deep for the private cluster's Unix socket ({socket_len} of at \
             most {MAX_SOCKET_PATH} bytes); choose a shorter one",
            root.display()
        );
        let lock = File::create(root.join("postgres.lock"))?;
        lock.lock()?;
        let user = ServerUser::for_this_process()?;
        user.check_reachable(&data)?;
        let created = !data.join("PG_VERSION").exists();
        let binaries = if created {
            let binaries = places.find(None)?;
            init(&binaries, user, &data)?;
            binaries
        } else {
            let version = std::fs::read_to_string(data.join("PG_VERSION"))?;
            places.find(Some(version.trim()))?
        };
        let mut cluster = PrivateCluster {
            data,
            binaries,
            user,
            owned: false,
            created,
        };
        cluster.owned = cluster.run_or_adopt(&root)?;
        if cluster.owned {
            std::fs::write(root.join("postgres.owner"), std::process::id().to_string())?;
        }
        Ok(cluster)
    }

    /// The cluster's directory (`DATA_DIR/postgres`), which holds its socket.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// True when this start made the cluster rather than reusing one.
    pub fn was_created(&self) -> bool {
        self.created
    }

    /// A URL for `dbname` as `postgres` over the cluster's socket.
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "postgres://postgres@{}/{dbname}",
            percent_encode(&self.data)
        )
    }

    /// Stops the server when this process started it (`pg_ctl stop -m fast`).
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.stop_if_owned()
    }

    fn stop_if_owned(&mut self) -> anyhow::Result<()> {
        if !std::mem::take(&mut self.owned) {
            return Ok(());
        }
        let mut stop = self.pg_ctl(&["stop", "-m", "fast", "-w", "-s", "-t", PG_CTL_WAIT_SECONDS]);
        run(&mut stop, "pg_ctl stop")?;
        if let Some(root) = self.data.parent() {
            let _ = std::fs::remove_file(root.join("postgres.owner"));
        }
        tracing::info!(data = %self.data.display(), "stopped the private PostgreSQL cluster");
        Ok(())
    }

    /// Starts the server unless it runs; true when this process now owns it.
    fn run_or_adopt(&self, root: &Path) -> anyhow::Result<bool> {
        write_settings(&self.data)?;
        let status = self.pg_ctl(&["status"]).output()?;
        match status.status.code() {
            Some(0) => Ok(!owner_alive(root)),
            Some(3) => {
                let log = self.data.join("server.log");
                let log_arg = log.to_string_lossy().into_owned();
                let mut start = self.pg_ctl(&["start", "-w", "-s", "-t", PG_CTL_WAIT_SECONDS]);
                start.arg("-l").arg(&log_arg);
                run(&mut start, "pg_ctl start").map_err(|error| {
                    error.context(format!("its log, {}, says:\n{}", log.display(), tail(&log)))
                })?;
                Ok(true)
            }
            _ => Err(failure("pg_ctl status", &status)),
        }
    }

    fn pg_ctl(&self, args: &[&str]) -> Command {
        let mut command = self.user.command(&self.binaries.program("pg_ctl"));
        command.args(args).arg("-D").arg(&self.data);
        command
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        if let Err(error) = self.stop_if_owned() {
            tracing::warn!(error = %format!("{error:#}"), "cannot stop the private PostgreSQL cluster");
        }
    }
}

/// Makes a new cluster in `data` (an empty directory owned by `user`).
fn init(binaries: &PgBinaries, user: ServerUser, data: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(data)?;
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o700))?;
    user.take_ownership(data)?;
    let mut initdb = user.command(&binaries.program("initdb"));
    initdb.arg("-D").arg(data).args([
        "-U",
        "postgres",
        "--auth-local=trust",
        "--auth-host=reject",
        "-E",
        "UTF8",
        "--no-locale",
    ]);
    run(&mut initdb, "initdb")?;
    let mut conf = std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))?;
    writeln!(
        conf,
        "\n# promo-engine's private cluster\ninclude_if_exists = 'promo-engine.conf'"
    )?;
    Ok(())
}

/// No TCP, the socket in the cluster's own directory.
fn write_settings(data: &Path) -> anyhow::Result<()> {
    let socket_dir = data.to_string_lossy().replace('\'', "''");
    let settings = format!(
        "# Written by promo-engine at every start.\nlisten_addresses = ''\n\
         unix_socket_directories = '{socket_dir}'\n"
    );
    std::fs::write(data.join("promo-engine.conf"), settings)
        .with_context(|| format!("cannot write settings into {}", data.display()))
}

/// Whether the process recorded as the running cluster's owner is alive.
fn owner_alive(root: &Path) -> bool {
    let Some(pid) = std::fs::read_to_string(root.join("postgres.owner"))
        .ok()
        .and_then(|text| text.trim().parse::<libc::pid_t>().ok())
    else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    pid != std::process::id() as libc::pid_t && unsafe { libc::kill(pid, 0) } == 0
}

fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let output = command
        .output()
        .with_context(|| format!("cannot run {what} ({:?})", command.get_program()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(failure(what, &output))
    }
}

fn failure(what: &str, output: &std::process::Output) -> anyhow::Error {
    anyhow::anyhow!(
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim(),
        String::from_utf8_lossy(&output.stdout).trim()
    )
}

/// The last lines of a log file, for an error message.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

/// A URL for `dbname` as `user` over the socket in `socket_dir`.
pub fn unix_socket_url(socket_dir: &Path, user: &str, dbname: &str) -> String {
    format!("postgres://{user}@{}/{dbname}", percent_encode(socket_dir))
}

/// A path as a URL host: every byte but unreserved ones as `%XX`.
fn percent_encode(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str()
        .as_bytes()
        .iter()
        .map(|&byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_directory_becomes_a_url_host_tokio_postgres_reads_back() {
        let url = format!(
            "postgres://postgres@{}/promo_engine",
            percent_encode(Path::new("/tmp/a b/var/postgres"))
        );
        assert_eq!(
            url,
            "postgres://postgres@%2Ftmp%2Fa%20b%2Fvar%2Fpostgres/promo_engine"
        );
        let config: tokio_postgres::Config = url.parse().unwrap();
        assert_eq!(
            config.get_hosts(),
            [tokio_postgres::config::Host::Unix(
                "/tmp/a b/var/postgres".into()
            )]
        );
        assert_eq!(config.get_dbname(), Some("promo_engine"));
    }

    #[test]
    fn a_closed_port_does_not_answer_and_a_socket_url_is_left_alone() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(default_address_answers(&format!(
            "postgres://postgres@127.0.0.1:{port}/x"
        )));
        drop(listener);
        assert!(!default_address_answers(&format!(
            "postgres://postgres@127.0.0.1:{port}/x"
        )));
        assert!(default_address_answers("postgres://postgres@%2Ftmp/x"));
    }
}
