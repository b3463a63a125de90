//! Fenced writes: a transaction whose outcome can always be learned, even
//! when its commit went unheard.
//!
//! Every fenced transaction inserts a fresh token into `write_fences` as its
//! first statement. A failure before `COMMIT` was sent means nothing was
//! committed ([`WriteFailure::NotCommitted`]). A failure after it (a timeout, a
//! broken connection) leaves the outcome in doubt ([`WriteFailure::InDoubt`]);
//! [`settle`] then decides it for good by inserting the same token as
//! `committed = false`: the unique key makes that insert wait while the
//! original transaction is still open, and makes the original fail if it has
//! not inserted its token yet, so the answer can never change afterwards.
//!
//! `BEGIN`, the token and the work's first statements are sent together
//! without waiting for each other (pipelined), so a transaction costs one
//! round trip plus its `COMMIT`. The server runs them in order; `BEGIN`
//! cannot fail on a healthy connection outside a transaction, which is the
//! only kind the pool hands out: a failed transaction is rolled back before
//! its connection goes back to the pool.
//!
//! A connection whose transaction timed out is discarded, never returned to
//! the pool: it may be stuck behind a hung network path. The server bounds how
//! long such a transaction can stay open (`idle_in_transaction_session_timeout`
//! on every pooled connection, see [`super::create_pool`]).

use std::future::Future;
use std::time::Duration;

use deadpool_postgres::{Client, Object};
use futures_util::future::BoxFuture;
use uuid::Uuid;

use super::leases::Fence;
use super::{DbError, DbPool};

/// How long [`settle`] waits on the token's lock before saying "still unknown".
const SETTLE_LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '2s'";
/// How long one [`settle`] attempt may take in all.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(4);
/// How long the `ROLLBACK` of a failed transaction may take before its
/// connection is discarded instead.
const ROLLBACK_TIMEOUT: Duration = Duration::from_secs(1);
/// Fences older than this are of no more use: every transaction they decide
/// has ended long before (the server's statement and idle timeouts).
const FENCE_RETENTION: &str = "1 day";

/// Why a fenced transaction did not report success.
#[derive(Debug, thiserror::Error)]
pub enum WriteFailure {
    /// Nothing was committed: the commit was never sent, or the server
    /// refused the transaction.
    #[error("not committed: {0}")]
    NotCommitted(DbError),
    /// `COMMIT` was sent but its answer never came: settle `token` to learn
    /// what happened.
    #[error("commit unconfirmed: {cause}")]
    InDoubt { token: Uuid, cause: String },
}

impl WriteFailure {
    /// True when the server itself refused a statement (a constraint, a bad
    /// row), as opposed to the database being unreachable.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            WriteFailure::NotCommitted(
                DbError::Violation(_) | DbError::Query(_) | DbError::Corrupt(_)
            )
        )
    }
}

/// The work of one fenced transaction: statements on `client`, inside the
/// transaction that holds the fence token (its first statements are sent
/// right behind `BEGIN`, without waiting for it).
pub type FencedWork<'t, T> =
    Box<dyn for<'a> FnOnce(&'a Client) -> BoxFuture<'a, Result<T, DbError>> + Send + 't>;

/// Runs `work` in one transaction with a fresh fence token; the whole
/// transaction, commit included, must finish within `timeout`.
pub async fn run_fenced<T>(
    pool: &DbPool,
    timeout: Duration,
    work: FencedWork<'_, T>,
) -> Result<T, WriteFailure> {
    run_fenced_under(pool, timeout, None, work).await
}

/// [`run_fenced`] under an ownership lease (cluster mode): the lease's check
/// is sent right behind the token, so the database refuses the whole
/// transaction when `lease` is no longer current (`Violation::StaleLease`).
pub async fn run_fenced_under<T>(
    pool: &DbPool,
    timeout: Duration,
    lease: Option<&Fence>,
    work: FencedWork<'_, T>,
) -> Result<T, WriteFailure> {
    let token = Uuid::new_v4();
    let held = DetachUnlessEnded(Some(
        pool.get()
            .await
            .map_err(|error| WriteFailure::NotCommitted(error.into()))?,
    ));
    let Some(client) = held.client() else {
        return Err(WriteFailure::NotCommitted(DbError::Unavailable(
            "no connection".into(),
        )));
    };
    let mut commit_sent = false;
    let attempt = tokio::time::timeout(
        timeout,
        transact(client, token, lease, work, &mut commit_sent),
    )
    .await;
    let failure = match attempt {
        Ok(Ok(value)) => {
            drop(held.ended());
            return Ok(value);
        }
        Ok(Err(failure)) => failure,
        Err(_) => Failure {
            cause: DbError::Unavailable("the write timed out".into()),
            server_answered: false,
        },
    };
    // A link that may be hung or broken, or that cannot end the transaction,
    // is never handed to anyone else.
    let reusable = failure.server_answered
        && matches!(
            tokio::time::timeout(ROLLBACK_TIMEOUT, client.batch_execute("ROLLBACK")).await,
            Ok(Ok(()))
        );
    if reusable {
        drop(held.ended());
    }
    Err(classify(token, failure, commit_sent))
}

/// A pooled connection inside a fenced transaction. Unless the transaction
/// is known to have ended, dropping it detaches the connection from the
/// pool: a caller that goes away mid-transaction (its future dropped, e.g.
/// an actor stopping) must not hand an open or aborted transaction to the
/// next user of the pool.
struct DetachUnlessEnded(Option<Object>);

