//! What the flood scenarios (`flood-login`, `flood-ws`: one abusive caller
//! against everyone else, API.md "Load that one caller can cause") share:
//! counts by status, the loopback-only admin sign-in, the server's memory
//! sampled from `/proc/PID/status` every 100 ms, and the measuring client
//! whose latency is the others' experience.
//!
//! Every loop is bounded in count and time, and only the `--url` given (which
//! must be a loopback address) is targeted.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use reqwest::Client;

use super::report::{percentile, resident_kib};
use super::target::sign_in_admin;
use crate::config::Config;

/// Counts by status (or error-frame code).
pub(super) type Counts = Arc<Mutex<BTreeMap<String, u64>>>;

/// Adds one to `key`.
pub(super) fn bump(counts: &Counts, key: String) {
    let mut counts = counts
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    *counts.entry(key).or_default() += 1;
}

/// `key: n, …` in key order.
pub(super) fn show(counts: &Counts) -> String {
    let counts = counts
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let parts: Vec<String> = counts
        .iter()
        .map(|(key, n)| format!("{key}: {n}"))
        .collect();
    parts.join(", ")
}

/// Checks the target is this machine and signs the admin in: the token.
pub(super) async fn admin_token(config: &Config, url: &str) -> anyhow::Result<String> {
    let parsed = url::Url::parse(url).context("--url must be a URL")?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    ensure!(loopback, "flood scenarios only target loopback addresses");
    sign_in_admin(&Client::new(), config, url).await
}

/// Samples the server's RSS (KiB) until `stop`; returns the largest seen.
pub(super) fn sample_rss(
    pid: Option<u32>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Option<u64>> {
    tokio::spawn(async move {
        let pid = pid?;
        let mut most = 0;
        while !stop.load(Ordering::Relaxed) {
            most = most.max(resident_kib(pid).unwrap_or(0));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(most)
    })
}

/// Latencies and non-2xx count of one client calling `path` until `stop`.
pub(super) async fn measure(
    http: Client,
    url: String,
    token: String,
    stop: Arc<AtomicBool>,
) -> (Vec<Duration>, u64, u64) {
    let (mut latencies, mut failed, mut unavailable) = (Vec::new(), 0, 0);
    while !stop.load(Ordering::Relaxed) && latencies.len() < 1_000_000 {
        let started = Instant::now();
        let answer = http.get(&url).bearer_auth(&token).send().await;
        latencies.push(started.elapsed());
        match answer.map(|response| response.status()) {
            Ok(status) if status.is_success() => {}
            Ok(status) if status.as_u16() == 503 => {
                failed += 1;
                unavailable += 1
            }
            _ => failed += 1,
        }
    }
    (latencies, failed, unavailable)
}

/// `N requests, p50 …, p99 …, max …` of these latencies.
pub(super) fn percentiles(mut latencies: Vec<Duration>) -> String {
    latencies.sort_unstable();
    format!(
        "{} requests, p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    )
}

/// The server's memory before and at most during a flood, if sampled.
pub(super) fn print_rss(before: Option<u64>, most: Option<u64>) {
    if let (Some(before), Some(most)) = (before, most) {
        println!(
            "server RSS: {} MiB before, max {} MiB during",
            before / 1024,
            most / 1024
        );
    }
}
