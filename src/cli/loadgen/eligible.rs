//! `loadgen eligible`: P running promos around one spot and C shoppers asking
//! `GET /api/promotions/flash-promos/eligible/` (default page) for a fixed
//! time: requests per second and latency percentiles.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::Value;

use super::report::report;
use super::target::Target;
use crate::db::DbPool;

/// Asks `eligible/` from `concurrency` shoppers for `duration`.
pub(super) async fn eligible(
    target: &Target,
    pool: &DbPool,
    promos: usize,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<()> {
    println!("setting up {promos} running promos…");
    let (segment, _) = target.running_promos(promos, 10, 1.5).await?;
    let tokens = target.shoppers(pool, concurrency, segment).await?;
    println!("asking eligible/ with {concurrency} clients for {duration:?}…");
    let started = Instant::now();
    let workers = tokens.iter().map(|token| async move {
        let mut samples = Vec::new();
        let mut listed = 0;
        while started.elapsed() < duration {
            let sent = Instant::now();
            let response = target
                .http
                .get(format!(
                    "{}/api/promotions/flash-promos/eligible/",
                    target.url
                ))
                .bearer_auth(token)
                .send()
                .await;
            let status = match response {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body = response.bytes().await.unwrap_or_default();
                    if listed == 0 {
                        // Parse one answer only: the client's JSON work is not what is measured.
                        let body: Value = serde_json::from_slice(&body).unwrap_or_default();
                        listed = body["count"].as_u64().unwrap_or(0);
                    }
                    status
                }
                Err(_) => 0,
            };
            samples.push((status, sent.elapsed()));
        }
        (samples, listed)
    });
    let results = join_all(workers).await;
    let listed = results.first().map_or(0, |(_, listed)| *listed);
    let samples: Vec<(u16, Duration)> = results
        .into_iter()
        .flat_map(|(samples, _)| samples)
        .collect();
    report("eligible", &samples, started.elapsed());
    println!("each answer listed {listed} eligible promos");
    Ok(())
}
