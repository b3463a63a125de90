//! SQL for promo occurrences (`promo_occurrences`, and the occurrence of
//! each reservation): the counts of the occurrence a promo shows, the
//! overlap rule for daily promos, and the stored form of a daily window.
//!
//! Two continuous promos of a product are kept apart by the schema's
//! partial exclusion constraint; any pair where one has a daily window is
//! checked here, occurrence by occurrence, inside the writing transaction
//! and under a lock on the product's row that every promo write of that
//! product takes first ([`refuse_overlaps`]), so two writers cannot both
//! pass the check (sql/V7).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde_json::Value;

use super::{DbError, Violation};
use crate::domain::daily_window::DailyWindow;
use crate::domain::occurrence::Schedule;
use crate::domain::promo::{FlashPromo, PromoTerms};

/// The live holds and sales of each promo's counted occurrence (a
/// continuous promo's holds whatever start they were taken under), and its
/// live holds in any occurrence.
const OCCURRENCE_COUNTS: &str = "SELECT k.promo_id, \
    (SELECT count(*) FROM promo_reservations r WHERE r.promo_id = k.promo_id \
     AND (k.continuous OR r.occurrence_start = k.occurrence_start) \
     AND r.status = 'held' AND r.expires_at > now()) AS held, \
    COALESCE((SELECT o.sold FROM promo_occurrences o WHERE o.promo_id = k.promo_id \
     AND o.occurrence_start = k.occurrence_start), 0) AS sold, \
    (SELECT count(*) FROM promo_reservations r WHERE r.promo_id = k.promo_id \
     AND r.status = 'held' AND r.expires_at > now()) AS held_any \
    FROM unnest($1::bigint[], $2::timestamptz[], $3::bool[]) \
    AS k(promo_id, occurrence_start, continuous)";

/// Sets each promo's counts to those of the occurrence it shows at `now`
/// ([`FlashPromo::counted_start`]): its live holds and sales. A continuous
/// promo has one stock: all its live holds, and its total sales.
pub async fn count_occurrences(
    client: &impl GenericClient,
    promos: Vec<FlashPromo>,
    now: DateTime<Utc>,
) -> Result<Vec<FlashPromo>, DbError> {
    if promos.is_empty() {
        return Ok(promos);
    }
    let ids: Vec<i64> = promos.iter().map(|promo| promo.id).collect();
    let starts: Vec<DateTime<Utc>> = promos
        .iter()
        .map(|promo| promo.counted_start(now))
        .collect();
    let continuous: Vec<bool> = promos
        .iter()
        .map(|promo| promo.daily_window.is_none())
        .collect();
    let statement = client.prepare_cached(OCCURRENCE_COUNTS).await?;
    let rows = client
        .query(&statement, &[&ids, &starts, &continuous])
        .await?;
    let mut counts: HashMap<i64, (i64, i32, i64)> = rows
        .iter()
        .map(|row| {
            let counts = (row.get("held"), row.get("sold"), row.get("held_any"));
            (row.get("promo_id"), counts)
        })
        .collect();
    promos
        .into_iter()
        .map(|mut promo| {
            let (held, sold, held_any) = counts.remove(&promo.id).unwrap_or_default();
            let held = u32::try_from(held).map_err(|_| corrupt("held", held))?;
            promo.held_any = u32::try_from(held_any).map_err(|_| corrupt("held", held_any))?;
            let sold = match promo.daily_window {
                None => promo.sold_total,
                Some(_) => u32::try_from(sold).map_err(|_| corrupt("sold", sold.into()))?,
            };
            Ok(promo.with_counts(held, sold, now))
        })
        .collect()
}

fn corrupt(what: &str, value: i64) -> DbError {
    DbError::Corrupt(format!("negative {what} count {value}"))
}

/// Locks the product's row for this transaction (every promo write of the
/// product takes it first), then refuses the write if an occurrence of
/// `terms` overlaps one of another promo of the product where either has a
/// daily window. `promo_id` is the promo being changed, if any.
pub async fn refuse_overlaps(
    client: &impl GenericClient,
    promo_id: Option<i64>,
    terms: &PromoTerms,
) -> Result<(), DbError> {
    let lock = client
        .prepare_cached("SELECT 1 FROM products WHERE id = $1 FOR NO KEY UPDATE")
        .await?;
    client.execute(&lock, &[&terms.product_id]).await?;
    let candidates = client
        .prepare_cached(
            "SELECT start_time, end_time, daily_window FROM flash_promos \
             WHERE product_id = $1 AND id IS DISTINCT FROM $2 AND start_time < $4 \
             AND $3 < end_time AND (daily_window IS NOT NULL OR $5)",
        )
        .await?;
    let daily = terms.daily_window.is_some();
    let rows = client
        .query(
            &candidates,
            &[
                &terms.product_id,
                &promo_id,
                &terms.start_time,
                &terms.end_time,
                &daily,
            ],
        )
        .await?;
    let mine = terms.schedule();
    for row in rows {
        let theirs = Schedule::new(
            row.get("start_time"),
            row.get("end_time"),
            daily_window_from(row.get("daily_window"))?,
        );
        if mine.overlaps(&theirs) {
            return Err(DbError::Violation(Violation::PromoOverlap));
        }
    }
    Ok(())
}

