//! What the scenarios report: a run's counts by status, rate and latency
//! percentiles ([`Summary`], printed by [`report`]), and a process's
//! resident memory ([`resident_kib`]).

use std::collections::BTreeMap;
use std::time::Duration;

/// One answer: its status (0 for a transport error) and how long it took.
pub(super) type Sample = (u16, Duration);

/// A run summed up.
#[derive(Debug)]
pub(super) struct Summary {
    /// Answers received (of any status).
    pub(super) requests: usize,
    /// How long the run took.
    pub(super) elapsed: Duration,
    /// Latency percentiles and the slowest answer.
    pub(super) p50: Duration,
    pub(super) p99: Duration,
    pub(super) max: Duration,
    /// Answers by status, in status order.
    pub(super) statuses: BTreeMap<u16, usize>,
}

impl Summary {
    /// Sums up `samples` taken over `elapsed`.
    pub(super) fn of(samples: &[Sample], elapsed: Duration) -> Summary {
        let mut latencies: Vec<Duration> = samples.iter().map(|(_, latency)| *latency).collect();
        latencies.sort_unstable();
        let mut statuses = BTreeMap::new();
        for (status, _) in samples {
            *statuses.entry(*status).or_default() += 1;
        }
        Summary {
            requests: samples.len(),
            elapsed,
            p50: percentile(&latencies, 0.50),
            p99: percentile(&latencies, 0.99),
            max: latencies.last().copied().unwrap_or_default(),
            statuses,
        }
    }

    /// Answers per second.
    pub(super) fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// Whether every answer was `status`.
    pub(super) fn all(&self, status: u16) -> bool {
        self.statuses.keys().all(|seen| *seen == status)
    }
}

/// Prints counts by status, the rate, and latency percentiles.
pub(super) fn report(name: &str, samples: &[Sample], elapsed: Duration) {
    print_summary(name, &Summary::of(samples, elapsed));
}

/// [`report`], then how many `201 Created` answers came back and their rate
/// (each one a durable write), as `durable <what>: …`.
pub(super) fn report_created(name: &str, what: &str, samples: &[Sample], elapsed: Duration) {
    report(name, samples, elapsed);
    let created = samples.iter().filter(|(status, _)| *status == 201).count();
    println!(
        "durable {what}: {created} in {elapsed:.2?} = {:.0}/s",
        created as f64 / elapsed.as_secs_f64()
    );
}

/// Prints a summary as [`report`] does.
pub(super) fn print_summary(name: &str, summary: &Summary) {
    let counts: Vec<String> = summary
        .statuses
        .iter()
        .map(|(status, count)| format!("{status}: {count}"))
        .collect();
    println!(
        "{name}: {} requests in {:.2?} = {:.0}/s [{}]; latency p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        summary.requests,
        summary.elapsed,
        summary.rate(),
        counts.join(", "),
        summary.p50,
        summary.p99,
        summary.max,
    );
}

/// The `p` quantile (0..=1) of sorted latencies; zero when there are none.
pub(super) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(index).copied().unwrap_or_default()
}

/// `n` rounded, with a comma between thousands: `24,100`.
pub(super) fn grouped(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The resident memory of a process, in KiB (Linux).
pub(super) fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped_with_commas() {
        assert_eq!(grouped(0.0), "0");
        assert_eq!(grouped(999.4), "999");
        assert_eq!(grouped(24_100.0), "24,100");
        assert_eq!(grouped(1_234_567.0), "1,234,567");
    }

    #[test]
    fn a_summary_counts_statuses_and_reads_percentiles_off_the_sorted_latencies() {
        let samples: Vec<Sample> = (1..=100)
            .map(|ms| (if ms == 7 { 503 } else { 200 }, Duration::from_millis(ms)))
            .collect();
        let summary = Summary::of(&samples, Duration::from_secs(2));
        assert_eq!(summary.requests, 100);
        assert_eq!(summary.rate(), 50.0);
        assert_eq!(summary.p50, Duration::from_millis(51));
        assert_eq!(summary.p99, Duration::from_millis(100));
        assert_eq!(summary.max, Duration::from_millis(100));
        assert_eq!(summary.statuses.get(&503), Some(&1));
        assert!(!summary.all(200));
    }
}