impl DetachUnlessEnded {
    fn client(&self) -> Option<&Object> {
        self.0.as_ref()
    }

    /// The transaction ended: the connection may go back to the pool.
    fn ended(mut self) -> Option<Object> {
        self.0.take()
    }
}

impl Drop for DetachUnlessEnded {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            drop(Object::take(client));
        }
    }
}

/// A failed attempt, and whether the server itself answered with the error.
struct Failure {
    cause: DbError,
    server_answered: bool,
}

impl From<tokio_postgres::Error> for Failure {
    fn from(error: tokio_postgres::Error) -> Self {
        let server_answered = error.as_db_error().is_some();
        Failure {
            cause: error.into(),
            server_answered,
        }
    }
}

impl From<DbError> for Failure {
    fn from(cause: DbError) -> Self {
        // Our own checks (`Corrupt`) and the server's refusals leave a healthy link.
        let server_answered = !matches!(cause, DbError::Unavailable(_));
        Failure {
            cause,
            server_answered,
        }
    }
}

async fn transact<T>(
    client: &Client,
    token: Uuid,
    lease: Option<&Fence>,
    work: FencedWork<'_, T>,
    commit_sent: &mut bool,
) -> Result<T, Failure> {
    let claim = client
        .prepare_cached("INSERT INTO write_fences (token, committed) VALUES ($1, true)")
        .await?;
    let lease_statement = match lease {
        Some(_) => Some(client.prepare_cached(Fence::CHECK).await?),
        None => None,
    };
    let lease_check = async {
        match (lease, &lease_statement) {
            (Some(lease), Some(statement)) => lease.check(client, statement).await,
            _ => Ok(()),
        }
    };
    // Sent in this order (each is sent when first polled, and `join4` polls
    // in order), answered in one round trip.
    let (begun, claimed, leased, value) = futures_util::future::join4(
        client.batch_execute("BEGIN"),
        client.execute(&claim, &[&token]),
        lease_check,
        work(client),
    )
    .await;
    begun?;
    claimed?;
    leased?;
    let value = value?;
    *commit_sent = true;
    client.batch_execute("COMMIT").await?;
    Ok(value)
}

/// Whether a failure left the outcome in doubt.
fn classify(token: Uuid, failure: Failure, commit_sent: bool) -> WriteFailure {
    // The server answered the COMMIT itself with an error (a deferred check,
    // a serialization failure): the transaction is rolled back, unless the
    // error is about the connection going away.
    let refused_for_sure =
        failure.server_answered && !matches!(failure.cause, DbError::Unavailable(_));
    if !commit_sent || refused_for_sure {
        WriteFailure::NotCommitted(failure.cause)
    } else {
        WriteFailure::InDoubt {
            token,
            cause: failure.cause.to_string(),
        }
    }
}

/// What became of a fenced transaction whose commit went unheard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// It committed: every write of it is in the database.
    Committed,
    /// It did not commit and never will.
    NotCommitted,
}

/// Decides for good whether the transaction of `token` committed. An error
/// means this attempt could not tell (the database is unreachable, or the
/// transaction is still open after the lock timeout): try again later.
#[tracing::instrument(skip(pool))]
pub async fn settle(pool: &DbPool, token: Uuid) -> Result<Settled, DbError> {
    let attempt = async {
        let mut client = pool.get().await?;
        let transaction = client.transaction().await?;
        transaction.batch_execute(SETTLE_LOCK_TIMEOUT).await?;
        let fence = transaction
            .prepare_cached(
                "INSERT INTO write_fences (token, committed) VALUES ($1, false) \
                 ON CONFLICT (token) DO UPDATE SET token = EXCLUDED.token RETURNING committed",
            )
            .await?;
        let committed: bool = transaction.query_one(&fence, &[&token]).await?.get(0);
        transaction.commit().await?;
        Ok(if committed {
            Settled::Committed
        } else {
            Settled::NotCommitted
        })
    };
    within(SETTLE_TIMEOUT, attempt).await
}

/// [`settle`], tried again every `pause` until it answers or `give_up` passes
/// (then `None`: still unknown).
pub async fn settle_before(
    pool: &DbPool,
    token: Uuid,
    pause: Duration,
    give_up: tokio::time::Instant,
) -> Option<Settled> {
    loop {
        match settle(pool, token).await {
            Ok(settled) => return Some(settled),
            Err(error) => tracing::debug!(%error, "fence not settled yet"),
        }
        if tokio::time::Instant::now() + pause >= give_up {
            return None;
        }
        tokio::time::sleep(pause).await;
    }
}

/// Forgets fences that can no longer decide anything.
#[tracing::instrument(skip(pool))]
pub async fn prune(pool: &DbPool) -> Result<u64, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "DELETE FROM write_fences WHERE created_at < now() - interval '{FENCE_RETENTION}'"
        ))
        .await?;
    Ok(client.execute(&statement, &[]).await?)
}

async fn within<T>(
    limit: Duration,
    work: impl Future<Output = Result<T, DbError>>,
) -> Result<T, DbError> {
    tokio::time::timeout(limit, work)
        .await
        .unwrap_or_else(|_| Err(DbError::Unavailable("timed out".into())))
}
