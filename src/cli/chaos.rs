//! `promo-engine loadgen chaos`: an audited faulted storm (a benchmark, not a
//! test). It starts a [`FaultProxy`] in-process in front of PostgreSQL,
//! spawns this binary's `serve` on a fresh database (`promo_chaos_<random>`)
//! through it on a free loopback port with short holds, sets up a few small
//! promos (they sell out and contend) and many shoppers, then for
//! `--seconds` runs reserves, completes and cancels from every worker while
//! the proxy resets links, delays chunks and faults a commit now and then.
//! It keeps every answer, heals the proxy, waits until the service has
//! settled, stops it and audits straight on the database: acknowledged holds
//! and sales durable, units held twice, sold beyond quantity, `held` rows
//! past expiry, rows vs counters, rows nobody was told about vs the
//! `outcome_unknown` answers, and 503s by code. Exits non-zero if any
//! invariant is broken (the database is then kept for inspection).
//! Loopback only; every loop is bounded in time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use futures_util::future::join_all;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use uuid::Uuid;

use super::Target;
use crate::cli::fault_proxy::{ChaosConfig, CommitFault, FaultProxy};
use crate::config::Config;
use crate::db::{self, DbPool};

/// The faulted storm's knobs.
#[derive(Debug, Clone, clap::Args)]
pub struct ChaosArgs {
    /// How long the storm lasts, in seconds (5..=600).
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Shoppers to create.
    #[arg(long, default_value_t = 200)]
    shoppers: usize,
    /// Running promos they contend for.
    #[arg(long, default_value_t = 4)]
    promos: usize,
    /// Units per promo (small, so they sell out).
    #[arg(long, default_value_t = 20)]
    quantity: usize,
    /// Requests in flight.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// The service's `RESERVATION_HOLD_SECONDS`.
    #[arg(long, default_value_t = 5)]
    hold_seconds: u64,
    /// Chance per second that each open database link is reset.
    #[arg(long, default_value_t = 0.1)]
    reset_per_second: f64,
    /// Seconds between commit faults (lost reply, reset, 12 s delay); 0: none.
    #[arg(long, default_value_t = 5)]
    commit_fault_every: u64,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Runs the storm and the audit.
pub async fn run(config: &Config, args: ChaosArgs) -> anyhow::Result<()> {
    let server = Server::from_url(&config.database_url)?;
    let database = format!("promo_chaos_{}", Uuid::new_v4().simple());
    db::ensure_database_exists(&server.url_for(server.address.port(), &database)?).await?;
    let proxy = FaultProxy::start_to(server.address).await?;
    let password = Uuid::new_v4().simple().to_string();
    let service = Service::spawn(&server.url_for(proxy.port(), &database)?, &password, &args)?;
    println!(
        "service on {} (log: {}), database {database}",
        service.url, service.log
    );
    let outcome =
        storm_and_audit(config, &args, &proxy, service, &server, &database, password).await;
    match &outcome {
        Ok(()) => drop_database(&server, &database).await?,
        Err(_) => println!("database {database} kept for inspection"),
    }
    outcome
}

async fn storm_and_audit(
    config: &Config,
    args: &ChaosArgs,
    proxy: &FaultProxy,
    mut service: Service,
    server: &Server,
    database: &str,
    password: String,
) -> anyhow::Result<()> {
    service.wait_healthy().await?;
    let direct = db::create_pool(&server.url_for(server.address.port(), database)?, 4)?;
    let mut admin = config.clone();
    admin.admin_password = Some(password);
    let target = Target::connect(&admin, service.url.clone()).await?;
    let quantity = args.quantity.max(1);
    let (segment, promos) = target
        .running_promos(args.promos.max(1), quantity, 0.0)
        .await?;
    let tokens = target
        .shoppers(&direct, args.shoppers.max(1), segment)
        .await?;
    let seconds = args.seconds.clamp(5, 600);
    println!(
        "storm: {} shoppers × {} promos of {quantity} units, {} in flight, {seconds} s…",
        tokens.len(),
        promos.len(),
        args.concurrency.max(1)
    );
    let started = Instant::now();
    let length = Duration::from_secs(seconds);
    let ledger = storm(&target, proxy, args, &tokens, &promos, length).await;
    println!("storm over after {:.1?}", started.elapsed());
    proxy.heal();
    let settled_at = settle(&target, &direct, &promos, args.hold_seconds).await?;
    service.stop();
    println!("links: {:?}", proxy.stats());
    audit(&direct, &promos, &ledger, settled_at).await
}

/// Where PostgreSQL is (loopback only) and how to name a database on it.
struct Server {
    url: url::Url,
    address: SocketAddr,
}

impl Server {
    fn from_url(database_url: &str) -> anyhow::Result<Server> {
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
    fn url_for(&self, port: u16, database: &str) -> anyhow::Result<String> {
        let mut url = self.url.clone();
        let set = url.set_host(Some("127.0.0.1")).is_ok() && url.set_port(Some(port)).is_ok();
        ensure!(set, "cannot rewrite DATABASE_URL");
        url.set_path(database);
        Ok(url.to_string())
    }
}

async fn drop_database(server: &Server, database: &str) -> anyhow::Result<()> {
    let maintenance = server.url_for(server.address.port(), "postgres")?;
    let (client, connection) = tokio_postgres::connect(&maintenance, tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(connection);
    let name = db::quote_identifier(database);
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    drop(client);
    let _ = driver.await;
    Ok(())
}

/// The service as a child process, killed when dropped.
struct Service {
    child: Child,
    url: String,
    log: String,
}

impl Service {
    fn spawn(database_url: &str, password: &str, args: &ChaosArgs) -> anyhow::Result<Service> {
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

    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
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
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Every answer the storm got, as the audit needs them.
#[derive(Debug, Default)]
struct Ledger {
    holds: Vec<Uuid>,
    sales: Vec<Uuid>,
    /// Reserves and completes answered `outcome_unknown` or lost in transport.
    unsure_reserves: usize,
    unsure_completes: usize,
    /// "verb status code" → answers.
    tally: BTreeMap<String, usize>,
}

impl Ledger {
    fn merge(&mut self, other: Ledger) {
        self.holds.extend(other.holds);
        self.sales.extend(other.sales);
        self.unsure_reserves += other.unsure_reserves;
        self.unsure_completes += other.unsure_completes;
        for (key, count) in other.tally {
            *self.tally.entry(key).or_default() += count;
        }
    }

    /// Notes an answer; whether its outcome is unknown to the caller.
    fn note(&mut self, verb: &str, answer: &Answer) -> bool {
        let key = format!("{verb} {} {}", answer.status, answer.code);
        *self.tally.entry(key).or_default() += 1;
        answer.status == 0 || answer.code == "outcome_unknown"
    }
}

/// One HTTP answer (status 0: transport error).
struct Answer {
    status: u16,
    code: String,
    body: Value,
}

async fn post(target: &Target, token: &str, path: &str, body: Value) -> Answer {
    let sent = target
        .http
        .post(format!("{}{path}", target.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await;
    let Ok(response) = sent else {
        return Answer {
            status: 0,
            code: "transport".into(),
            body: Value::Null,
        };
    };
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or_default();
    let code = body["code"].as_str().unwrap_or("").to_owned();
    Answer { status, code, body }
}

async fn storm(
    target: &Target,
    proxy: &FaultProxy,
    args: &ChaosArgs,
    tokens: &[String],
    promos: &[i64],
    length: Duration,
) -> Ledger {
    let config = ChaosConfig {
        reset_per_second: args.reset_per_second,
        ..ChaosConfig::default()
    };
    proxy.chaos(args.seed, config);
    let until = Instant::now() + length;
    let workers = args.concurrency.clamp(1, tokens.len());
    let shoppers = (0..workers).map(|worker| {
        let own: Vec<&String> = tokens.iter().skip(worker).step_by(workers).collect();
        shop(target, own, promos, args.seed ^ (worker as u64 + 1), until)
    });
    let faults = commit_faults(proxy, args, until);
    let (ledgers, ()) = futures_util::join!(join_all(shoppers), faults);
    proxy.calm();
    let mut ledger = Ledger::default();
    for one in ledgers {
        ledger.merge(one);
    }
    ledger
}

/// Arms one random commit fault every `--commit-fault-every` seconds.
async fn commit_faults(proxy: &FaultProxy, args: &ChaosArgs, until: Instant) {
    if args.commit_fault_every == 0 {
        return;
    }
    let mut rng = StdRng::seed_from_u64(args.seed);
    let every = Duration::from_secs(args.commit_fault_every);
    let mut next = Instant::now() + Duration::from_secs(1);
    while next < until {
        tokio::time::sleep_until(next.into()).await;
        next += every;
        let fault = match rng.gen_range(0..4) {
            0 => CommitFault::LoseReply,
            1 => CommitFault::ResetAfter,
            2 => CommitFault::ResetBefore,
            _ => CommitFault::Delay(Duration::from_secs(12)),
        };
        proxy.on_next_commits(1, fault);
    }
}

/// One worker: its own shoppers reserve, complete, cancel or keep, at random.
async fn shop(
    target: &Target,
    own: Vec<&String>,
    promos: &[i64],
    seed: u64,
    until: Instant,
) -> Ledger {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut ledger = Ledger::default();
    let mut held: BTreeMap<(usize, i64), (i64, Uuid)> = BTreeMap::new();
    // Promos this worker saw sold out and holds nothing of: nothing left to do there.
    let mut open: Vec<i64> = promos.to_vec();
    while Instant::now() < until && !(open.is_empty() && held.is_empty()) {
        let shopper = rng.gen_range(0..own.len());
        let Some(&promo) = open.get(rng.gen_range(0..open.len().max(1))) else {
            // Everything sold out here: finish the holds still kept.
            if let Some(((owner, _), (id, reservation))) = held.pop_first() {
                release(target, own[owner], id, reservation, "complete", &mut ledger).await;
            }
            continue;
        };
        let token = own[shopper];
        let Some((id, reservation)) = held.remove(&(shopper, promo)) else {
            let path = "/api/promotions/promo-reservations/";
            let answer = post(target, token, path, json!({"promo_id": promo})).await;
            ledger.unsure_reserves += usize::from(ledger.note("reserve", &answer));
            if answer.code == "sold_out" {
                open.retain(|other| *other != promo);
            }
            if let (201, Some(id), Some(Ok(reservation))) = (
                answer.status,
                answer.body["id"].as_i64(),
                answer.body["reservation_id"].as_str().map(Uuid::parse_str),
            ) {
                ledger.holds.push(reservation);
                held.insert((shopper, promo), (id, reservation));
            }
            continue;
        };
        // Mostly cancel or keep (and so let expire): units keep coming back,
        // and the promos sell out only late in the storm.
        let verb = match rng.gen_range(0..50) {
            0 => "complete",
            1..=20 => "cancel",
            _ => {
                held.insert((shopper, promo), (id, reservation));
                continue;
            }
        };
        release(target, token, id, reservation, verb, &mut ledger).await;
    }
    ledger
}

/// `complete` or `cancel` one held reservation, noting the answer.
async fn release(
    target: &Target,
    token: &str,
    id: i64,
    reservation: Uuid,
    verb: &str,
    ledger: &mut Ledger,
) {
    let path = format!("/api/promotions/promo-reservations/{id}/{verb}/");
    let answer = post(target, token, &path, json!({})).await;
    let unsure = ledger.note(verb, &answer);
    if verb == "complete" {
        ledger.unsure_completes += usize::from(unsure);
        if answer.status == 200 {
            ledger.sales.push(reservation);
        }
    }
}

/// Per promo: (quantity, sold column, held rows, completed rows, held rows past expiry).
async fn promo_counts(
    direct: &DbPool,
    promos: &[i64],
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Vec<[i64; 5]>> {
    let client = direct.get().await?;
    let rows = client
        .query(
            "SELECT p.quantity::bigint, p.sold::bigint, \
             count(r.id) FILTER (WHERE r.status = 'held'), \
             count(r.id) FILTER (WHERE r.status = 'completed'), \
             count(r.id) FILTER (WHERE r.status = 'held' AND r.expires_at < $2::timestamptz - interval '2 seconds') \
             FROM flash_promos p LEFT JOIN promo_reservations r ON r.promo_id = p.id \
             WHERE p.id = ANY($1) GROUP BY p.id ORDER BY p.id",
            &[&promos, &now],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| [row.get(0), row.get(1), row.get(2), row.get(3), row.get(4)])
        .collect())
}

/// Waits (bounded) until every promo's API counters match its rows and no
/// hold outlived its expiry; returns the database time it settled at.
async fn settle(
    target: &Target,
    direct: &DbPool,
    promos: &[i64],
    hold_seconds: u64,
) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    let deadline = Instant::now() + Duration::from_secs(hold_seconds + 30);
    let started = Instant::now();
    loop {
        let now: chrono::DateTime<chrono::Utc> = direct
            .get()
            .await?
            .query_one("SELECT now()", &[])
            .await?
            .get(0);
        let rows = promo_counts(direct, promos, now).await?;
        let mut agree = rows.iter().all(|[_, _, _, _, stale]| *stale == 0);
        for (promo, [_, sold, held, _, _]) in promos.iter().zip(&rows) {
            let shown = shown_counts(target, *promo).await;
            agree &= shown == Some((*held, *sold));
        }
        if agree || Instant::now() >= deadline {
            let verdict = if agree { "settled" } else { "did NOT settle" };
            println!("{verdict} {:.1?} after the storm", started.elapsed());
            return Ok(now);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A promo's (held, sold) as the API shows them.
async fn shown_counts(target: &Target, promo: i64) -> Option<(i64, i64)> {
    let url = format!("{}/api/promotions/flash-promos/{promo}/", target.url);
    let response = target
        .http
        .get(url)
        .bearer_auth(&target.admin)
        .send()
        .await
        .ok()?;
    let body: Value = response.json().await.ok()?;
    Some((body["held"].as_i64()?, body["sold"].as_i64()?))
}

/// The audit, straight on the database, after the service has stopped.
async fn audit(
    direct: &DbPool,
    promos: &[i64],
    ledger: &Ledger,
    settled_at: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let client = direct.get().await?;
    let found = |sql: &'static str, ids: Vec<Uuid>| {
        let client = &client;
        async move {
            let row = client.query_one(sql, &[&ids]).await?;
            anyhow::Ok(row.get::<_, i64>(0))
        }
    };
    let holds = found(
        "SELECT count(*) FROM promo_reservations WHERE reservation_id = ANY($1)",
        ledger.holds.clone(),
    )
    .await?;
    let sales = found(
        "SELECT count(*) FROM promo_reservations WHERE reservation_id = ANY($1) AND status = 'completed'",
        ledger.sales.clone(),
    )
    .await?;
    let (all_rows, completed): (i64, i64) = {
        let row = client
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE status = 'completed') \
                 FROM promo_reservations WHERE promo_id = ANY($1)",
                &[&promos],
            )
            .await?;
        (row.get(0), row.get(1))
    };
    let rows = promo_counts(direct, promos, settled_at).await?;
    let twice: i64 = rows
        .iter()
        .map(|[q, sold, held, _, _]| (held + sold - q).max(0))
        .sum();
    let beyond: i64 = rows
        .iter()
        .map(|[q, sold, _, _, _]| (sold - q).max(0))
        .sum();
    let stale: i64 = rows.iter().map(|row| row[4]).sum();
    let mismatch = rows
        .iter()
        .filter(|[_, sold, _, done, _]| sold != done)
        .count();
    let unexplained_rows = (all_rows - ledger.holds.len() as i64).max(0);
    let unexplained_sales = (completed - ledger.sales.len() as i64).max(0);
    let checks = [
        (format!("acknowledged holds found durable: {holds} of {}", ledger.holds.len()), holds == ledger.holds.len() as i64),
        (format!("acknowledged sales found durable: {sales} of {}", ledger.sales.len()), sales == ledger.sales.len() as i64),
        (format!("units held twice: {twice}"), twice == 0),
        (format!("sold beyond quantity: {beyond}"), beyond == 0),
        (format!("'held' rows past expiry: {stale}"), stale == 0),
        (format!("promos whose rows and sold counter disagree: {mismatch}"), mismatch == 0),
        (
            format!("rows nobody was told about: {unexplained_rows} (outcome unknown to the caller: {})", ledger.unsure_reserves),
            unexplained_rows <= ledger.unsure_reserves as i64,
        ),
        (
            format!("sales nobody was told about: {unexplained_sales} (outcome unknown to the caller: {})", ledger.unsure_completes),
            unexplained_sales <= ledger.unsure_completes as i64,
        ),
    ];
    for (key, count) in &ledger.tally {
        println!("  {key}: {count}");
    }
    let unavailable: usize = ledger
        .tally
        .iter()
        .filter(|(key, _)| key.ends_with(" 503 unavailable"))
        .map(|(_, n)| n)
        .sum();
    let unknown: usize = ledger
        .tally
        .iter()
        .filter(|(key, _)| key.ends_with(" 503 outcome_unknown"))
        .map(|(_, n)| n)
        .sum();
    println!("503s: unavailable {unavailable}, outcome_unknown {unknown}");
    let mut broken = 0;
    for (line, ok) in &checks {
        println!("{} {line}", if *ok { "ok  " } else { "FAIL" });
        broken += usize::from(!ok);
    }
    ensure!(broken == 0, "{broken} invariant(s) broken");
    Ok(())
}
