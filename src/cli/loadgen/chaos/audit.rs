//! After the storm: [`settle`] waits until the API's counters agree with the
//! rows, then [`audit`] checks every invariant straight on the database
//! against the [`Ledger`] of answers: acknowledged holds and sales durable,
//! no unit held twice or sold beyond quantity, no `held` row past expiry,
//! rows and counters in agreement, and nothing written that nobody was told
//! about beyond the answers whose outcome the caller could not know.

use std::time::{Duration, Instant};

use anyhow::ensure;
use serde_json::Value;
use uuid::Uuid;

use super::super::target::Target;
use super::storm::Ledger;
use crate::db::DbPool;

/// Per promo: (quantity, sold column, held rows, completed rows, held rows past expiry).
async fn promo_counts(
    direct: &DbPool,
    promos: &[i64],
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Vec<[i64; 5]>> {
    let client = direct.get().await?;
    let rows = client
        .query(
            "SELECT p.quantity::bigint, p.sold::bigint, \
             count(r.id) FILTER (WHERE r.status = 'held'), \
             count(r.id) FILTER (WHERE r.status = 'completed'), \
             count(r.id) FILTER (WHERE r.status = 'held' AND r.expires_at < $2::timestamptz - interval '2 seconds') \
             FROM flash_promos p LEFT JOIN promo_reservations r ON r.promo_id = p.id \
             WHERE p.id = ANY($1) GROUP BY p.id ORDER BY p.id",
            &[&promos, &now],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| [row.get(0), row.get(1), row.get(2), row.get(3), row.get(4)])
        .collect())
}

/// Waits (bounded) until every promo's API counters match its rows and no
/// hold outlived its expiry; returns the database time it settled at.
pub(super) async fn settle(
    target: &Target,
    direct: &DbPool,
    promos: &[i64],
    hold_seconds: u64,
) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    let deadline = Instant::now() + Duration::from_secs(hold_seconds + 30);
    let started = Instant::now();
    loop {
        let now: chrono::DateTime<chrono::Utc> = direct
            .get()
            .await?
            .query_one("SELECT now()", &[])
            .await?
            .get(0);
        let rows = promo_counts(direct, promos, now).await?;
        let mut agree = rows.iter().all(|[_, _, _, _, stale]| *stale == 0);
        for (promo, [_, sold, held, _, _]) in promos.iter().zip(&rows) {
            let shown = shown_counts(target, *promo).await;
            agree &= shown == Some((*held, *sold));
        }
        if agree || Instant::now() >= deadline {
            let verdict = if agree { "settled" } else { "did NOT settle" };
            println!("{verdict} {:.1?} after the storm", started.elapsed());
            return Ok(now);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A promo's (held, sold) as the API shows them.
async fn shown_counts(target: &Target, promo: i64) -> Option<(i64, i64)> {
    let url = format!("{}/api/promotions/flash-promos/{promo}/", target.url);
    let response = target
        .http
        .get(url)
        .bearer_auth(&target.admin)
        .send()
        .await
        .ok()?;
    let body: Value = response.json().await.ok()?;
    Some((body["held"].as_i64()?, body["sold"].as_i64()?))
}

/// The audit, straight on the database, after the service has stopped.
pub(super) async fn audit(
    direct: &DbPool,
    promos: &[i64],
    ledger: &Ledger,
    settled_at: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let client = direct.get().await?;
    let found = |sql: &'static str, ids: Vec<Uuid>| {
        let client = &client;
        async move {
            let row = client.query_one(sql, &[&ids]).await?;
            anyhow::Ok(row.get::<_, i64>(0))
        }
    };
    let holds = found(
        "SELECT count(*) FROM promo_reservations WHERE reservation_id = ANY($1)",
        ledger.holds.clone(),
    )
    .await?;
    let sales = found(
        "SELECT count(*) FROM promo_reservations WHERE reservation_id = ANY($1) AND status = 'completed'",
        ledger.sales.clone(),
    )
    .await?;
    let (all_rows, completed): (i64, i64) = {
        let row = client
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE status = 'completed') \
                 FROM promo_reservations WHERE promo_id = ANY($1)",
                &[&promos],
            )
            .await?;
        (row.get(0), row.get(1))
    };
    let rows = promo_counts(direct, promos, settled_at).await?;
    let twice: i64 = rows
        .iter()
        .map(|[q, sold, held, _, _]| (held + sold - q).max(0))
        .sum();
    let beyond: i64 = rows
        .iter()
        .map(|[q, sold, _, _, _]| (sold - q).max(0))
        .sum();
    let stale: i64 = rows.iter().map(|row| row[4]).sum();
    let mismatch = rows
        .iter()
        .filter(|[_, sold, _, done, _]| sold != done)
        .count();
    let unexplained_rows = (all_rows - ledger.holds.len() as i64).max(0);
    let unexplained_sales = (completed - ledger.sales.len() as i64).max(0);
    let checks = [
        (format!("acknowledged holds found durable: {holds} of {}", ledger.holds.len()), holds == ledger.holds.len() as i64),
        (format!("acknowledged sales found durable: {sales} of {}", ledger.sales.len()), sales == ledger.sales.len() as i64),
        (format!("units held twice: {twice}"), twice == 0),
        (format!("sold beyond quantity: {beyond}"), beyond == 0),
        (format!("'held' rows past expiry: {stale}"), stale == 0),
        (format!("promos whose rows and sold counter disagree: {mismatch}"), mismatch == 0),
        (
            format!("rows nobody was told about: {unexplained_rows} (outcome unknown to the caller: {})", ledger.unsure_reserves),
            unexplained_rows <= ledger.unsure_reserves as i64,
        ),
        (
            format!("sales nobody was told about: {unexplained_sales} (outcome unknown to the caller: {})", ledger.unsure_completes),
            unexplained_sales <= ledger.unsure_completes as i64,
        ),
    ];
    for (key, count) in &ledger.tally {
        println!("  {key}: {count}");
    }
    let unavailable: usize = ledger
        .tally
        .iter()
        .filter(|(key, _)| key.ends_with(" 503 unavailable"))
        .map(|(_, n)| n)
        .sum();
    let unknown: usize = ledger
        .tally
        .iter()
        .filter(|(key, _)| key.ends_with(" 503 outcome_unknown"))
        .map(|(_, n)| n)
        .sum();
    println!("503s: unavailable {unavailable}, outcome_unknown {unknown}");
    let mut broken = 0;
    for (line, ok) in &checks {
        println!("{} {line}", if *ok { "ok  " } else { "FAIL" });
        broken += usize::from(!ok);
    }
    ensure!(broken == 0, "{broken} invariant(s) broken");
    Ok(())
}
