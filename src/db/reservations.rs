//! SQL for `promo_reservations`: the PromoActor's batched stock writes, the
//! reload of live holds after a restart, and a shopper's own reservations.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures_util::future::{try_join_all, BoxFuture};
use futures_util::FutureExt;
use tokio_postgres::{Row, Statement};
use uuid::Uuid;

use super::fence::{run_fenced_under, FencedWork, WriteFailure};
use super::leases::Fence;
use super::{DbError, DbPool, Listing, PageWindow};
use crate::domain::reservation::{ReservationRecord, ReservationStatus};
use crate::domain::stock::Hold;

/// One stock decision of a promo to make durable.
#[derive(Debug, Clone)]
pub enum StockWrite {
    /// A new hold: inserts the reservation row.
    InsertHold { hold: Hold },
    /// A sale: marks the reservation completed and counts the unit sold.
    Complete { reservation_id: Uuid },
    /// The holder let go: the held row must exist.
    Cancel { reservation_id: Uuid },
    /// The promo was switched off: cancels the row if it is still held.
    Revoke { reservation_id: Uuid },
    /// The hold ran out.
    Expire { reservation_id: Uuid },
}

/// The kinds of write, so that consecutive writes of one kind go as one statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteKind {
    Insert,
    Complete,
    Cancel,
    Revoke,
    Expire,
}

impl StockWrite {
    fn kind(&self) -> WriteKind {
        match self {
            StockWrite::InsertHold { .. } => WriteKind::Insert,
            StockWrite::Complete { .. } => WriteKind::Complete,
            StockWrite::Cancel { .. } => WriteKind::Cancel,
            StockWrite::Revoke { .. } => WriteKind::Revoke,
            StockWrite::Expire { .. } => WriteKind::Expire,
        }
    }

    fn reservation_id(&self) -> Uuid {
        match self {
            StockWrite::InsertHold { hold } => hold.reservation_id,
            StockWrite::Complete { reservation_id }
            | StockWrite::Cancel { reservation_id }
            | StockWrite::Revoke { reservation_id }
            | StockWrite::Expire { reservation_id } => *reservation_id,
        }
    }
}

/// Whether inserting holds also expires their shoppers' stale `held` rows.
///
/// Memory is the truth about live holds: a user reserving anew holds nothing,
/// so a `held` row of theirs (a release the database refused and the actor
/// dropped, or a write of a stopped actor that landed after its successor
/// loaded) is stale and would only block the new hold on the one-hold-per-user
/// index. Such rows are rare, and the statement that finds them is not cheap
/// at scale: PostgreSQL plans it once per connection, while the table is still
/// small, as a scan of every live hold of the promo (16 ms at 100,000 holds,
/// measured). So a batch skips it ([`StaleHolds::Keep`]); when a stale row does
/// block an insert, the batch is refused and each of its decisions is retried
/// alone with [`StaleHolds::Expire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleHolds {
    /// Insert only (a stale row makes the insert fail on the unique index).
    Keep,
    /// Expire the shoppers' stale held rows, then insert.
    Expire,
}

const EXPIRE_STALE: &str = "UPDATE promo_reservations SET status = 'expired' \
    WHERE promo_id = $1 AND status = 'held' AND (user_id, occurrence_start) IN \
    (SELECT * FROM unnest($2::bigint[], $3::timestamptz[]))";
const INSERT_HOLDS: &str = "INSERT INTO promo_reservations \
    (reservation_id, promo_id, user_id, status, created_at, expires_at, occurrence_start) \
    SELECT held.reservation_id, $1, held.user_id, 'held', held.created_at, held.expires_at, \
    held.occurrence_start FROM unnest($2::uuid[], $3::bigint[], $4::timestamptz[], \
    $5::timestamptz[], $6::timestamptz[]) \
    AS held(reservation_id, user_id, created_at, expires_at, occurrence_start) \
    RETURNING id, reservation_id";
