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
//!
//! This file holds the knobs and the run from start to verdict; the service
//! and the database server it runs on are in `service.rs`, the storm's
//! shoppers and their ledger in `storm.rs`, the settling and the audit in
//! `audit.rs`.

mod audit;
mod service;
mod storm;

use std::time::{Duration, Instant};

use uuid::Uuid;

use super::target::Target;
use crate::cli::fault_proxy::FaultProxy;
use crate::config::Config;
use crate::db;
use service::{Server, Service};

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
pub(super) async fn run(config: &Config, args: ChaosArgs) -> anyhow::Result<()> {
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
    let target = Target::connect(&admin, vec![service.url.clone()]).await?;
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
    let ledger = storm::storm(&target, proxy, args, &tokens, &promos, length).await;
    println!("storm over after {:.1?}", started.elapsed());
    proxy.heal();
    let settled_at = audit::settle(&target, &direct, &promos, args.hold_seconds).await?;
    service.stop();
    println!("links: {:?}", proxy.stats());
    audit::audit(&direct, &promos, &ledger, settled_at).await
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
