//! What the scenarios report: counts by status, the rate and latency
//! percentiles of a run ([`report`]), and a process's resident memory
//! ([`resident_kib`]).

use std::time::Duration;

/// Prints counts by status, the rate, and latency percentiles.
pub(super) fn report(name: &str, samples: &[(u16, Duration)], elapsed: Duration) {
    let mut latencies: Vec<Duration> = samples.iter().map(|(_, latency)| *latency).collect();
    latencies.sort_unstable();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let mut statuses: Vec<u16> = samples.iter().map(|(status, _)| *status).collect();
    statuses.sort_unstable();
    statuses.dedup();
    let counts: Vec<String> = statuses
        .iter()
        .map(|status| {
            format!(
                "{status}: {}",
                samples.iter().filter(|(s, _)| s == status).count()
            )
        })
        .collect();
    println!(
        "{name}: {} requests in {elapsed:.2?} = {:.0}/s [{}]; latency p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        samples.len(),
        samples.len() as f64 / elapsed.as_secs_f64(),
        counts.join(", "),
        percentile(0.50),
        percentile(0.99),
        latencies.last().copied().unwrap_or_default(),
    );
}

/// The resident memory of a process, in KiB (Linux).
pub(super) fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
