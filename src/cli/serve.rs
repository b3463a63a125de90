//! `promo-engine serve`: optionally loads demo data, builds the application
//! and serves until SIGINT/SIGTERM (actix drains in-flight requests first).

use super::demo_data::{self, DemoSize};
use crate::config::Config;
use crate::db;
use crate::startup::{prepare_database, Application};

/// Serves until a shutdown signal.
pub async fn serve(config: Config, demo: bool) -> anyhow::Result<()> {
    // actix listens for signals once serving; until then, ours end the start.
    let app = super::until_signal(build(config, demo)).await?;
    tracing::info!(port = app.port(), "serving");
    app.run_until_stopped().await?;
    tracing::info!("stopped");
    Ok(())
}

/// Loads the demo data when asked, then builds the application.
async fn build(config: Config, demo: bool) -> anyhow::Result<Application> {
    if demo {
        // Before the application loads its in-memory audience, so the demo
        // shoppers are in it.
        let pool = prepare_database(&config).await?;
        if db::demo::is_empty(&pool).await? {
            demo_data::load(&pool, &DemoSize::default()).await?;
        } else {
            // Something is running again on an old demo database.
            demo_data::refresh_live_part(&pool).await?;
        }
    }
    let admin_username = config.admin_username.clone();
    let app = Application::build(config).await?;
    if let Some(password) = app.generated_admin_password() {
        println!(
            "Created the admin account {admin_username:?} with the generated password: {password}\n\
             (shown once; set ADMIN_PASSWORD to choose it)"
        );
    }
    Ok(app)
}
