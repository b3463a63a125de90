//! The command line: `serve`, `migrate` and `demo-data`.
//!
//! Each command reads the configuration once, installs logging and runs inside
//! an actix system (the actors and the HTTP server need one).

mod demo_data;
mod demo_promos;
pub mod fault_proxy;
mod loadgen;
mod serve;

use clap::{Parser, Subcommand};

use crate::config::Config;
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
        let config = Config::from_env()?;
        actix_web::rt::System::new().block_on(async move {
            match self.command {
                Command::Serve { demo } => serve::serve(config, demo).await,
                Command::Migrate => {
                    crate::startup::prepare_database(&config).await?;
                    println!("migrations applied");
                    Ok(())
                }
                Command::DemoData(size) => {
                    let pool = crate::startup::prepare_database(&config).await?;
                    demo_data::load(&pool, &size).await
                }
                Command::Loadgen(scenario) => {
                    let pool = crate::db::create_pool(&config.database_url, 4)?;
                    loadgen::run(&config, &pool, scenario).await
                }
            }
        })
    }
}
