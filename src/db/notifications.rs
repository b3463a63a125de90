//! SQL for `promo_notifications`: the once-a-day claim, the inbox, and delivery marks.
//!
//! The unique (user, day) constraint is what makes "at most one flash-promo
//! notification per shopper per day" hold, also across instances: a claim is an
//! `INSERT ... ON CONFLICT DO NOTHING`, and only the rows it returns are told.

use chrono::{DateTime, NaiveDate, Utc};
use tokio_postgres::Row;

use super::{DbError, DbPool, Listing, PageWindow};

/// A notification that was claimed and must be pushed.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedNotification {
    pub id: i64,
    pub user_id: i64,
    pub promo_id: i64,
    pub distance_km: f64,
    pub sent_at: DateTime<Utc>,
}

/// A notification in a shopper's inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationRecord {
    pub id: i64,
    pub promo_id: i64,
    pub distance_km: f64,
    pub sent_at: DateTime<Utc>,
    pub delivered: bool,
}

/// Claims `day` for each candidate who has had no notification that day, in
/// one statement; records the winners' notifications and returns them. Only
/// while the promo is active and inside its window in the database, and
/// before `until` (the end of the occurrence being announced): an
/// announcement that raced a deactivation or an end spends nobody's daily
/// slot. The promo's row is locked `FOR KEY SHARE` once (in place of a
/// per-row foreign-key check), so a delete of the promo waits for the claim
/// and its trigger then clears the claimed rows' `promo_id`.
#[tracing::instrument(skip(pool, user_ids, distances), fields(candidates = user_ids.len()))]
pub async fn claim_daily_slots(
    pool: &DbPool,
    promo_id: i64,
    day: NaiveDate,
    user_ids: &[i64],
    distances: &[f64],
    until: DateTime<Utc>,
) -> Result<Vec<ClaimedNotification>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "INSERT INTO promo_notifications (user_id, promo_id, notify_day, distance_km)
             SELECT candidate.user_id, $1, $2, candidate.distance_km
             FROM unnest($3::bigint[], $4::float8[]) AS candidate(user_id, distance_km)
             WHERE EXISTS (SELECT 1 FROM flash_promos f WHERE f.id = $1 AND f.is_active
                           AND f.start_time <= now() AND now() < f.end_time
                           AND now() < $5 FOR KEY SHARE)
             ON CONFLICT (user_id, notify_day) DO NOTHING
             RETURNING id, user_id, distance_km, sent_at",
        )
        .await?;
    let rows = client
        .query(
            &statement,
            &[&promo_id, &day, &user_ids, &distances, &until],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| ClaimedNotification {
            id: row.get("id"),
            user_id: row.get("user_id"),
            promo_id,
            distance_km: row.get("distance_km"),
            sent_at: row.get("sent_at"),
        })
        .collect())
}

/// True when the promo's start was already announced; with `occurrence`
/// (the start of a daily promo's occurrence), when that occurrence's was.
pub async fn is_announced(
    pool: &DbPool,
    promo_id: i64,
    occurrence: Option<DateTime<Utc>>,
) -> Result<bool, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT notified_at IS NOT NULL \
             AND ($2::timestamptz IS NULL OR notified_occurrence = $2) \
             FROM flash_promos WHERE id = $1",
        )
        .await?;
    let row = client
        .query_opt(&statement, &[&promo_id, &occurrence])
        .await?;
    // A deleted promo counts as announced: there is nobody to tell about it.
    Ok(row.is_none_or(|row| row.get(0)))
}

/// Records that a promo's start (of the occurrence starting at
/// `occurrence`, for a daily promo) was announced, so a restart does not
/// repeat it.
pub async fn mark_promo_announced(
    pool: &DbPool,
    promo_id: i64,
    occurrence: Option<DateTime<Utc>>,
) -> Result<(), DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "UPDATE flash_promos SET notified_at = now(), notified_occurrence = $2 \
             WHERE id = $1",
        )
        .await?;
    client
        .execute(&statement, &[&promo_id, &occurrence])
        .await?;
    Ok(())
}

/// Marks notifications as pushed to at least one open session.
pub async fn mark_delivered(pool: &DbPool, notification_ids: &[i64]) -> Result<(), DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "UPDATE promo_notifications SET delivered_at = now() \
             WHERE id = ANY($1) AND delivered_at IS NULL",
        )
        .await?;
    client.execute(&statement, &[&notification_ids]).await?;
    Ok(())
}

/// A shopper's notifications of promos that still exist, newest first.
#[tracing::instrument(skip(pool))]
pub async fn list_notifications(
    pool: &DbPool,
    user_id: i64,
    window: PageWindow,
) -> Result<Listing<NotificationRecord>, DbError> {
    let client = pool.get().await?;
    let count = client
        .prepare_cached(
            "SELECT count(*) FROM promo_notifications WHERE user_id = $1 AND promo_id IS NOT NULL",
        )
        .await?;
    let total: i64 = client.query_one(&count, &[&user_id]).await?.get(0);
    let page = client
        .prepare_cached(
            "SELECT id, promo_id, distance_km, sent_at, delivered_at IS NOT NULL AS delivered \
             FROM promo_notifications WHERE user_id = $1 AND promo_id IS NOT NULL \
             ORDER BY sent_at DESC, id DESC LIMIT $2 OFFSET $3",
        )
        .await?;
    let rows = client
        .query(&page, &[&user_id, &window.limit, &window.offset])
        .await?;
    Ok(Listing {
        total,
        items: rows.iter().map(record_from_row).collect(),
    })
}

/// Takes the undelivered notifications of `user_id` for the promos in
/// `promos`, each with the start of its current occurrence when it has a
/// daily window (only a notification sent since then is of this occurrence;
/// yesterday's is left alone), marking them delivered in the same
/// statement, so two sessions connecting at once (or a push racing a
/// connect) never send one twice.
pub async fn take_undelivered(
    pool: &DbPool,
    user_id: i64,
    promos: &[(i64, Option<DateTime<Utc>>)],
) -> Result<Vec<NotificationRecord>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "UPDATE promo_notifications n SET delivered_at = now() \
             FROM unnest($2::bigint[], $3::timestamptz[]) AS k(promo_id, since) \
             WHERE n.user_id = $1 AND n.promo_id = k.promo_id AND n.delivered_at IS NULL \
             AND (k.since IS NULL OR n.sent_at >= k.since) \
             RETURNING n.id, n.promo_id, n.distance_km, n.sent_at, true AS delivered",
        )
        .await?;
    let (promo_ids, since): (Vec<i64>, Vec<Option<DateTime<Utc>>>) = promos.iter().copied().unzip();
    let rows = client
        .query(&statement, &[&user_id, &promo_ids, &since])
        .await?;
    Ok(rows.iter().map(record_from_row).collect())
}

fn record_from_row(row: &Row) -> NotificationRecord {
    NotificationRecord {
        id: row.get("id"),
        promo_id: row.get("promo_id"),
        distance_km: row.get("distance_km"),
        sent_at: row.get("sent_at"),
        delivered: row.get("delivered"),
    }
}
