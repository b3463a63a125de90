//! `Application`: everything a running service is made of — the database
//! (created and migrated), the admin account, the shared state and the HTTP
//! server — built once and shared by `serve` and the integration tests.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, HttpServer};
use anyhow::Context;

use crate::cluster::Cluster;
use crate::config::Config;
use crate::db::{self, DbPool};
use crate::domain::secrets::{generate_password, hash_password, verify_password};
use crate::domain::Password;
use crate::engine::Engine;
use crate::http::credential_cache::{CredentialCache, CREDENTIAL_TTL};
use crate::http::idempotency;
use crate::http::login_throttle::LoginThrottle;
use crate::http::password_gate::PasswordGate;
use crate::http::rate_limit::ClientRateLimit;
use crate::http::{build_app, AppState};

/// A built, not yet running, service.
pub struct Application {
    port: u16,
    server: Server,
    pool: DbPool,
    engine: Engine,
    generated_admin_password: Option<String>,
}

impl Application {
    /// Prepares the database and binds the listener (port 0 picks a free port).
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        // Before the engine starts, so its first events are counted.
        crate::telemetry::prometheus::handle();
        let pool = prepare_database(&config).await?;
        let generated_admin_password = ensure_admin(&pool, &config).await?;
        let listener = TcpListener::bind(config.bind)
            .with_context(|| format!("cannot listen on BIND={}", config.bind))?;
        let port = listener.local_addr()?.port();
        let cluster = match &config.cluster {
            Some(cluster) => Some(Cluster::connect(cluster).await?),
            None => None,
        };
        let credentials = Arc::new(CredentialCache::new(CREDENTIAL_TTL));
        let forget = credentials.clone();
        let forget_credentials = Arc::new(move |user_id| forget.forget_user(user_id));
        let engine = Engine::start(&pool, &config, cluster, forget_credentials).await?;
        idempotency::start_pruning(pool.clone());
        let state = web::Data::new(AppState {
            engine: engine.clone(),
            pool: pool.clone(),
            config: Arc::new(config.clone()),
            credentials,
            decoy_password_hash: decoy_hash().await?,
            subscribe_limit: ClientRateLimit::per_minute(config.rate_limit_subscribe_per_minute),
            password_gate: PasswordGate::for_this_machine()
                .context("cannot start the password-check threads")?,
            login_throttle: LoginThrottle::per_minute(config.login_failures_per_minute),
            draw_reads: Default::default(),
        });
        let mut server = HttpServer::new(move || build_app(state.clone())).shutdown_timeout(10);
        if let Some(workers) = config.http_workers {
            server = server.workers(workers);
        }
        let server = server.listen(listener)?.run();
        Ok(Application {
            port,
            server,
            pool,
            engine,
            generated_admin_password,
        })
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The database pool the service uses.
    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    /// The long-lived actors (for benches and tools that talk to them directly).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// A password generated for a newly created admin, to be shown once.
    pub fn generated_admin_password(&self) -> Option<&str> {
        self.generated_admin_password.as_deref()
    }

    /// A handle that stops the server gracefully.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped (SIGINT/SIGTERM, or the handle); in cluster mode
    /// then gives this instance's leases back, so the others take its promos
    /// over at once.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        self.engine.leave_cluster().await;
        served
    }
}

/// Creates the database if needed, opens the pool and applies migrations.
pub async fn prepare_database(config: &Config) -> anyhow::Result<DbPool> {
    db::ensure_database_exists(&config.database_url)
        .await
        .context("cannot reach PostgreSQL at DATABASE_URL")?;
    let pool = db::create_pool(&config.database_url, config.database_pool_size)?;
    db::migrate(&pool).await.context("migrations failed")?;
    Ok(pool)
}

/// Creates or updates the admin account and demotes any other admin (a
/// former `ADMIN_USERNAME`). Returns a generated password when a new admin was
/// created without `ADMIN_PASSWORD`; an existing admin keeps their password
/// unless `ADMIN_PASSWORD` names a different one.
async fn ensure_admin(pool: &DbPool, config: &Config) -> anyhow::Result<Option<String>> {
    let username = config.admin_username.as_str();
    anyhow::ensure!(
        !db::users::is_shopper(pool, username).await?,
        "ADMIN_USERNAME={username} names an existing shopper; choose another name"
    );
    let existing = db::users::find_login(pool, username).await?;
    let (hash, generated) = admin_password(config, existing.as_ref()).await?;
    db::users::upsert_admin(pool, username, hash.as_deref()).await?;
    tracing::info!(admin = username, "admin account ready");
    Ok(generated)
}

/// The new hash to store for the admin (`None`: keep the stored one) and the
/// password generated for a new admin, if one was.
async fn admin_password(
    config: &Config,
    existing: Option<&db::users::StoredLogin>,
) -> anyhow::Result<(Option<String>, Option<String>)> {
    let (password, generated) = match (&config.admin_password, existing) {
        (Some(password), Some(login))
            if verify_off_executor(password, &login.password_hash).await? =>
        {
            return Ok((None, None))
        }
        (Some(password), _) => (password.clone(), None),
        // The admin, or a former admin named again, keeps their password.
        (None, Some(_)) => return Ok((None, None)),
        (None, None) => {
            let password = generate_password();
            (password.clone(), Some(password))
        }
    };
    let password = Password::parse(&password).context("ADMIN_PASSWORD is too short or long")?;
    let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await??;
    Ok((Some(hash), generated))
}

async fn verify_off_executor(password: &str, hash: &str) -> anyhow::Result<bool> {
    let (password, hash) = (password.to_owned(), hash.to_owned());
    Ok(tokio::task::spawn_blocking(move || verify_password(&password, &hash)).await?)
}

/// A hash of a random password, for timing-safe checks of unknown usernames.
async fn decoy_hash() -> anyhow::Result<String> {
    let password = Password::parse(&generate_password())?;
    Ok(tokio::task::spawn_blocking(move || hash_password(&password)).await??)
}
