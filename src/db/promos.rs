//! SQL for `flash_promos` and `flash_promo_segments`.
//!
//! Reads embed the product (with its store) and the segments, and count the
//! live holds and sales of the occurrence each promo shows
//! ([`super::occurrences`]), so a promo read here shows committed state. The
//! window-overlap rule of continuous promos and `sold <= quantity` live in
//! the schema; their violations come back as [`Violation`]s. Overlaps that
//! involve a daily window are checked in the writing transaction.

use std::collections::HashMap;

use chrono::Utc;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::occurrences::{
    count_occurrences, daily_window_from, daily_window_value, keep_quantity_of_held_occurrences,
    refuse_overlaps, rekey_occurrence, set_occurrence_quantity,
};
use super::segments::{require_known_segments, segment_from_row};
use super::{DbError, DbPool, Listing, PageWindow, Violation};
use crate::domain::entities::{Product, Segment, Store};
use crate::domain::occurrence::Schedule;
use crate::domain::promo::{FlashPromo, PromoStatus, PromoTerms};
use crate::domain::Money;

const PROMO_SELECT: &str = "SELECT f.id, f.promo_price, f.start_time, f.end_time, \
    f.max_distance_km, f.is_active, f.quantity, f.sold, f.daily_window, f.created_at, \
    f.updated_at, p.id AS product_id, p.name AS product_name, p.regular_price, \
    s.id AS store_id, s.name AS store_name, s.latitude, s.longitude \
    FROM flash_promos f JOIN products p ON p.id = f.product_id JOIN stores s ON s.id = p.store_id";

/// Promos in id order, one page of them.
#[tracing::instrument(skip_all)]
pub async fn list_promos(
    pool: &DbPool,
    window: PageWindow,
) -> Result<Listing<FlashPromo>, DbError> {
    let client = pool.get().await?;
    let count = client
        .prepare_cached("SELECT count(*) FROM flash_promos")
        .await?;
    let total: i64 = client.query_one(&count, &[]).await?.get(0);
    let page = client
        .prepare_cached(&format!("{PROMO_SELECT} ORDER BY f.id LIMIT $1 OFFSET $2"))
        .await?;
    let rows = client
        .query(&page, &[&window.limit, &window.offset])
        .await?;
    let items = promos_from_rows(&client, &rows).await?;
    Ok(Listing { total, items })
}

/// One promo, if it exists.
#[tracing::instrument(skip(pool))]
pub async fn find_promo(pool: &DbPool, promo_id: i64) -> Result<Option<FlashPromo>, DbError> {
    let client = pool.get().await?;
    Ok(find_promos_with(&client, &[promo_id]).await?.pop())
}

/// The promos with these ids, by id (missing ones are left out; repeats are fine).
pub async fn find_promos_by_id(
    pool: &DbPool,
    promo_ids: impl IntoIterator<Item = i64>,
) -> Result<HashMap<i64, FlashPromo>, DbError> {
    let mut promo_ids: Vec<i64> = promo_ids.into_iter().collect();
    promo_ids.sort_unstable();
    promo_ids.dedup();
    let promos = find_promos(pool, &promo_ids).await?;
    Ok(promos.into_iter().map(|promo| (promo.id, promo)).collect())
}

/// The promos with these ids (missing ones are left out).
pub async fn find_promos(pool: &DbPool, promo_ids: &[i64]) -> Result<Vec<FlashPromo>, DbError> {
    let client = pool.get().await?;
    find_promos_with(&client, promo_ids).await
}

/// Every promo that has not ended or still has holds (what the registry must
/// have in memory), and every promo of `known` that still exists, so a known
/// promo missing from the answer was deleted.
#[tracing::instrument(skip_all, fields(known = known.len()))]
pub async fn load_live_promos(pool: &DbPool, known: &[i64]) -> Result<Vec<FlashPromo>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "{PROMO_SELECT} WHERE f.end_time > now() OR f.id = ANY($1) OR EXISTS \
             (SELECT 1 FROM promo_reservations r WHERE r.promo_id = f.id AND r.status = 'held') \
             ORDER BY f.id"
        ))
        .await?;
    let rows = client.query(&statement, &[&known]).await?;
    promos_from_rows(&client, &rows).await
}

/// Creates a promo with its segments in one transaction.
#[tracing::instrument(skip_all, fields(product_id = terms.product_id))]
pub async fn insert_promo(pool: &DbPool, terms: &PromoTerms) -> Result<FlashPromo, DbError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    require_known_segments(&transaction, &terms.segment_ids).await?;
    refuse_overlaps(&transaction, None, terms).await?;
    let statement = transaction
        .prepare_cached(
            "INSERT INTO flash_promos (product_id, promo_price, start_time, end_time, \
             max_distance_km, is_active, quantity, daily_window) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .await?;
    let quantity = i32::try_from(terms.quantity).unwrap_or(i32::MAX);
    let daily_window = daily_window_value(terms.daily_window.as_ref())?;
    let promo_id: i64 = transaction
        .query_one(
            &statement,
            &[
                &terms.product_id,
                &terms.promo_price.amount(),
                &terms.start_time,
                &terms.end_time,
                &terms.max_distance_km.km(),
                &terms.is_active,
                &quantity,
                &daily_window,
            ],
        )
        .await?
        .get(0);
    replace_segments(&transaction, promo_id, &terms.segment_ids).await?;
    let promo = find_promos_with(&transaction, &[promo_id]).await?.pop();
    transaction.commit().await?;
    promo.ok_or_else(|| DbError::Corrupt("inserted promo vanished".into()))
}

