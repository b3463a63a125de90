//! `loadgen finish`: a campaign of N verified subscribers, written straight
//! into the database (and vacuumed, as autovacuum would have done on a
//! campaign that grew over days), then the time `finish_campaign/` takes to
//! draw, digest the entries and record the proof; only the HTTP call is
//! timed. Each row's entry hash is filled by the table's trigger, as for any
//! entry.

use std::time::Instant;

use anyhow::ensure;
use reqwest::StatusCode;
use serde_json::Value;

use super::target::Target;
use crate::db::DbPool;

/// Loads `subscribers` verified subscribers, then times the draw.
pub(super) async fn finish(
    target: &Target,
    pool: &DbPool,
    subscribers: usize,
) -> anyhow::Result<()> {
    let campaign_id = target.campaign().await?;
    println!("writing {subscribers} verified subscribers into campaign {campaign_id}…");
    let loading = Instant::now();
    let client = pool.get().await?;
    let count = i64::try_from(subscribers)?;
    client
        .execute(
            "INSERT INTO subscribers (campaign_id, email, verified, verified_at, verification_code_hash) \
             SELECT $1::bigint, 'finish-' || $1::bigint || '-' || n || '@example.com', true, now(), \
                    sha256(($1::bigint || '/' || n)::text::bytea) \
             FROM generate_series(1, $2::bigint) n",
            &[&campaign_id, &count],
        )
        .await?;
    client
        .execute(
            "UPDATE campaigns SET subscriber_count = $2, verified_count = $2 WHERE id = $1",
            &[&campaign_id, &count],
        )
        .await?;
    client.batch_execute("VACUUM ANALYZE subscribers").await?;
    println!("loaded and vacuumed in {:.2?}; drawing…", loading.elapsed());
    let started = Instant::now();
    let response = target
        .http
        .post(format!(
            "{}/api/raffles/campaigns/{campaign_id}/finish_campaign/",
            target.url
        ))
        .bearer_auth(&target.admin)
        .send()
        .await?;
    let elapsed = started.elapsed();
    let status = response.status();
    let body: Value = response.json().await?;
    ensure!(status == StatusCode::OK, "finish answered {status}: {body}");
    let winners = body["winners"].as_array().map_or(0, Vec::len);
    println!(
        "finish_campaign over {subscribers} verified subscribers, with the published proof: \
         {elapsed:.2?} ({winners} winner(s), the first {})",
        body["winner"]["email"]
    );
    Ok(())
}
