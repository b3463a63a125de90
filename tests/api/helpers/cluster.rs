//! `ClusterOf3`: three real `promo-engine serve` processes in cluster mode
//! (`INSTANCE_ID` a, b and c) on one fresh database and one NATS server,
//! each with a `TestApp` that talks to it; signals for each (kill -9,
//! SIGSTOP, SIGCONT), and the ownership leases and holds read straight
//! from PostgreSQL (`probes` reads the instances themselves).
//!
//! Instance `a` starts first and creates the database and migrates it; `b`
//! and `c` then start together (`ClusterOptions::start_together` starts all
//! three at once: see `tests/api/cluster/startup.rs`). Every instance
//! answers `/readyz` 200 before `start`
//! returns. NATS is the test's own (`ClusterOptions::nats_url`), else
//! `PROMO_ENGINE_TEST_NATS_URL`, else `nats://127.0.0.1:4222`; each cluster
//! has a subject prefix of its own, so the clusters of parallel tests never
//! hear each other on a shared server.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use promo_engine::db::DbPool;

use super::app::{TestApp, ADMIN_PASSWORD, ADMIN_USERNAME};
use super::database::TestDatabase;
use super::fixtures::Shopper;
use super::probes::{is_ready, lists_running};
use super::process::{client_of, ServiceProcess};
use super::wait::wait_until;

/// The instances' names, in start order.
const INSTANCE_NAMES: [&str; 3] = ["a", "b", "c"];
/// How long an instance may take to answer `/readyz` 200 once it is up.
const READY_DEADLINE: Duration = Duration::from_secs(20);
/// How many requests the fixtures send at once while placing shoppers.
const PLACING_CONCURRENCY: usize = 16;

/// How a cluster is started.
pub struct ClusterOptions {
    /// `RESERVATION_HOLD_SECONDS` of every instance.
    pub hold_seconds: u64,
    /// The NATS server (default: see the module doc).
    pub nats_url: Option<String>,
    /// More environment for every instance (overrides the defaults).
    pub env: Vec<(&'static str, String)>,
    /// Start all three at once on the new database, rather than a first.
    pub start_together: bool,
}

impl Default for ClusterOptions {
    fn default() -> ClusterOptions {
        ClusterOptions {
            hold_seconds: 60,
            nats_url: None,
            env: Vec::new(),
            start_together: false,
        }
    }
}

/// One instance: its process (dropped, so killed, first) and its `TestApp`.
pub struct ClusterInstance {
    pub process: ServiceProcess,
    pub app: TestApp,
    pub name: &'static str,
}

/// A promo's ownership lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    pub epoch: i64,
    /// `expires_at` is still ahead.
    pub live: bool,
}

/// Three instances on one database and one NATS server.
pub struct ClusterOf3 {
    pub instances: Vec<ClusterInstance>,
    pool: DbPool,
}

impl ClusterOf3 {
    /// Three instances with the default options.
    pub async fn start() -> ClusterOf3 {
        ClusterOf3::start_with(ClusterOptions::default()).await
    }

    /// Three instances started with `options`, all ready.
    pub async fn start_with(options: ClusterOptions) -> ClusterOf3 {
        let database = Arc::new(TestDatabase::new());
        let pool = promo_engine::db::create_pool(&database.url(), 4).expect("pool");
        let nats_url = options.nats_url.clone().unwrap_or_else(default_nats_url);
        let prefix = format!("test.{}", database.name);
        let start = |name| start_instance(name, &database, &pool, &nats_url, &prefix, &options);
        let [a, b, c] = INSTANCE_NAMES;
        let (first, second, third) = if options.start_together {
            futures_util::join!(start(a), start(b), start(c))
        } else {
            let first = start(a).await;
            let (second, third) = futures_util::join!(start(b), start(c));
            (first, second, third)
        };
        ClusterOf3 {
            instances: vec![first, second, third],
            pool,
        }
    }

    /// The instance named `name`.
    pub fn instance(&self, name: &str) -> &ClusterInstance {
        self.instances
            .iter()
            .find(|instance| instance.name == name)
            .unwrap_or_else(|| panic!("no instance {name:?}"))
    }

    /// The instances other than `name`.
    pub fn others(&self, name: &str) -> Vec<&ClusterInstance> {
        self.instances
            .iter()
            .filter(|instance| instance.name != name)
            .collect()
    }

    /// Instance a's `TestApp`.
    pub fn a(&self) -> &TestApp {
        &self.instances[0].app
    }

    /// Instance b's `TestApp`.
    pub fn b(&self) -> &TestApp {
        &self.instances[1].app
    }

    /// Instance c's `TestApp`.
    pub fn c(&self) -> &TestApp {
        &self.instances[2].app
    }

    /// The shared database.
    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    /// Sends `signal` to instance `name` (`libc::SIGKILL`, `SIGSTOP`, `SIGCONT`).
    pub fn signal(&self, name: &str, signal: libc::c_int) {
        self.instance(name).process.signal(signal);
    }

    /// The stored lease of `promo_id`, if it was ever leased.
    pub async fn lease_of(&self, promo_id: i64) -> Option<Lease> {
        let client = self.pool.get().await.expect("connection");
        client
            .query_opt(
                "SELECT owner, epoch, expires_at > now() FROM ownership_leases \
                 WHERE kind = 'promo' AND object_id = $1",
                &[&promo_id],
            )
            .await
            .expect("lease read")
            .map(|row| Lease {
                owner: row.get(0),
                epoch: row.get(1),
                live: row.get(2),
            })
    }

