//! `promo-engine loadgen`: drives a running service over real HTTP and reports
//! throughput and latency. This file holds the command line of every scenario
//! and dispatches to the file that runs it:
//!
//! - `reserve` ([`reserve`]): S shoppers × P running promos, every pair
//!   reserved once by C concurrent clients: durable reservations per second
//!   through HTTP and PostgreSQL, then a check that no promo has more holds
//!   than units.
//! - `fanout` ([`fanout`]): S shoppers, each with an open WebSocket session; a
//!   promo starts; how long until every session has its notification, and the
//!   service's memory per idle session. Beyond `--sessions-per-process`
//!   sessions it holds the rest in helper processes of its own
//!   ([`sessions`], the hidden `fanout-sessions` scenario), since one process
//!   may open only so many files.
//! - `eligible` ([`eligible`]): P running promos around one spot and C clients
//!   asking `eligible/` for a fixed time: requests per second and latency
//!   percentiles.
//! - `subscribe` ([`subscribe`]): N distinct addresses entering one new raffle
//!   campaign with C requests in flight: durable entries per second through
//!   HTTP, then how long the mailer takes to deliver their confirmation emails.
//! - `finish` ([`finish`]): a campaign of N verified subscribers (written
//!   straight into the database), then the time `finish_campaign/` takes to
//!   draw.
//! - `flood-login`, `flood-ws` ([`flood_login`], [`flood_ws`]): one abusive
//!   caller against everyone else.
//! - `chaos` ([`chaos`]): an audited faulted storm against a service it starts
//!   itself behind a fault-injecting proxy.
//!
//! The scenarios set up their own data through [`target::Target`]: stores,
//! products, a segment and promos through the admin API
//! (`ADMIN_USERNAME`/`ADMIN_PASSWORD`), and shoppers with tokens straight into
//! `DATABASE_URL` (hashing a password per shopper would dominate), registered
//! with the service through the real `PATCH me/`. Every request loop is
//! bounded in count and time, and only targets the `--url` given.
//!
//! `reserve` and `fanout` take `--url` several times (the instances of one
//! cluster, see the README's "Running several instances"): set-up and the
//! promo's creation go through the first, reservations and sessions are
//! spread round-robin over all of them.

mod chaos;
mod eligible;
mod fanout;
mod finish;
mod flood;
mod flood_login;
mod flood_ws;
mod report;
mod reserve;
mod sessions;
mod subscribe;
mod target;

use std::time::Duration;

use crate::config::Config;
use crate::db::DbPool;
use target::Target;

