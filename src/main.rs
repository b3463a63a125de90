//! The `promo-engine` binary: parses the command line and hands over to [`promo_engine::cli`].

use clap::Parser;
use promo_engine::cli::Cli;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("promo-engine: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
