//! The Prometheus metrics of API.md "Operations": their names, the one
//! process-wide recorder, and a small function per thing that happens, so
//! each call site in the engine reads as one line and names stay in one file.
//!
//! The recorder is `metrics-exporter-prometheus`'s, installed once per
//! process behind a `OnceLock` (tests start many apps in one process; all of
//! them share it) and rendered by our own `GET /metrics` route: the
//! exporter's HTTP listener is not used. Its upkeep (draining histogram
//! samples) runs on one small thread of its own.
//!
//! Labels are `&'static str` wherever the value set is fixed (outcome codes,
//! frame types, actor names), so a hot path records without allocating.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// `{method,route,status}`: every HTTP request answered.
pub const HTTP_REQUESTS: &str = "promo_engine_http_requests_total";
/// `{method,route}`: seconds from request to response head.
pub const HTTP_DURATION: &str = "promo_engine_http_request_duration_seconds";
/// Open WebSocket sessions.
pub const WS_SESSIONS: &str = "promo_engine_ws_sessions";
/// `{type}`: frames sent to WebSocket clients.
pub const WS_FRAMES_SENT: &str = "promo_engine_ws_frames_sent_total";
/// `{actor}`: requests sent to an actor and not yet answered.
pub const MAILBOX_DEPTH: &str = "promo_engine_actor_mailbox_depth";
/// Promos running now.
pub const RUNNING_PROMOS: &str = "promo_engine_running_promos";
/// `{outcome}`: reservations held, completed, cancelled, expired, or refused (by code).
pub const RESERVATIONS: &str = "promo_engine_reservations_total";
/// `{channel}`: flash-promo notifications recorded (`inbox`) and pushed (`push`).
pub const NOTIFICATIONS: &str = "promo_engine_notifications_total";
/// Seconds from a promo start to the last push of its announcement.
pub const NOTIFICATION_FANOUT: &str = "promo_engine_notification_fanout_seconds";
/// Seconds one group-commit write of a promo's stock takes.
pub const DB_WRITE: &str = "promo_engine_db_write_seconds";
/// Emails due and unsent.
pub const OUTBOX_BACKLOG: &str = "promo_engine_outbox_backlog";
/// Emails delivered.
pub const OUTBOX_SENT: &str = "promo_engine_outbox_sent_total";
/// `{kind}`: failed delivery attempts (`transient`, `refused`, `unsendable`).
pub const OUTBOX_FAILURES: &str = "promo_engine_outbox_failures_total";
/// Promos this instance owns (cluster mode).
pub const OWNED_PROMOS: &str = "promo_engine_owned_promos";
/// `{outcome}`: calls forwarded to the owning instance (`answered`,
/// `no_owner`, `timed_out`, `failed`), cluster mode.
pub const FORWARDED: &str = "promo_engine_forwarded_total";

/// How often histogram samples are folded into their buckets.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

const HTTP_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const FANOUT_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
const DB_WRITE_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(install)
}

/// The text exposition of every metric recorded so far.
pub fn render() -> String {
    handle().render()
}

fn install() -> PrometheusHandle {
    let handle = match builder().install_recorder() {
        Ok(handle) => handle,
        Err(error) => {
            // Another recorder got there first (an embedding program): serve
            // an empty exposition rather than fail the service.
            tracing::warn!(%error, "metrics recorder not installed");
            PrometheusBuilder::new().build_recorder().handle()
        }
    };
    describe();
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_INTERVAL);
            upkeep.run_upkeep();
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "no metrics upkeep thread; histograms drain at each scrape");
    }
    handle
}

fn builder() -> PrometheusBuilder {
    let buckets = [
        (HTTP_DURATION, HTTP_BUCKETS),
        (NOTIFICATION_FANOUT, FANOUT_BUCKETS),
        (DB_WRITE, DB_WRITE_BUCKETS),
    ];
    buckets
        .into_iter()
        .fold(PrometheusBuilder::new(), |builder, (name, values)| {
            let matcher = Matcher::Full(name.to_owned());
            // Only an empty bucket list is refused, and none of these is empty.
            match builder.set_buckets_for_metric(matcher, values) {
                Ok(builder) => builder,
                Err(_) => PrometheusBuilder::new(),
            }
        })
}

