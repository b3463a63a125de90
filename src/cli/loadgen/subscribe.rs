//! `loadgen subscribe`: N distinct addresses entering one new raffle campaign
//! with C requests in flight: durable entries per second through HTTP, then
//! how long the mailer takes to deliver their confirmation emails (the
//! outbox backlog drained back to where it was).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::json;

use super::report::report_created;
use super::target::Target;
use crate::db::{self, DbPool};

/// Enters `entries` addresses, then waits (bounded) for their emails to leave.
pub(super) async fn subscribe(
    target: &Target,
    pool: &DbPool,
    entries: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let campaign_id = target.campaign().await?;
    let backlog_before = db::outbox::backlog(pool).await?;
    let next = Arc::new(AtomicUsize::new(0));
    println!("entering {entries} addresses in campaign {campaign_id} with {concurrency} requests in flight…");
    let path = format!(
        "{}/api/raffles/campaigns/{campaign_id}/add_subscriber/",
        target.url
    );
    let started = Instant::now();
    let workers = (0..concurrency).map(|_| {
        let (next, path) = (next.clone(), &path);
        async move {
            let mut samples = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= entries {
                    break samples;
                }
                let email = format!("loadgen-{}-{index}@example.com", target.tag);
                let sent = Instant::now();
                let status = target
                    .http
                    .post(path)
                    .json(&json!({"email": email, "data": {"n": index}}))
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
    report_created("add_subscriber", "entries", &samples, elapsed);
    let drain_deadline = Instant::now() + Duration::from_secs(300);
    let mut backlog = db::outbox::backlog(pool).await?;
    while backlog > backlog_before && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        backlog = db::outbox::backlog(pool).await?;
    }
    println!(
        "confirmation emails delivered {:.2?} after the first entry (outbox backlog now {backlog})",
        started.elapsed()
    );
    Ok(())
}
