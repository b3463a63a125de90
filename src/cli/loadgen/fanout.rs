//! `loadgen fanout`: S shoppers, each with an open WebSocket session; a promo
//! starts; how long until every session has its `promo.notification`, and
//! the service's memory per idle session.
//!
//! With several `--url`s the sessions are spread round-robin over them and
//! the promo is created through the first, so the figures include the
//! cluster's delivery to sessions held by other instances; with several
//! `--server-pid`s the memory is the sum of those processes'. The sessions
//! themselves are opened by [`super::sessions`], in helper processes past
//! [`Plan::sessions_per_process`].

use std::time::{Duration, SystemTime};

use anyhow::ensure;
use serde_json::json;
use tokio::sync::mpsc;

use super::report::{percentile, resident_kib};
use super::sessions::open_sessions;
use super::target::Target;
use crate::db::DbPool;

/// What to run.
#[derive(Debug)]
pub(super) struct Plan {
    /// Eligible shoppers, each with one open session.
    pub(super) sessions: usize,
    /// The services' process ids, whose resident memory is summed.
    pub(super) server_pids: Vec<u32>,
    /// Sessions held by this process, and by each helper process.
    pub(super) sessions_per_process: usize,
    /// The database the helper processes are started with.
    pub(super) database_url: String,
}

/// Opens the plan's sessions, starts a promo, times every notification.
pub(super) async fn fanout(target: &Target, pool: &DbPool, plan: Plan) -> anyhow::Result<()> {
    let Plan {
        sessions,
        server_pids,
        sessions_per_process,
        database_url,
    } = plan;
    println!("setting up {sessions} shoppers…");
    let (segment, product, tokens) = set_up(target, pool, sessions).await?;
    let rss_before = total_resident_kib(&server_pids);
    println!("opening {sessions} WebSocket sessions…");
    // Held to the end: dropping it stops the helper processes.
    let mut open =
        open_sessions(&target.urls, &tokens, sessions_per_process, &database_url).await?;
    let opened = open.opened;
    report_memory(&server_pids, rss_before, opened);
    let start = chrono::Utc::now() - chrono::Duration::seconds(1);
    let started = SystemTime::now();
    target
        .create(
            "/api/promotions/flash-promos/",
            json!({"product_id": product, "promo_price": "50.00", "segment_ids": [segment],
                   "start_time": start.to_rfc3339(), "end_time": (start + chrono::Duration::hours(1)).to_rfc3339(),
                   "quantity": 1, "max_distance_km": 2.0}),
        )
        .await?;
    let latencies = latencies_since(started, &mut open.arrivals, opened).await;
    println!(
        "notified {} of {opened} connected eligible shoppers; since the create request: p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );
    ensure!(
        latencies.len() == opened,
        "some sessions were not notified within 60 s"
    );
    Ok(())
}

/// A segment, a store at (0, 0) with a product, and `sessions` shoppers of
/// the segment placed there: the segment's id, the product's, the tokens.
async fn set_up(
    target: &Target,
    pool: &DbPool,
    sessions: usize,
) -> anyhow::Result<(i64, i64, Vec<String>)> {
    let segment = target
        .create(
            "/api/users/user-segments/",
            json!({"name": format!("fanout {}", target.tag)}),
        )
        .await?;
    let store = target
        .create(
            "/api/market/stores/",
            json!({"name": format!("fanout {}", target.tag), "latitude": 0.0, "longitude": 0.0}),
        )
        .await?;
    let product = target
        .create(
            "/api/market/products/",
            json!({"store_id": store, "name": "item", "regular_price": "100.00"}),
        )
        .await?;
    let tokens = target.shoppers(pool, sessions, segment).await?;
    Ok((segment, product, tokens))
}

/// Up to `expected` arrivals within 60 s, as sorted latencies from `started`.
async fn latencies_since(
    started: SystemTime,
    arrivals: &mut mpsc::UnboundedReceiver<SystemTime>,
    expected: usize,
) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(expected);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while latencies.len() < expected {
        match tokio::time::timeout_at(deadline, arrivals.recv()).await {
            Ok(Some(at)) => latencies.push(at.duration_since(started).unwrap_or_default()),
            _ => break,
        }
    }
    latencies.sort_unstable();
    latencies
}

/// Prints the servers' memory before and with the idle sessions, and per
/// session, when every `--server-pid` could be read both times.
fn report_memory(pids: &[u32], before: Option<u64>, opened: usize) {
    if let (Some(before), Some(after)) = (before, total_resident_kib(pids)) {
        println!(
            "server memory{}: {} MiB before, {} MiB with {opened} idle sessions = {:.1} KiB per session",
            summed_over(pids.len()),
            before / 1024,
            after / 1024,
            (after.saturating_sub(before)) as f64 / opened.max(1) as f64
        );
    }
}

/// The summed resident memory of `pids`, in KiB; none unless every one reads.
fn total_resident_kib(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|pid| resident_kib(*pid)).sum()
}

/// How the memory line names a sum over several processes.
fn summed_over(processes: usize) -> String {
    if processes > 1 {
        format!(" (sum of {processes} processes)")
    } else {
        String::new()
    }
}