/// Changes a promo as one locked read-modify-write; `Ok(None)` when it does
/// not exist. The row is locked (`FOR NO KEY UPDATE`: it serialises writers
/// of this promo but lets holds keep referencing it) before it is read, so
/// `decide` sees the promo as it stands and no concurrent write can slip in
/// between the read and the write. `decide` turns it into the new terms, or
/// fails, which rolls back and releases the lock. The new quantity must
/// cover the units sold and (committed) holds.
#[tracing::instrument(skip(pool, decide))]
pub async fn update_promo<F, Fut, E>(
    pool: &DbPool,
    promo_id: i64,
    decide: F,
) -> Result<Option<FlashPromo>, E>
where
    F: FnOnce(FlashPromo) -> Fut,
    Fut: std::future::Future<Output = Result<PromoTerms, E>>,
    E: From<DbError>,
{
    let mut client = pool.get().await.map_err(DbError::from)?;
    let transaction = client.transaction().await.map_err(DbError::from)?;
    let Some(current) = lock_promo(&transaction, promo_id).await? else {
        return Ok(None);
    };
    let before = current.schedule();
    let terms = decide(current).await?;
    write_terms(&transaction, promo_id, &terms, &before).await?;
    let promo = find_promos_with(&transaction, &[promo_id]).await?.pop();
    transaction.commit().await.map_err(DbError::from)?;
    Ok(promo)
}

/// Locks the promo's row for this transaction and reads it. Its product's
/// row is locked first: every write that takes both (a promo write's overlap
/// check, a product or store delete cascading to its promos) takes the
/// product's first, so two of them cannot deadlock.
async fn lock_promo(
    client: &impl GenericClient,
    promo_id: i64,
) -> Result<Option<FlashPromo>, DbError> {
    let product = client
        .prepare_cached(
            "SELECT 1 FROM products p JOIN flash_promos f ON f.product_id = p.id \
             WHERE f.id = $1 FOR NO KEY UPDATE OF p",
        )
        .await?;
    client.execute(&product, &[&promo_id]).await?;
    let lock = client
        .prepare_cached("SELECT 1 FROM flash_promos WHERE id = $1 FOR NO KEY UPDATE")
        .await?;
    if client.query_opt(&lock, &[&promo_id]).await?.is_none() {
        return Ok(None);
    }
    Ok(find_promos_with(client, &[promo_id]).await?.pop())
}

/// Writes every term of a promo whose row this transaction holds; `before`
/// is when it ran until now.
async fn write_terms(
    client: &impl GenericClient,
    promo_id: i64,
    terms: &PromoTerms,
    before: &Schedule,
) -> Result<(), DbError> {
    require_known_segments(client, &terms.segment_ids).await?;
    refuse_overlaps(client, Some(promo_id), terms).await?;
    let now = Utc::now();
    if let Some((from, to)) = before.rekeyed_at(&terms.schedule(), now) {
        // The occurrence running now is the same one under a new start.
        rekey_occurrence(client, promo_id, from, to).await?;
    }
    let quantity = i32::try_from(terms.quantity).unwrap_or(i32::MAX);
    keep_quantity_of_held_occurrences(client, promo_id, quantity).await?;
    // The quantity must cover what the occurrence the promo now counts
    // ($10) sold and holds; for a continuous promo, its one stock.
    let statement = client
        .prepare_cached(
            "UPDATE flash_promos SET product_id = $2, promo_price = $3, start_time = $4, \
             end_time = $5, max_distance_km = $6, is_active = $7, quantity = $8, \
             daily_window = $9, updated_at = now(), \
             notified_at = CASE WHEN NOT $7 OR $4 > now() THEN NULL ELSE notified_at END \
             WHERE id = $1 RETURNING quantity >= (CASE WHEN daily_window IS NULL THEN sold \
             ELSE COALESCE((SELECT o.sold FROM promo_occurrences o WHERE o.promo_id = $1 \
             AND o.occurrence_start = $10), 0) END) \
             + (SELECT count(*) FROM promo_reservations r WHERE r.promo_id = $1 \
             AND (daily_window IS NULL OR r.occurrence_start = $10) \
             AND r.status = 'held' AND r.expires_at > now()) AS covers",
        )
        .await?;
    let daily_window = daily_window_value(terms.daily_window.as_ref())?;
    let counted = terms
        .schedule()
        .counted_at(now)
        .map_or(terms.start_time, |occurrence| occurrence.start);
    let row = client
        .query_one(
            &statement,
            &[
                &promo_id,
                &terms.product_id,
                &terms.promo_price.amount(),
                &terms.start_time,
                &terms.end_time,
                &terms.max_distance_km.km(),
                &terms.is_active,
                &quantity,
                &daily_window,
                &counted,
            ],
        )
        .await?;
    if !row.get::<_, bool>("covers") {
        return Err(DbError::Violation(Violation::QuantityBelowCommitted));
    }
    set_occurrence_quantity(client, promo_id, counted, quantity).await?;
    replace_segments(client, promo_id, &terms.segment_ids).await
}