/// A sale counts in the promo's total and in its occurrence's row, whose
/// check keeps `sold <= quantity` per occurrence (sql/V7). The promo's row
/// is updated (locked) first, so the quantity copied into a new occurrence
/// row is the committed one.
const COMPLETE: &str = "WITH done AS (UPDATE promo_reservations SET status = 'completed', \
    completed_at = now() WHERE reservation_id = ANY($2) AND promo_id = $1 AND status = 'held' \
    RETURNING occurrence_start), \
    promo AS (UPDATE flash_promos SET sold = sold + (SELECT count(*) FROM done) \
    WHERE id = $1 RETURNING quantity), \
    counted AS (INSERT INTO promo_occurrences (promo_id, occurrence_start, quantity, sold) \
    SELECT $1, done.occurrence_start, (SELECT quantity FROM promo), count(*) FROM done \
    GROUP BY done.occurrence_start ON CONFLICT (promo_id, occurrence_start) \
    DO UPDATE SET sold = promo_occurrences.sold + EXCLUDED.sold RETURNING 1) \
    SELECT (SELECT count(*) FROM done) WHERE (SELECT count(*) FROM promo) = 1 \
    AND (SELECT count(*) FROM counted) >= 0";
const CANCEL: &str = "UPDATE promo_reservations SET status = 'cancelled', cancelled_at = now() \
    WHERE reservation_id = ANY($2) AND promo_id = $1 AND status = 'held'";
const REVOKE: &str = "UPDATE promo_reservations SET status = 'cancelled', cancelled_at = now() \
    WHERE reservation_id = ANY($2) AND promo_id = $1 AND status = 'held'";
const EXPIRE: &str = "UPDATE promo_reservations SET status = 'expired' \
    WHERE reservation_id = ANY($2) AND promo_id = $1 AND status = 'held'";

/// Applies one promo's `writes` in order, in one fenced transaction
/// ([`super::fence`]) that must finish within `timeout`. Consecutive writes of
/// one kind go as one statement, and the statements are pipelined (all sent
/// before any answer is awaited), so a batch costs about one round trip and
/// one commit. Returns the row id of each inserted hold (`None` for other
/// writes). Either every write commits or none does; a sale or cancel that
/// finds no held row fails the batch, since memory and the database would
/// disagree. A commit that goes unheard is reported in doubt, with the token
/// that settles it. `stale` says whether inserted holds first expire their
/// shoppers' stale rows. Under a `lease` (cluster mode) the database refuses
/// the batch unless the lease is still current (`Violation::StaleLease`).
#[tracing::instrument(skip_all, fields(writes = writes.len()))]
pub async fn apply_stock_writes(
    pool: &DbPool,
    promo_id: i64,
    writes: Vec<StockWrite>,
    stale: StaleHolds,
    timeout: std::time::Duration,
    lease: Option<&Fence>,
) -> Result<Vec<Option<i64>>, WriteFailure> {
    let work: FencedWork<'_, Vec<Option<i64>>> = Box::new(move |transaction| {
        async move { apply_in(transaction, promo_id, &writes, stale).await }.boxed()
    });
    run_fenced_under(pool, timeout, lease, work).await
}

async fn apply_in(
    transaction: &deadpool_postgres::Client,
    promo_id: i64,
    writes: &[StockWrite],
    stale: StaleHolds,
) -> Result<Vec<Option<i64>>, DbError> {
    // Prepared before anything is sent, so the pipelined statements reach the
    // server in the order of the writes.
    let statements = Statements {
        expire_stale: transaction.prepare_cached(EXPIRE_STALE).await?,
        insert: transaction.prepare_cached(INSERT_HOLDS).await?,
        complete: transaction.prepare_cached(COMPLETE).await?,
        cancel: transaction.prepare_cached(CANCEL).await?,
        revoke: transaction.prepare_cached(REVOKE).await?,
        expire: transaction.prepare_cached(EXPIRE).await?,
    };
    let mut runs: Vec<&[StockWrite]> = Vec::new();
    let mut rest = writes;
    while let Some(first) = rest.first() {
        let length = rest
            .iter()
            .take_while(|write| write.kind() == first.kind())
            .count();
        let (run, after) = rest.split_at(length);
        runs.push(run);
        rest = after;
    }
    let pending: Vec<BoxFuture<'_, Result<Vec<Option<i64>>, DbError>>> = runs
        .into_iter()
        .map(|run| apply_run(transaction, &statements, (promo_id, stale), run).boxed())
        .collect();
    Ok(try_join_all(pending).await?.concat())
}

struct Statements {
    expire_stale: Statement,
    insert: Statement,
    complete: Statement,
    cancel: Statement,
    revoke: Statement,
    expire: Statement,
}