fn describe() {
    describe_counter!(HTTP_REQUESTS, "HTTP requests answered");
    describe_histogram!(HTTP_DURATION, "HTTP request duration in seconds");
    describe_gauge!(WS_SESSIONS, "Open WebSocket sessions");
    describe_counter!(WS_FRAMES_SENT, "WebSocket frames sent, by type");
    describe_gauge!(
        MAILBOX_DEPTH,
        "Requests sent to an actor and not yet answered (queued or being handled)"
    );
    describe_gauge!(RUNNING_PROMOS, "Flash promos running now");
    describe_counter!(RESERVATIONS, "Reservation outcomes and refusals");
    describe_counter!(NOTIFICATIONS, "Flash-promo notifications, by channel");
    describe_histogram!(NOTIFICATION_FANOUT, "Promo start to last push, seconds");
    describe_histogram!(DB_WRITE, "Group-commit stock write, seconds");
    describe_gauge!(OUTBOX_BACKLOG, "Emails due and unsent");
    describe_counter!(OUTBOX_SENT, "Emails delivered");
    describe_counter!(OUTBOX_FAILURES, "Failed email delivery attempts, by kind");
    describe_gauge!(
        OWNED_PROMOS,
        "Flash promos this instance owns (cluster mode)"
    );
    describe_counter!(
        FORWARDED,
        "Calls forwarded to the owning instance, by outcome"
    );
    // Present from the first scrape, so a rate over them starts at zero.
    gauge!(WS_SESSIONS).increment(0.0);
    gauge!(RUNNING_PROMOS).increment(0.0);
    gauge!(OUTBOX_BACKLOG).increment(0.0);
    counter!(OUTBOX_SENT).increment(0);
    for channel in ["push", "inbox"] {
        counter!(NOTIFICATIONS, "channel" => channel).increment(0);
    }
    for outcome in ["held", "completed", "cancelled", "expired"] {
        counter!(RESERVATIONS, "outcome" => outcome).increment(0);
    }
}

/// One HTTP request answered (labels are interned, see `http::request_metrics`).
pub fn http_request(
    method: &'static str,
    route: &'static str,
    status: &'static str,
    elapsed: Duration,
) {
    counter!(HTTP_REQUESTS, "method" => method, "route" => route, "status" => status).increment(1);
    histogram!(HTTP_DURATION, "method" => method, "route" => route).record(elapsed);
}

/// A WebSocket session opened (`1.0`) or closed (`-1.0`).
pub fn ws_sessions_changed(by: f64) {
    gauge!(WS_SESSIONS).increment(by);
}

/// A frame of `kind` was handed to a client's connection.
pub fn ws_frame_sent(kind: &'static str) {
    counter!(WS_FRAMES_SENT, "type" => kind).increment(1);
}

/// One owner's part of a gauge that several owners add up to (each app in
/// a process that runs several, e.g. the tests, has its own registry):
/// setting it moves the gauge by the difference, dropping it takes the part
/// back out. With one owner it is a plain `set`.
pub struct GaugeShare {
    name: &'static str,
    reported: AtomicUsize,
}

impl GaugeShare {
    /// A share of `name`, at zero.
    pub fn new(name: &'static str) -> GaugeShare {
        GaugeShare {
            name,
            reported: AtomicUsize::new(0),
        }
    }

    /// This owner now counts `count`.
    pub fn set(&self, count: usize) {
        let before = self.reported.swap(count, Ordering::Relaxed);
        gauge!(self.name).increment(count as f64 - before as f64);
    }
}

impl Drop for GaugeShare {
    fn drop(&mut self) {
        self.set(0);
    }
}

/// A reservation ended up as `outcome` (a status, or a refusal's code).
pub fn reservation(outcome: &'static str) {
    counter!(RESERVATIONS, "outcome" => outcome).increment(1);
}