/// Gives the occurrence a promo now counts (`counted`) the quantity just
/// written, so its row's check holds sales to it (sql/V7). Called once the
/// write found the quantity covers what that occurrence sold and holds.
pub async fn set_occurrence_quantity(
    client: &impl GenericClient,
    promo_id: i64,
    counted: DateTime<Utc>,
    quantity: i32,
) -> Result<(), DbError> {
    let statement = client
        .prepare_cached(
            "UPDATE promo_occurrences SET quantity = $3 \
             WHERE promo_id = $1 AND occurrence_start = $2",
        )
        .await?;
    client
        .execute(&statement, &[&promo_id, &counted, &quantity])
        .await?;
    Ok(())
}

/// Before the quantity changes to `quantity`: gives every occurrence that
/// has live holds a sales row with the quantity it sold under (if it has
/// none yet), so a hold of an earlier occurrence still completes after the
/// quantity was lowered (its row would otherwise be made at its first sale,
/// with the new quantity). Done on the admin path to keep sales lean.
pub async fn keep_quantity_of_held_occurrences(
    client: &impl GenericClient,
    promo_id: i64,
    quantity: i32,
) -> Result<(), DbError> {
    let statement = client
        .prepare_cached(
            "INSERT INTO promo_occurrences (promo_id, occurrence_start, quantity, sold) \
             SELECT DISTINCT f.id, r.occurrence_start, f.quantity, 0 \
             FROM flash_promos f JOIN promo_reservations r ON r.promo_id = f.id \
             WHERE f.id = $1 AND f.quantity <> $2 AND f.daily_window IS NOT NULL \
             AND r.status = 'held' AND r.expires_at > now() \
             ON CONFLICT (promo_id, occurrence_start) DO NOTHING",
        )
        .await?;
    client.execute(&statement, &[&promo_id, &quantity]).await?;
    Ok(())
}

/// Moves the occurrence starting at `from` to the key `to` (an edit moved
/// the start of the occurrence running now, [`Schedule::rekeyed_at`]): its
/// sales row and its live holds, so it keeps its stock instead of starting
/// afresh, and its announcement. Settled reservations keep the start they
/// were taken under.
pub async fn rekey_occurrence(
    client: &impl GenericClient,
    promo_id: i64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<(), DbError> {
    let sales = client
        .prepare_cached(
            "UPDATE promo_occurrences SET occurrence_start = $3 \
             WHERE promo_id = $1 AND occurrence_start = $2",
        )
        .await?;
    client.execute(&sales, &[&promo_id, &from, &to]).await?;
    let holds = client
        .prepare_cached(
            "UPDATE promo_reservations SET occurrence_start = $3 \
             WHERE promo_id = $1 AND occurrence_start = $2 AND status = 'held'",
        )
        .await?;
    client.execute(&holds, &[&promo_id, &from, &to]).await?;
    // Its start was announced under the old key: not to be announced again.
    let announced = client
        .prepare_cached(
            "UPDATE flash_promos SET notified_occurrence = $3 \
             WHERE id = $1 AND notified_occurrence = $2",
        )
        .await?;
    client.execute(&announced, &[&promo_id, &from, &to]).await?;
    Ok(())
}

/// A daily window as stored (the JSON it serializes to), `None` when continuous.
pub fn daily_window_value(window: Option<&DailyWindow>) -> Result<Option<Value>, DbError> {
    window
        .map(serde_json::to_value)
        .transpose()
        .map_err(|error| DbError::Corrupt(format!("daily_window: {error}")))
}

/// Reads a stored daily window back.
pub fn daily_window_from(stored: Option<Value>) -> Result<Option<DailyWindow>, DbError> {
    let Some(stored) = stored else {
        return Ok(None);
    };
    let part = |name: &str| stored.get(name).and_then(Value::as_str).unwrap_or_default();
    DailyWindow::parse(part("start"), part("end"), part("timezone"))
        .map(Some)
        .map_err(|errors| DbError::Corrupt(format!("daily_window {stored}: {errors:?}")))
}
