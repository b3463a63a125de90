//! `loadgen reserve`: S shoppers × P running promos, every pair reserved once
//! by C concurrent clients: durable reservations per second through HTTP and
//! PostgreSQL, then a check that no promo has more holds than units.
//!
//! With several `--url`s (instances of one cluster) the reservations go
//! round-robin over them: shopper `s` reserves promo `p` through URL
//! `(s + p) mod n`, so every promo is reserved through every instance in equal
//! shares, most of them ones that do not own it ("through three instances vs
//! one").

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::ensure;
use futures_util::future::join_all;
use serde_json::json;

use super::report::report_created;
use super::target::Target;
use crate::db::DbPool;

/// Reserves every (shopper, promo) pair once; fails if a promo was oversold.
pub(super) async fn reserve(
    target: &Target,
    pool: &DbPool,
    shoppers: usize,
    promos: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    println!("setting up {promos} promos of {shoppers} units and {shoppers} shoppers…");
    let (segment, promo_ids) = target.running_promos(promos, shoppers, 0.0).await?;
    let tokens = target.shoppers(pool, shoppers, segment).await?;
    let total = tokens.len() * promo_ids.len();
    let next = Arc::new(AtomicUsize::new(0));
    let endpoints: Vec<String> = target
        .urls
        .iter()
        .map(|url| format!("{url}/api/promotions/promo-reservations/"))
        .collect();
    println!("reserving {total} units with {concurrency} requests in flight…");
    if endpoints.len() > 1 {
        println!("  round-robin over {} URLs", endpoints.len());
    }
    let started = Instant::now();
    let workers = (0..concurrency).map(|_| {
        let next = next.clone();
        let (tokens, promo_ids, endpoints) = (&tokens, &promo_ids, &endpoints);
        async move {
            let mut samples = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= total {
                    break samples;
                }
                let (shopper, promo) = (index / promo_ids.len(), index % promo_ids.len());
                let (token, promo_id) = (&tokens[shopper], promo_ids[promo]);
                let sent = Instant::now();
                let status = target
                    .http
                    .post(&endpoints[(shopper + promo) % endpoints.len()])
                    .bearer_auth(token)
                    .json(&json!({"promo_id": promo_id}))
                    .send()
                    .await
                    .map(|response| response.status().as_u16())
                    .unwrap_or(0);
                samples.push((status, sent.elapsed()));
            }
        }
    });
    let samples: Vec<(u16, Duration)> = join_all(workers).await.into_iter().flatten().collect();
    let elapsed = started.elapsed();
    report_created("reserve", "reservations", &samples, elapsed);
    let client = pool.get().await?;
    let worst: i64 = client
        .query_one(
            "SELECT COALESCE(max(held), 0) FROM (SELECT count(*) AS held FROM promo_reservations \
             WHERE promo_id = ANY($1) AND status = 'held' GROUP BY promo_id) AS per_promo",
            &[&promo_ids],
        )
        .await?
        .get(0);
    println!("most holds on one promo: {worst} (units per promo: {shoppers})");
    ensure!(worst <= shoppers as i64, "oversold");
    Ok(())
}