/// Which load to generate.
#[derive(Debug, clap::Subcommand)]
pub enum Scenario {
    /// Durable reservations per second through HTTP.
    Reserve {
        /// The service's base URL; repeat it for several instances (set-up
        /// goes through the first, reservations round-robin through all).
        #[arg(
            long = "url",
            value_name = "URL",
            default_value = "http://127.0.0.1:8080"
        )]
        urls: Vec<String>,
        /// Shoppers to create.
        #[arg(long, default_value_t = 2_000)]
        shoppers: usize,
        /// Running promos to spread them over (each pair is reserved once).
        #[arg(long, default_value_t = 5)]
        promos: usize,
        /// Requests in flight.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// Notification fan-out: open WebSocket sessions for eligible shoppers,
    /// start a promo, time how long until every session has its notification.
    Fanout {
        /// The service's base URL; repeat it for several instances (the
        /// promo is created through the first, sessions round-robin over all).
        #[arg(
            long = "url",
            value_name = "URL",
            default_value = "http://127.0.0.1:8080"
        )]
        urls: Vec<String>,
        /// Eligible shoppers, each with one open session.
        #[arg(long, default_value_t = 10_000)]
        sessions: usize,
        /// The service's process id, to report its memory per idle session;
        /// repeat it for several instances (their memory is summed).
        #[arg(long = "server-pid", value_name = "PID")]
        server_pids: Vec<u32>,
        /// Sessions this process holds; the rest go to helper processes of
        /// the same size (each session is one open file, and a process may
        /// have 20,000 here).
        #[arg(long, default_value_t = sessions::SESSIONS_PER_PROCESS)]
        sessions_per_process: usize,
    },
    /// A `fanout` helper process: opens a session per token read from
    /// standard input and reports on standard output (see [`sessions`]).
    #[command(hide = true)]
    FanoutSessions(sessions::HelperArgs),
    /// Latency of `eligible/` (default page of 10) with many running promos.
    Eligible {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Running promos to create around the shoppers.
        #[arg(long, default_value_t = 1_000)]
        promos: usize,
        /// Concurrent clients.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// How long to measure, in seconds (at most 300).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Also measure `GET /healthz` for as long, with the same clients, in
        /// alternating one-second rounds, and print the ratio eligible/healthz.
        #[arg(long)]
        against_healthz: bool,
    },
    /// Raffle entries per second through HTTP (run the service with
    /// `RATE_LIMIT_SUBSCRIBE_PER_MINUTE=0`: every request comes from one address).
    Subscribe {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Distinct addresses entering the campaign.
        #[arg(long, default_value_t = 20_000)]
        entries: usize,
        /// Requests in flight.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// The draw over a large campaign.
    Finish {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Verified subscribers in the campaign.
        #[arg(long, default_value_t = 1_000_000)]
        subscribers: usize,
    },
    /// Wrong Basic passwords from many connections while a token client
    /// measures its latency (and the server's memory is sampled).
    FloodLogin {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Flooding connections (at most 5,000).
        #[arg(long, default_value_t = 500)]
        connections: usize,
        /// How long to flood, in seconds (at most 120).
        #[arg(long, default_value_t = 15)]
        seconds: u64,
        /// The service's process id, to sample its resident memory.
        #[arg(long)]
        server_pid: Option<u32>,
        /// Send from 253 loopback addresses instead of one.
        #[arg(long)]
        spread: bool,
    },
    /// One WebSocket writing reserve frames as fast as it can while REST
    /// clients list stores.
    FloodWs {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Reserve frames to write (at most 100,000).
        #[arg(long, default_value_t = 20_000)]
        frames: usize,
        /// REST clients calling `GET /api/market/stores/` meanwhile.
        #[arg(long, default_value_t = 50)]
        rest_clients: usize,
        /// The service's process id, to sample its resident memory.
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// An audited faulted storm: starts `serve` itself behind a fault proxy
    /// on a fresh database, then audits the database (exit 1 if broken).
    Chaos(chaos::ChaosArgs),
}

/// Runs a scenario against the service at its `--url`.
pub async fn run(config: &Config, pool: &DbPool, scenario: Scenario) -> anyhow::Result<()> {
    match scenario {
        Scenario::Reserve {
            urls,
            shoppers,
            promos,
            concurrency,
        } => {
            let target = Target::connect(config, urls).await?;
            reserve::reserve(&target, pool, shoppers, promos.max(1), concurrency.max(1)).await
        }
        Scenario::Fanout {
            urls,
            sessions,
            server_pids,
            sessions_per_process,
        } => {
            let target = Target::connect(config, urls).await?;
            let plan = fanout::Plan {
                sessions: sessions.clamp(1, 100_000),
                server_pids,
                sessions_per_process: sessions_per_process.max(1),
                database_url: config.database_url.clone(),
            };
            fanout::fanout(&target, pool, plan).await
        }
        Scenario::FanoutSessions(args) => sessions::serve_as_helper(args).await,
        Scenario::Eligible {
            url,
            promos,
            concurrency,
            seconds,
            against_healthz,
        } => {
            let target = Target::connect(config, vec![url]).await?;
            let plan = eligible::Plan {
                promos: promos.max(1),
                concurrency: concurrency.max(1),
                duration: Duration::from_secs(seconds.clamp(1, 300)),
                against_healthz,
            };
            eligible::eligible(&target, pool, plan).await
        }
        Scenario::Subscribe {
            url,
            entries,
            concurrency,
        } => {
            let target = Target::connect(config, vec![url]).await?;
            subscribe::subscribe(
                &target,
                pool,
                entries.clamp(1, 10_000_000),
                concurrency.max(1),
            )
            .await
        }
        Scenario::Finish { url, subscribers } => {
            let target = Target::connect(config, vec![url]).await?;
            finish::finish(&target, pool, subscribers.clamp(1, 50_000_000)).await
        }
        Scenario::FloodLogin {
            url,
            connections,
            seconds,
            server_pid,
            spread,
        } => {
            let (connections, seconds) = (connections.clamp(1, 5_000), seconds.clamp(1, 120));
            let url = url.trim_end_matches('/');
            flood_login::login(config, url, connections, seconds, server_pid, spread).await
        }
        Scenario::FloodWs {
            url,
            frames,
            rest_clients,
            server_pid,
        } => {
            let (frames, rest_clients) = (frames.clamp(1, 100_000), rest_clients.clamp(1, 500));
            let url = url.trim_end_matches('/');
            flood_ws::ws(config, url, frames, rest_clients, server_pid).await
        }
        Scenario::Chaos(args) => chaos::run(config, args).await,
    }
}