/// One run of same-kind writes as one statement.
async fn apply_run(
    transaction: &deadpool_postgres::Client,
    statements: &Statements,
    (promo_id, stale): (i64, StaleHolds),
    run: &[StockWrite],
) -> Result<Vec<Option<i64>>, DbError> {
    let reservation_ids: Vec<Uuid> = run.iter().map(StockWrite::reservation_id).collect();
    let expected = i64::try_from(run.len()).unwrap_or(i64::MAX);
    let all_done = || vec![None; run.len()];
    match run.first().map(StockWrite::kind) {
        None => Ok(Vec::new()),
        Some(WriteKind::Insert) => {
            insert_holds(transaction, statements, (promo_id, stale), run).await
        }
        Some(WriteKind::Complete) => {
            let row = transaction
                .query_opt(&statements.complete, &[&promo_id, &reservation_ids])
                .await?;
            match row.map(|row| row.get::<_, i64>(0)) {
                Some(done) if done == expected => Ok(all_done()),
                done => Err(DbError::Corrupt(format!(
                    "sold {done:?} of {expected} held units"
                ))),
            }
        }
        Some(WriteKind::Cancel) => {
            let done = transaction
                .execute(&statements.cancel, &[&promo_id, &reservation_ids])
                .await?;
            if i64::try_from(done).ok() == Some(expected) {
                Ok(all_done())
            } else {
                Err(DbError::Corrupt(format!(
                    "cancelled {done} of {expected} held units"
                )))
            }
        }
        Some(WriteKind::Revoke) => {
            transaction
                .execute(&statements.revoke, &[&promo_id, &reservation_ids])
                .await?;
            Ok(all_done())
        }
        Some(WriteKind::Expire) => {
            transaction
                .execute(&statements.expire, &[&promo_id, &reservation_ids])
                .await?;
            Ok(all_done())
        }
    }
}

async fn insert_holds(
    transaction: &deadpool_postgres::Client,
    statements: &Statements,
    (promo_id, stale): (i64, StaleHolds),
    run: &[StockWrite],
) -> Result<Vec<Option<i64>>, DbError> {
    let holds: Vec<&Hold> = run
        .iter()
        .filter_map(|write| match write {
            StockWrite::InsertHold { hold } => Some(hold),
            _ => None,
        })
        .collect();
    let reservation_ids: Vec<Uuid> = holds.iter().map(|hold| hold.reservation_id).collect();
    let user_ids: Vec<i64> = holds.iter().map(|hold| hold.user_id).collect();
    let created: Vec<DateTime<Utc>> = holds.iter().map(|hold| hold.created_at).collect();
    let expires: Vec<DateTime<Utc>> = holds.iter().map(|hold| hold.expires_at).collect();
    let occurrences: Vec<DateTime<Utc>> = holds.iter().map(|hold| hold.occurrence_start).collect();
    let expire_stale = async {
        if stale == StaleHolds::Expire {
            transaction
                .execute(
                    &statements.expire_stale,
                    &[&promo_id, &user_ids, &occurrences],
                )
                .await?;
        }
        Ok(())
    };
    // Sent in this order: the stale rows are gone before the insert runs.
    let ((), rows) = futures_util::future::try_join(
        expire_stale,
        transaction.query(
            &statements.insert,
            &[
                &promo_id,
                &reservation_ids,
                &user_ids,
                &created,
                &expires,
                &occurrences,
            ],
        ),
    )
    .await?;
    let ids: HashMap<Uuid, i64> = rows.iter().map(|row| (row.get(1), row.get(0))).collect();
    reservation_ids
        .iter()
        .map(|reservation_id| {
            ids.get(reservation_id)
                .map(|id| Some(*id))
                .ok_or_else(|| DbError::Corrupt(format!("hold {reservation_id} was not inserted")))
        })
        .collect()
}

/// The live (`held`) reservations of a promo, expired or not, with their row ids.
#[tracing::instrument(skip(pool))]
pub async fn load_holds(pool: &DbPool, promo_id: i64) -> Result<Vec<(i64, Hold)>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT id, reservation_id, user_id, occurrence_start, created_at, expires_at \
             FROM promo_reservations WHERE promo_id = $1 AND status = 'held'",
        )
        .await?;
    let rows = client.query(&statement, &[&promo_id]).await?;
    Ok(rows
        .iter()
        .map(|row| {
            let hold = Hold {
                reservation_id: row.get("reservation_id"),
                user_id: row.get("user_id"),
                occurrence_start: row.get("occurrence_start"),
                created_at: row.get("created_at"),
                expires_at: row.get("expires_at"),
            };
            (row.get("id"), hold)
        })
        .collect())
}