/// A call forwarded to its owner ended with `outcome`.
pub fn forwarded(outcome: &'static str) {
    counter!(FORWARDED, "outcome" => outcome).increment(1);
}

/// `count` notifications recorded (`inbox`) or pushed to a session (`push`).
pub fn notifications(channel: &'static str, count: usize) {
    counter!(NOTIFICATIONS, "channel" => channel).increment(count as u64);
}

/// An announcement's last push happened `elapsed` after the promo's start was taken up.
pub fn notification_fanout(elapsed: Duration) {
    histogram!(NOTIFICATION_FANOUT).record(elapsed);
}

/// One group-commit write took `elapsed`.
pub fn db_write(elapsed: Duration) {
    histogram!(DB_WRITE).record(elapsed);
}

/// `count` emails are due and unsent.
pub fn outbox_backlog(count: i64) {
    gauge!(OUTBOX_BACKLOG).set(count as f64);
}

/// `count` emails were delivered.
pub fn outbox_sent(count: usize) {
    counter!(OUTBOX_SENT).increment(count as u64);
}

/// One delivery attempt failed as `kind`.
pub fn outbox_failure(kind: &'static str) {
    counter!(OUTBOX_FAILURES, "kind" => kind).increment(1);
}

/// Counts a request to `actor` in its depth gauge for as long as it lives:
/// create it before the `send`, drop it when the answer is in.
///
/// actix's `Addr` cannot tell how many messages wait in a mailbox, so the
/// gauge counts what can be known honestly at the sending side: requests
/// sent and not yet answered (waiting in the mailbox or being handled).
pub struct Awaiting {
    actor: &'static str,
}

impl Awaiting {
    /// A request to `actor` is about to be sent.
    pub fn start(actor: &'static str) -> Awaiting {
        gauge!(MAILBOX_DEPTH, "actor" => actor).increment(1.0);
        Awaiting { actor }
    }
}

impl Drop for Awaiting {
    fn drop(&mut self) {
        gauge!(MAILBOX_DEPTH, "actor" => self.actor).decrement(1.0);
    }
}

/// Awaits `answer` (a `send` to `actor`) with it counted as [`Awaiting`].
pub async fn awaiting<F: std::future::Future>(actor: &'static str, answer: F) -> F::Output {
    let _counted = Awaiting::start(actor);
    answer.await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    use metrics_exporter_prometheus::PrometheusBuilder;

    /// The value of the sample line that starts with `series` in `text`.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
    }

    /// Runs `record` against a recorder of its own and renders what it kept.
    fn recorded(record: impl FnOnce()) -> String {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, record);
        handle.render()
    }

    #[test]
    fn a_request_is_counted_in_the_depth_gauge_until_its_answer_or_its_drop() {
        let depth = format!("{MAILBOX_DEPTH}{{actor=\"promo\"}}");
        let text = recorded(|| {
            let first = Awaiting::start("promo");
            let second = Awaiting::start("promo");
            drop(first);
            std::mem::forget(second);
        });
        assert_eq!(sample(&text, &depth), Some(1.0), "{text}");
        let text = recorded(|| {
            // A request whose future is dropped unanswered (a timeout) is
            // taken out as well.
            let mut answer = Box::pin(awaiting("promo", std::future::pending::<()>()));
            let waker = futures_util::task::noop_waker();
            let mut context = std::task::Context::from_waker(&waker);
            assert!(answer.as_mut().poll(&mut context).is_pending());
            drop(answer);
        });
        assert_eq!(sample(&text, &depth), Some(0.0), "{text}");
    }

    #[test]
    fn gauge_shares_add_up_and_a_dropped_share_leaves_the_gauge() {
        let text = recorded(|| {
            let first = GaugeShare::new(RUNNING_PROMOS);
            let second = GaugeShare::new(RUNNING_PROMOS);
            first.set(3);
            second.set(4);
            first.set(1);
            drop(second);
            // Still owned when the gauge is read.
            std::mem::forget(first);
        });
        assert_eq!(sample(&text, RUNNING_PROMOS), Some(1.0), "{text}");
    }
}
