//! `loadgen eligible`: P running promos around one spot and C shoppers asking
//! `GET /api/promotions/flash-promos/eligible/` (default page) for a fixed
//! time: requests per second and latency percentiles.
//!
//! `--against-healthz` measures `GET /healthz` too, with the same clients on
//! the same server for the same time, and prints the ratio of the two rates:
//! a figure that means something on a machine whose load changes while it
//! runs. The two alternate in one-second rounds (healthz, eligible, eligible,
//! healthz, …) rather than running one block after the other, so a compile
//! that starts or ends mid-run slows both alike; each pair of rounds
//! reverses the order of the one before, so a steady drift does too.
//!
//! The generator shares the cores with the service: each client keeps one
//! connection alive, the URLs and `Authorization` headers are built once,
//! bodies are drained without being collected or parsed (one answer is
//! parsed, before measuring, for the count it lists), and each request costs
//! one sample pushed onto a vector.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::future::join_all;
use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::{Client, Url};
use serde_json::Value;

use super::report::{grouped, print_summary, report, Sample, Summary};
use super::target::Target;
use crate::db::DbPool;

/// One round of `--against-healthz`: short, so both paths see the same
/// background load; long against a round's ramp-up and tail (one request
/// per client, about a millisecond).
const ROUND: Duration = Duration::from_secs(1);

/// What to measure and for how long.
#[derive(Debug, Clone, Copy)]
pub(super) struct Plan {
    /// Running promos to set up.
    pub(super) promos: usize,
    /// Concurrent clients, each its own shopper.
    pub(super) concurrency: usize,
    /// How long to measure each path.
    pub(super) duration: Duration,
    /// Whether to measure `/healthz` too and print the ratio.
    pub(super) against_healthz: bool,
}

/// Sets up the promos and shoppers, then measures as `plan` says.
pub(super) async fn eligible(target: &Target, pool: &DbPool, plan: Plan) -> anyhow::Result<()> {
    let Plan {
        promos,
        concurrency,
        duration,
        against_healthz,
    } = plan;
    println!("setting up {promos} running promos…");
    let setting_up = Instant::now();
    let (segment, _) = target.running_promos(promos, 10, 1.5).await?;
    let tokens = target.shoppers(pool, concurrency, segment).await?;
    println!(
        "{promos} promos and {concurrency} shoppers set up in {:.1?}",
        setting_up.elapsed()
    );
    let clients = Clients::new(target, &tokens)?;
    let listed = clients.count_listed().await?;
    if against_healthz {
        compare(&clients, duration).await;
    } else {
        println!("asking eligible/ with {concurrency} clients for {duration:?}…");
        let (samples, elapsed) = clients.run(&clients.eligible, duration).await;
        report("eligible", &samples, elapsed);
    }
    println!("each answer listed {listed} eligible promos");
    Ok(())
}

/// Alternating rounds of `/healthz` and `eligible/`, `duration` of each; prints
/// both and their ratio.
async fn compare(clients: &Clients<'_>, duration: Duration) {
    let rounds = duration.as_secs().max(1);
    println!(
        "asking eligible/ and /healthz with {} clients, {rounds} rounds of {ROUND:?} each, alternating…",
        clients.auths.len()
    );
    let mut eligible: (Vec<Sample>, Duration) = Default::default();
    let mut healthz: (Vec<Sample>, Duration) = Default::default();
    for round in 0..2 * rounds {
        let healthz_first = round / 2 % 2 == 0;
        let (url, totals) = if (round % 2 == 0) == healthz_first {
            (&clients.healthz, &mut healthz)
        } else {
            (&clients.eligible, &mut eligible)
        };
        let (samples, elapsed) = clients.run(url, ROUND).await;
        totals.0.extend(samples);
        totals.1 += elapsed;
    }
    let eligible = Summary::of(&eligible.0, eligible.1);
    let healthz = Summary::of(&healthz.0, healthz.1);
    print_summary("eligible", &eligible);
    print_summary("healthz", &healthz);
    println!(
        "eligible/: {} req/s p50 {} p99 {}; /healthz: {} req/s p50 {} p99 {}; ratio {:.1} %",
        grouped(eligible.rate()),
        millis(eligible.p50),
        millis(eligible.p99),
        grouped(healthz.rate()),
        millis(healthz.p50),
        millis(healthz.p99),
        100.0 * eligible.rate() / healthz.rate(),
    );
    if !eligible.all(200) || !healthz.all(200) {
        println!("not every answer was 200: see the counts above");
    }
}

/// `1.84 ms`.
fn millis(latency: Duration) -> String {
    format!("{:.2} ms", latency.as_secs_f64() * 1e3)
}

/// The measuring clients: one shopper each, sharing one connection pool.
struct Clients<'a> {
    http: &'a Client,
    eligible: Url,
    healthz: Url,
    /// Each client's `Authorization: Bearer …`. Sent to `/healthz` too, so
    /// the two requests differ only in their path.
    auths: Vec<HeaderValue>,
}

impl<'a> Clients<'a> {
    fn new(target: &'a Target, tokens: &[String]) -> anyhow::Result<Clients<'a>> {
        let auths = tokens
            .iter()
            .map(|token| {
                let mut auth = HeaderValue::from_str(&format!("Bearer {token}"))?;
                auth.set_sensitive(true);
                anyhow::Ok(auth)
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Clients {
            http: &target.http,
            eligible: Url::parse(&format!(
                "{}/api/promotions/flash-promos/eligible/",
                target.url
            ))?,
            healthz: Url::parse(&format!("{}/healthz", target.url))?,
            auths,
        })
    }

    /// One `eligible/` from every client (their connections open, unmeasured):
    /// how many promos the first answer listed.
    async fn count_listed(&self) -> anyhow::Result<u64> {
        let asks = self.auths.iter().map(|auth| async move {
            let response = self
                .http
                .get(self.eligible.clone())
                .header(AUTHORIZATION, auth.clone())
                .send()
                .await?;
            anyhow::Ok(response.json::<Value>().await?)
        });
        let answers = join_all(asks).await;
        let first = answers.into_iter().next().context("no clients")??;
        Ok(first["count"].as_u64().unwrap_or(0))
    }

    /// Every client asks `url` back to back for `length`: the samples, and
    /// how long until the last answer came.
    async fn run(&self, url: &Url, length: Duration) -> (Vec<Sample>, Duration) {
        let started = Instant::now();
        let until = started + length;
        let clients = self
            .auths
            .iter()
            .map(|auth| self.ask_until(url, auth, until));
        let samples = join_all(clients).await.into_iter().flatten().collect();
        (samples, started.elapsed())
    }

    /// One client's loop: a request, its body drained, a sample; until `until`.
    async fn ask_until(&self, url: &Url, auth: &HeaderValue, until: Instant) -> Vec<Sample> {
        let mut samples = Vec::new();
        loop {
            let sent = Instant::now();
            if sent >= until {
                return samples;
            }
            let answer = self
                .http
                .get(url.clone())
                .header(AUTHORIZATION, auth.clone())
                .send()
                .await;
            let status = match answer {
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    while let Ok(Some(_)) = response.chunk().await {}
                    status
                }
                Err(_) => 0,
            };
            samples.push((status, sent.elapsed()));
        }
    }
}
