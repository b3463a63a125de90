//! The command line: `serve`, `migrate` and `demo-data`.
//!
//! Each command reads the configuration once, installs logging and runs inside
//! an actix system (the actors and the HTTP server need one). `serve`,
//! `migrate` and `demo-data` with `DATABASE_URL` unset fall back on a private
//! cluster when nothing answers at the default address
//! ([`crate::private_cluster`]); it is stopped when the command ends, also when
//! SIGINT or SIGTERM cuts `migrate`, `demo-data` or `serve`'s start short
//! (once serving, actix's graceful shutdown ends `serve`).

mod demo_data;
mod demo_promos;
pub mod fault_proxy;
mod loadgen;
mod serve;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::private_cluster::binaries::SearchPlaces;
use crate::private_cluster::{default_address_answers, PrivateCluster};
use crate::telemetry;

pub use demo_data::DemoSize;

/// promo-engine: flash promos and raffle campaigns, in one binary.
#[derive(Debug, Parser)]
#[command(name = "promo-engine", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply migrations, then serve HTTP and WebSocket on BIND.
    Serve {
        /// Load demo data first when the database has none.
        #[arg(long)]
        demo: bool,
    },
    /// Create the database if needed and apply pending migrations.
    Migrate,
    /// Load the demo data set (idempotent: existing demo rows are kept).
    DemoData(DemoSize),
    /// Generate load against a running service and report what it sustains.
    #[command(subcommand)]
    Loadgen(loadgen::Scenario),
}

impl Cli {
    /// Runs the chosen command to completion.
    pub fn run(self) -> anyhow::Result<()> {
        telemetry::init("info");
        let mut config = Config::from_env()?;
        let cluster = match self.command {
            Command::Loadgen(_) => None,
            _ => private_cluster_if_needed(&mut config)?,
        };
        let outcome = self.run_command(config);
        match cluster.map(PrivateCluster::stop) {
            Some(Err(error)) if outcome.is_ok() => Err(error),
            _ => outcome,
        }
    }

    fn run_command(self, config: Config) -> anyhow::Result<()> {
        actix_web::rt::System::new().block_on(async move {
            match self.command {
                Command::Serve { demo } => serve::serve(config, demo).await,
                Command::Migrate => {
                    until_signal(crate::startup::prepare_database(&config)).await?;
                    println!("migrations applied");
                    Ok(())
                }
                Command::DemoData(size) => {
                    until_signal(async {
                        let pool = crate::startup::prepare_database(&config).await?;
                        demo_data::load(&pool, &size).await
                    })
                    .await
                }
                Command::Loadgen(scenario) => {
                    let pool = crate::db::create_pool(&config.database_url, 4)?;
                    loadgen::run(&config, &pool, scenario).await
                }
            }
        })
    }
}

/// With `DATABASE_URL` unset and nothing answering at the default address,
/// starts the private cluster under `DATA_DIR` and points `config` at it.
fn private_cluster_if_needed(config: &mut Config) -> anyhow::Result<Option<PrivateCluster>> {
    if !config.database_url_is_default || default_address_answers(&config.database_url) {
        return Ok(None);
    }
    let probed = config.database_url.clone();
    let cluster =
        PrivateCluster::start(&config.data_dir, &SearchPlaces::from_env()).with_context(|| {
            format!(
                "DATABASE_URL is unset and nothing answers at {probed}, so a private PostgreSQL \
                 cluster was to start under DATA_DIR={}",
                config.data_dir.display()
            )
        })?;
    let dbname = probed
        .parse::<tokio_postgres::Config>()
        .ok()
        .and_then(|parsed| parsed.get_dbname().map(str::to_owned))
        .unwrap_or_else(|| "promo_engine".to_owned());
    config.database_url = cluster.url(&dbname);
    tracing::info!(
        cluster = %cluster.data_dir().display(),
        created = cluster.was_created(),
        "DATABASE_URL is unset and nothing answers at {probed}: using the private PostgreSQL \
         cluster in {} (its Unix socket is there too; stopped when this command ends)",
        cluster.data_dir().display()
    );
    Ok(Some(cluster))
}

/// Runs `work` unless SIGINT or SIGTERM comes first, which ends it with an error
/// (so the caller's clean-up, such as stopping the private cluster, still runs).
async fn until_signal<T>(
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        outcome = work => outcome,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted (SIGINT)"),
        _ = terminate.recv() => anyhow::bail!("terminated (SIGTERM)"),
    }
}
