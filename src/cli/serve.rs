//! `promo-engine serve`: builds the application, optionally loads demo data,
//! and serves until SIGINT/SIGTERM (actix drains in-flight requests first).

use super::demo_data::{self, DemoSize};
use crate::config::Config;
use crate::db;
use crate::startup::Application;

/// Serves until a shutdown signal.
pub async fn serve(config: Config, demo: bool) -> anyhow::Result<()> {
    let admin_username = config.admin_username.clone();
    let app = Application::build(config).await?;
    if let Some(password) = app.generated_admin_password() {
        println!(
            "Created the admin account {admin_username:?} with the generated password: {password}\n\
             (shown once; set ADMIN_PASSWORD to choose it)"
        );
    }
    if demo && db::demo::is_empty(app.pool()).await? {
        demo_data::load(app.pool(), &DemoSize::default()).await?;
    }
    tracing::info!(port = app.port(), "serving");
    app.run_until_stopped().await?;
    tracing::info!("stopped");
    Ok(())
}
