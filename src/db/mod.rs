//! PostgreSQL access: the pool, migrations and every SQL statement.
//!
//! This is the only place SQL lives; each submodule owns the statements of one
//! table group and returns domain types or [`DbError`]. Statements go through
//! `prepare_cached` and parameters, never string formatting (the one exception is
//! `CREATE DATABASE`, whose name cannot be a parameter and is quoted here).

pub mod campaign_lifecycle;
pub mod campaigns;
pub mod clients;
pub mod demo;
pub mod demo_promos;
pub mod draws;
pub mod error;
pub mod fence;
pub mod idempotency;
pub mod leases;
pub mod notifications;
pub mod occurrences;
pub mod outbox;
pub mod products;
pub mod promos;
pub mod reservations;
pub mod segments;
pub mod stores;
pub mod subscribers;
pub mod users;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

pub use error::{DbError, Violation};

/// The pool type every handler and actor shares.
pub type DbPool = Pool;

/// One page of a listing and the size of the whole listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing<T> {
    /// Rows in the whole listing, not just this page.
    pub total: i64,
    /// This page's rows, in the listing's order.
    pub items: Vec<T>,
}

impl<T> Listing<T> {
    /// A listing with nothing in it.
    pub fn empty() -> Listing<T> {
        Listing {
            total: 0,
            items: Vec::new(),
        }
    }
}

/// One page of a listing already written as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonListing {
    /// Rows in the whole listing, not just this page.
    pub total: i64,
    /// This page's rows as JSON objects separated by commas (no brackets).
    pub results: Vec<u8>,
}

/// Which rows of a listing one page holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageWindow {
    /// At most this many rows.
    pub limit: i64,
    /// After skipping this many.
    pub offset: i64,
}

/// How long a request waits for a pooled connection before answering 503.
const POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long opening one connection may take before the database counts as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The schema migrations in `sql/`, compiled into the binary.
mod embedded {
    refinery::embed_migrations!("sql");
}

/// Builds a pool for `database_url`; connections are opened lazily.
pub fn create_pool(database_url: &str, max_size: usize) -> anyhow::Result<Pool> {
    let mut pg_config: tokio_postgres::Config = database_url.parse()?;
    pg_config.connect_timeout(CONNECT_TIMEOUT);
    pg_config.application_name("promo-engine");
    // A peer that vanished without closing is noticed, and no statement can
    // hang a request or an actor forever.
    pg_config.keepalives(true);
    pg_config.keepalives_idle(Duration::from_secs(30));
    // A transaction whose client went silent (a commit lost on the way) is
    // ended by the server, so a fence waiting on it gets its answer (db::fence).
    pg_config.options("-c statement_timeout=60000 -c idle_in_transaction_session_timeout=15000");
    let manager = Manager::from_config(
        pg_config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .build()?;
    Ok(pool)
}

/// Creates the database named in `database_url` when it does not exist yet,
/// connecting to the server's `postgres` database to do so.
pub async fn ensure_database_exists(database_url: &str) -> anyhow::Result<()> {
    let target: tokio_postgres::Config = database_url.parse()?;
    let name = target
        .get_dbname()
        .or(target.get_user())
        .unwrap_or("postgres")
        .to_owned();
    let mut maintenance = target.clone();
    maintenance.dbname("postgres");
    maintenance.connect_timeout(CONNECT_TIMEOUT);
    let (client, connection) = maintenance.connect(NoTls).await?;
    let driver = tokio::spawn(connection);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        let statement = format!("CREATE DATABASE {}", quote_identifier(&name));
        match client.batch_execute(&statement).await {
            Ok(()) => tracing::info!(database = %name, "created the database"),
            // Another process created it between our check and our CREATE
            // (a CREATE racing another's commit fails on the catalogue's
            // unique index instead).
            Err(error)
                if error.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE)
                    || error.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
            }
            Err(error) => return Err(error.into()),
        }
    }
    drop(client);
    let _ = driver.await;
    Ok(())
}

/// Quotes an SQL identifier (doubling embedded quotes).
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Applies every pending migration in `sql/`, in order. An advisory lock keeps
/// two instances starting together from racing each other.
pub async fn migrate(pool: &Pool) -> anyhow::Result<()> {
    const MIGRATION_LOCK: i64 = 0x7072_6f6d_6f5f_6d67; // "promo_mg"
    let mut connection = pool.get().await?;
    connection
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let client: &mut tokio_postgres::Client = &mut connection;
    let outcome = embedded::migrations::runner().run_async(client).await;
    connection
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await?;
    let report = outcome?;
    for applied in report.applied_migrations() {
        tracing::info!(migration = %applied, "applied migration");
    }
    Ok(())
}

/// True when the database answers a trivial query within `timeout`.
pub async fn is_reachable(pool: &Pool, timeout: Duration) -> bool {
    let probe = async {
        let client = pool.get().await.ok()?;
        client.simple_query("SELECT 1").await.ok()
    };
    matches!(tokio::time::timeout(timeout, probe).await, Ok(Some(_)))
}

#[cfg(test)]
mod tests {
    use super::quote_identifier;

    #[test]
    fn identifiers_are_quoted_with_embedded_quotes_doubled() {
        assert_eq!(quote_identifier("promo_engine"), "\"promo_engine\"");
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
    }
}