const RESERVATION_COLUMNS: &str = "id, reservation_id, promo_id, user_id, status, \
    occurrence_start, created_at, expires_at FROM promo_reservations";

/// One reservation of `user_id` (another user's reads as missing).
#[tracing::instrument(skip(pool))]
pub async fn find_reservation(
    pool: &DbPool,
    id: i64,
    user_id: i64,
) -> Result<Option<ReservationRecord>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT {RESERVATION_COLUMNS} WHERE id = $1 AND user_id = $2"
        ))
        .await?;
    let row = client.query_opt(&statement, &[&id, &user_id]).await?;
    row.as_ref().map(record_from_row).transpose()
}

/// One reservation by its UUID.
#[tracing::instrument(skip(pool))]
pub async fn find_reservation_by_uuid(
    pool: &DbPool,
    reservation_id: Uuid,
) -> Result<Option<ReservationRecord>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT {RESERVATION_COLUMNS} WHERE reservation_id = $1"
        ))
        .await?;
    let row = client.query_opt(&statement, &[&reservation_id]).await?;
    row.as_ref().map(record_from_row).transpose()
}

/// The reservations of `user_id`, newest first.
#[tracing::instrument(skip(pool))]
pub async fn list_reservations(
    pool: &DbPool,
    user_id: i64,
    window: PageWindow,
) -> Result<Listing<ReservationRecord>, DbError> {
    let client = pool.get().await?;
    let count = client
        .prepare_cached("SELECT count(*) FROM promo_reservations WHERE user_id = $1")
        .await?;
    let total: i64 = client.query_one(&count, &[&user_id]).await?.get(0);
    let page = client
        .prepare_cached(&format!(
            "SELECT {RESERVATION_COLUMNS} WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
        ))
        .await?;
    let rows = client
        .query(&page, &[&user_id, &window.limit, &window.offset])
        .await?;
    let items = rows.iter().map(record_from_row).collect::<Result<_, _>>()?;
    Ok(Listing { total, items })
}

fn record_from_row(row: &Row) -> Result<ReservationRecord, DbError> {
    let stored: &str = row.get("status");
    let expires_at = row.get("expires_at");
    let status = ReservationStatus::from_stored(stored, expires_at, Utc::now())
        .ok_or_else(|| DbError::Corrupt(format!("reservation status {stored}")))?;
    Ok(ReservationRecord {
        id: row.get("id"),
        reservation_id: row.get("reservation_id"),
        promo_id: row.get("promo_id"),
        user_id: row.get("user_id"),
        status,
        occurrence_start: row.get("occurrence_start"),
        created_at: row.get("created_at"),
        expires_at,
    })
}

/// The row ids of the reservations among `reservation_ids` that exist.
#[tracing::instrument(skip_all, fields(reservations = reservation_ids.len()))]
pub async fn find_row_ids(
    pool: &DbPool,
    reservation_ids: &[Uuid],
) -> Result<HashMap<Uuid, i64>, DbError> {
    if reservation_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT reservation_id, id FROM promo_reservations WHERE reservation_id = ANY($1)",
        )
        .await?;
    let rows = client.query(&statement, &[&reservation_ids]).await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

/// Settles, in one statement, the `held` rows that no actor will settle: rows
/// past `expires_at` become `expired`, and the rest of a switched-off promo
/// become `cancelled` as a revoke does. Promos in `owned` (a live actor keeps
/// their holds) are left alone, and so are promos another instance holds a
/// live lease of (cluster mode). Returns how many rows were settled.
#[tracing::instrument(skip_all, fields(owned = owned.len()))]
pub async fn settle_stale_holds(pool: &DbPool, owned: &[i64]) -> Result<u64, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "UPDATE promo_reservations r SET \
             status = CASE WHEN r.expires_at <= now() THEN 'expired' ELSE 'cancelled' END, \
             cancelled_at = CASE WHEN r.expires_at <= now() THEN r.cancelled_at ELSE now() END \
             FROM flash_promos f WHERE f.id = r.promo_id AND r.status = 'held' \
             AND NOT (r.promo_id = ANY($1)) AND (r.expires_at <= now() OR NOT f.is_active) \
             AND NOT EXISTS (SELECT 1 FROM ownership_leases l WHERE l.kind = 'promo' \
             AND l.object_id = r.promo_id AND l.expires_at > now())",
        )
        .await?;
    Ok(client.execute(&statement, &[&owned]).await?)
}