    /// Waits until `promo_id` has a live lease that `accept`s, within `deadline`.
    pub async fn wait_for_lease(
        &self,
        promo_id: i64,
        deadline: Duration,
        accept: impl Fn(&Lease) -> bool,
    ) -> Option<Lease> {
        let found = std::cell::RefCell::new(None);
        wait_until(deadline, || async {
            let lease = self.lease_of(promo_id).await;
            let accepted = lease.filter(|lease| lease.live && accept(lease));
            let done = accepted.is_some();
            *found.borrow_mut() = accepted;
            done
        })
        .await;
        found.into_inner()
    }

    /// The held rows of `promo_id`: (reservation_id, user_id).
    pub async fn held_rows(&self, promo_id: i64) -> Vec<(uuid::Uuid, i64)> {
        let client = self.pool.get().await.expect("connection");
        client
            .query(
                "SELECT reservation_id, user_id FROM promo_reservations \
                 WHERE promo_id = $1 AND status = 'held'",
                &[&promo_id],
            )
            .await
            .expect("holds read")
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect()
    }

    /// Rows of `promo_id` that take a unit: held or completed.
    pub async fn units_taken(&self, promo_id: i64) -> i64 {
        let client = self.pool.get().await.expect("connection");
        client
            .query_one(
                "SELECT count(*) FROM promo_reservations \
                 WHERE promo_id = $1 AND status IN ('held', 'completed')",
                &[&promo_id],
            )
            .await
            .expect("count")
            .get(0)
    }

    /// The stored status of a reservation, by its UUID.
    pub async fn status_of(&self, reservation_id: uuid::Uuid) -> Option<String> {
        let client = self.pool.get().await.expect("connection");
        client
            .query_opt(
                "SELECT status FROM promo_reservations WHERE reservation_id = $1",
                &[&reservation_id],
            )
            .await
            .expect("status read")
            .map(|row| row.get(0))
    }

    /// `count` shoppers made quickly through a, then placed at `location`
    /// through b and c too, so that every instance's audience knows them
    /// whether or not cross-instance profile events work.
    pub async fn create_shoppers_everywhere(
        &self,
        prefix: &str,
        count: usize,
        location: (f64, f64),
        segment_ids: &[i64],
    ) -> Vec<Shopper> {
        let shoppers = self
            .a()
            .create_shoppers_quickly(prefix, count, location, segment_ids)
            .await;
        for instance in &self.instances[1..] {
            futures_util::stream::iter(&shoppers)
                .for_each_concurrent(PLACING_CONCURRENCY, |shopper| {
                    instance.app.move_shopper(shopper, location.0, location.1)
                })
                .await;
        }
        shoppers
    }

    /// Waits until `promo_id` can be reserved through every instance: it
    /// has a live lease, every instance lists it in `running/`, and a
    /// reserve of `probe` (placed everywhere, in none of its segments)
    /// reaches the owner's actor through each (403 `not_in_segment`).
    /// `Err` says what was still missing at the deadline.
    pub async fn wait_until_reservable(
        &self,
        promo_id: i64,
        probe: &Shopper,
    ) -> Result<(), String> {
        let missing = std::cell::RefCell::new(String::new());
        let reservable = wait_until(Duration::from_secs(15), || async {
            let lacking = self.not_yet_reservable(promo_id, probe).await;
            let done = lacking.is_none();
            *missing.borrow_mut() = lacking.unwrap_or_default();
            done
        })
        .await;
        if reservable {
            Ok(())
        } else {
            Err(missing.into_inner())
        }
    }

    /// What keeps `promo_id` from being reservable everywhere, if anything.
    async fn not_yet_reservable(&self, promo_id: i64, probe: &Shopper) -> Option<String> {
        let lease = self.lease_of(promo_id).await;
        if !lease.as_ref().is_some_and(|lease| lease.live) {
            return Some(format!("no live lease: {lease:?}"));
        }
        for instance in &self.instances {
            if !lists_running(&instance.app, promo_id).await {
                return Some(format!("{} does not list it running", instance.name));
            }
            let answer = instance.app.reserve(probe, promo_id).await;
            if answer.code() != "not_in_segment" {
                let name = instance.name;
                return Some(format!("{name} answers the probe {:?}", answer.body));
            }
        }
        None
    }
}

fn default_nats_url() -> String {
    std::env::var("PROMO_ENGINE_TEST_NATS_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned())
}

async fn start_instance(
    name: &'static str,
    database: &Arc<TestDatabase>,
    pool: &DbPool,
    nats_url: &str,
    prefix: &str,
    options: &ClusterOptions,
) -> ClusterInstance {
    let data_dir = Arc::new(tempfile::tempdir().expect("a data directory"));
    let data_path = data_dir.path().to_string_lossy().into_owned();
    let mut env: Vec<(&str, &str)> = vec![
        ("DATA_DIR", &data_path),
        ("NATS_URL", nats_url),
        ("INSTANCE_ID", name),
        ("NATS_SUBJECT_PREFIX", prefix),
    ];
    env.extend(
        options
            .env
            .iter()
            .map(|(key, value)| (*key, value.as_str())),
    );
    let process =
        ServiceProcess::start_with_env(&database.url(), options.hold_seconds, &[], &env).await;
    let mut app = client_of(&process, pool.clone(), database.clone(), data_dir);
    assert!(
        wait_until(READY_DEADLINE, || is_ready(&app)).await,
        "instance {name} is up but not ready"
    );
    app.admin = app.login(ADMIN_USERNAME, ADMIN_PASSWORD).await;
    ClusterInstance { process, app, name }
}
