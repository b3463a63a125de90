//! SQL for `promo_reservations`: the PromoActor's batched stock writes, the
//! reload of live holds after a restart, and a shopper's own reservations.

use chrono::Utc;
use futures_util::future::{try_join_all, BoxFuture};
use futures_util::FutureExt;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{DbError, DbPool, Listing, PageWindow};
use crate::domain::reservation::{ReservationRecord, ReservationStatus};
use crate::domain::stock::Hold;

/// One stock decision to make durable.
#[derive(Debug, Clone)]
pub enum StockWrite {
    /// A new hold: inserts the reservation row.
    InsertHold { promo_id: i64, hold: Hold },
    /// A sale: marks the reservation completed and counts the unit sold.
    Complete { reservation_id: Uuid },
    /// The holder let go.
    Cancel { reservation_id: Uuid },
    /// The hold ran out (or its promo was switched off).
    Expire { reservation_id: Uuid },
}

const INSERT_HOLD: &str = "INSERT INTO promo_reservations \
    (reservation_id, promo_id, user_id, status, created_at, expires_at) \
    VALUES ($1, $2, $3, 'held', $4, $5) RETURNING id";
const COMPLETE: &str = "WITH done AS (UPDATE promo_reservations SET status = 'completed', \
    completed_at = now() WHERE reservation_id = $1 AND status = 'held' RETURNING promo_id) \
    UPDATE flash_promos SET sold = sold + 1 WHERE id = (SELECT promo_id FROM done) RETURNING id";
const CANCEL: &str = "UPDATE promo_reservations SET status = 'cancelled', cancelled_at = now() \
    WHERE reservation_id = $1 AND status = 'held'";
const EXPIRE: &str = "UPDATE promo_reservations SET status = 'expired' \
    WHERE reservation_id = $1 AND status = 'held'";

/// Applies `writes` in order in one transaction, pipelined on one connection.
/// Returns the row id of each inserted hold (`None` for other writes). Either
/// every write commits or none does; a sale or cancel that finds no held row
/// fails the batch, since memory and the database would disagree.
#[tracing::instrument(skip_all, fields(writes = writes.len()))]
pub async fn apply_stock_writes(
    pool: &DbPool,
    writes: &[StockWrite],
) -> Result<Vec<Option<i64>>, DbError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let insert = transaction.prepare_cached(INSERT_HOLD).await?;
    let complete = transaction.prepare_cached(COMPLETE).await?;
    let cancel = transaction.prepare_cached(CANCEL).await?;
    let expire = transaction.prepare_cached(EXPIRE).await?;
    let ids = run_in_order(&transaction, writes, [&insert, &complete, &cancel, &expire]).await?;
    transaction.commit().await?;
    Ok(ids)
}

/// Sends every write before awaiting any (pipelining); the server runs them in order.
async fn run_in_order(
    transaction: &deadpool_postgres::Transaction<'_>,
    writes: &[StockWrite],
    [insert, complete, cancel, expire]: [&tokio_postgres::Statement; 4],
) -> Result<Vec<Option<i64>>, DbError> {
    let pending: Vec<BoxFuture<'_, Result<Option<i64>, DbError>>> = writes
        .iter()
        .map(|write| match write {
            StockWrite::InsertHold { promo_id, hold } => async move {
                let row = transaction
                    .query_one(
                        insert,
                        &[
                            &hold.reservation_id,
                            promo_id,
                            &hold.user_id,
                            &hold.created_at,
                            &hold.expires_at,
                        ],
                    )
                    .await?;
                Ok(Some(row.get::<_, i64>(0)))
            }
            .boxed(),
            StockWrite::Complete { reservation_id } => async move {
                match transaction.query_opt(complete, &[reservation_id]).await? {
                    Some(_) => Ok(None),
                    None => Err(DbError::Corrupt(format!(
                        "sale of {reservation_id}: no held row"
                    ))),
                }
            }
            .boxed(),
            StockWrite::Cancel { reservation_id } => async move {
                match transaction.execute(cancel, &[reservation_id]).await? {
                    1 => Ok(None),
                    _ => Err(DbError::Corrupt(format!(
                        "cancel of {reservation_id}: no held row"
                    ))),
                }
            }
            .boxed(),
            StockWrite::Expire { reservation_id } => async move {
                transaction.execute(expire, &[reservation_id]).await?;
                Ok(None)
            }
            .boxed(),
        })
        .collect();
    try_join_all(pending).await
}

/// The live (`held`) reservations of a promo, expired or not.
#[tracing::instrument(skip(pool))]
pub async fn load_holds(pool: &DbPool, promo_id: i64) -> Result<Vec<Hold>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT reservation_id, user_id, created_at, expires_at FROM promo_reservations \
             WHERE promo_id = $1 AND status = 'held'",
        )
        .await?;
    let rows = client.query(&statement, &[&promo_id]).await?;
    Ok(rows
        .iter()
        .map(|row| Hold {
            reservation_id: row.get("reservation_id"),
            user_id: row.get("user_id"),
            created_at: row.get("created_at"),
            expires_at: row.get("expires_at"),
        })
        .collect())
}

const RESERVATION_COLUMNS: &str =
    "id, reservation_id, promo_id, user_id, status, created_at, expires_at FROM promo_reservations";

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
        created_at: row.get("created_at"),
        expires_at,
    })
}