/// Deletes a promo with its reservations; false when it did not exist.
#[tracing::instrument(skip(pool))]
pub async fn delete_promo(pool: &DbPool, promo_id: i64) -> Result<bool, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached("DELETE FROM flash_promos WHERE id = $1")
        .await?;
    Ok(client.execute(&statement, &[&promo_id]).await? == 1)
}

/// The promo ids of a product or of every product of a store (for stopping
/// their actors before a cascade delete).
pub async fn find_promo_ids_of(
    pool: &DbPool,
    store_id: Option<i64>,
    product_id: Option<i64>,
) -> Result<Vec<i64>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT f.id FROM flash_promos f JOIN products p ON p.id = f.product_id \
             WHERE p.store_id = $1 OR p.id = $2",
        )
        .await?;
    let rows = client.query(&statement, &[&store_id, &product_id]).await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

async fn replace_segments(
    client: &impl GenericClient,
    promo_id: i64,
    segment_ids: &[i64],
) -> Result<(), DbError> {
    let clear = client
        .prepare_cached("DELETE FROM flash_promo_segments WHERE flash_promo_id = $1")
        .await?;
    client.execute(&clear, &[&promo_id]).await?;
    let insert = client
        .prepare_cached(
            "INSERT INTO flash_promo_segments (flash_promo_id, segment_id) \
             SELECT $1, segment_id FROM unnest($2::bigint[]) AS segment_id ON CONFLICT DO NOTHING",
        )
        .await?;
    client.execute(&insert, &[&promo_id, &segment_ids]).await?;
    Ok(())
}

async fn find_promos_with(
    client: &impl GenericClient,
    promo_ids: &[i64],
) -> Result<Vec<FlashPromo>, DbError> {
    let statement = client
        .prepare_cached(&format!(
            "{PROMO_SELECT} WHERE f.id = ANY($1) ORDER BY f.id"
        ))
        .await?;
    let rows = client.query(&statement, &[&promo_ids]).await?;
    promos_from_rows(client, &rows).await
}

/// Builds promos from rows, loading all their segments in one query.
async fn promos_from_rows(
    client: &impl GenericClient,
    rows: &[Row],
) -> Result<Vec<FlashPromo>, DbError> {
    let promo_ids: Vec<i64> = rows.iter().map(|row| row.get("id")).collect();
    let statement = client
        .prepare_cached(
            "SELECT fs.flash_promo_id, s.id, s.name, s.description FROM flash_promo_segments fs \
             JOIN user_segments s ON s.id = fs.segment_id WHERE fs.flash_promo_id = ANY($1) ORDER BY s.id",
        )
        .await?;
    let mut segments: HashMap<i64, Vec<Segment>> = HashMap::new();
    for row in client.query(&statement, &[&promo_ids]).await? {
        segments
            .entry(row.get("flash_promo_id"))
            .or_default()
            .push(segment_from_row(&row));
    }
    let promos = rows
        .iter()
        .map(|row| {
            let promo_segments = segments
                .remove(&row.get::<_, i64>("id"))
                .unwrap_or_default();
            promo_from_row(row, promo_segments)
        })
        .collect::<Result<Vec<FlashPromo>, DbError>>()?;
    count_occurrences(client, promos, Utc::now()).await
}

/// A promo from its row, without the counts of its occurrence yet.
fn promo_from_row(row: &Row, segments: Vec<Segment>) -> Result<FlashPromo, DbError> {
    let money = |column: &str| {
        Money::from_decimal(row.get(column))
            .map_err(|error| DbError::Corrupt(format!("{column}: {error}")))
    };
    let count = |value: i64| {
        u32::try_from(value).map_err(|_| DbError::Corrupt(format!("negative count {value}")))
    };
    let promo = FlashPromo {
        id: row.get("id"),
        product: Product {
            id: row.get("product_id"),
            name: row.get("product_name"),
            regular_price: money("regular_price")?,
            store: Store {
                id: row.get("store_id"),
                name: row.get("store_name"),
                latitude: row.get("latitude"),
                longitude: row.get("longitude"),
            },
        },
        promo_price: money("promo_price")?,
        start_time: row.get("start_time"),
        end_time: row.get("end_time"),
        segments,
        max_distance_km: row.get("max_distance_km"),
        is_active: row.get("is_active"),
        daily_window: daily_window_from(row.get("daily_window"))?,
        quantity: count(i64::from(row.get::<_, i32>("quantity")))?,
        available: 0,
        held: 0,
        sold: 0,
        sold_total: count(i64::from(row.get::<_, i32>("sold")))?,
        held_any: 0,
        status: PromoStatus::Inactive,
        occurrence: None,
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    };
    Ok(promo)
}
