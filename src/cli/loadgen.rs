//! `promo-engine loadgen`: drives a running service over real HTTP and reports
//! throughput and latency.
//!
//! - `reserve`: S shoppers × P running promos, every pair reserved once by C
//!   concurrent clients: durable reservations per second through HTTP and
//!   PostgreSQL, then a check that no promo has more holds than units.
//! - `fanout`: S shoppers, each with an open WebSocket session; a promo
//!   starts; how long until every session has its notification, and the
//!   service's memory per idle session.
//! - `eligible`: P running promos around one spot and C clients asking
//!   `eligible/` for a fixed time: requests per second and latency percentiles.
//! - `subscribe`: N distinct addresses entering one new raffle campaign with C
//!   requests in flight: durable entries per second through HTTP, then how
//!   long the mailer takes to deliver their confirmation emails.
//! - `finish`: a campaign of N verified subscribers (written straight into
//!   the database), then the time `finish_campaign/` takes to draw.
//! - `flood-login`, `flood-ws`: one abusive caller against everyone else
//!   (see [`super::flood`]).
//! - `chaos`: an audited faulted storm against a service it starts itself
//!   behind a fault-injecting proxy (see `chaos.rs`).
//!
//! It sets up its own data: stores, products, a segment and promos through the
//! admin API (`ADMIN_USERNAME`/`ADMIN_PASSWORD`), and shoppers with tokens
//! straight into `DATABASE_URL` (hashing a password per shopper would dominate),
//! registered with the service through the real `PATCH me/`. Every request loop
//! is bounded in count and time, and only targets the `--url` given.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use futures_util::future::join_all;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use crate::config::Config;
use crate::db::{self, DbPool};

// A child module, so the storm reuses `Target` and its set-up steps as they are.
#[path = "chaos.rs"]
mod chaos;

/// Which load to generate.
#[derive(Debug, clap::Subcommand)]
pub enum Scenario {
    /// Durable reservations per second through HTTP.
    Reserve {
        /// The service's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Shoppers to create.
        #[arg(long, default_value_t = 2_000)]
        shoppers: usize,
        /// Running promos to spread them over (each pair is reserved once).
        #[arg(long, default_value_t = 5)]
        promos: usize,
        /// Requests in flight.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// Notification fan-out: open WebSocket sessions for eligible shoppers,
    /// start a promo, time how long until every session has its notification.
    Fanout {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Eligible shoppers, each with one open session.
        #[arg(long, default_value_t = 10_000)]
        sessions: usize,
        /// The service's process id, to report its memory per idle session.
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// Latency of `eligible/` (default page of 10) with many running promos.
    Eligible {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Running promos to create around the shoppers.
        #[arg(long, default_value_t = 1_000)]
        promos: usize,
        /// Concurrent clients.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// How long to measure, in seconds (at most 300).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Raffle entries per second through HTTP (run the service with
    /// `RATE_LIMIT_SUBSCRIBE_PER_MINUTE=0`: every request comes from one address).
    Subscribe {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Distinct addresses entering the campaign.
        #[arg(long, default_value_t = 20_000)]
        entries: usize,
        /// Requests in flight.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// The draw over a large campaign.
    Finish {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Verified subscribers in the campaign.
        #[arg(long, default_value_t = 1_000_000)]
        subscribers: usize,
    },
    /// Wrong Basic passwords from many connections while a token client
    /// measures its latency (and the server's memory is sampled).
    FloodLogin {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Flooding connections (at most 5,000).
        #[arg(long, default_value_t = 500)]
        connections: usize,
        /// How long to flood, in seconds (at most 120).
        #[arg(long, default_value_t = 15)]
        seconds: u64,
        /// The service's process id, to sample its resident memory.
        #[arg(long)]
        server_pid: Option<u32>,
        /// Send from 253 loopback addresses instead of one.
        #[arg(long)]
        spread: bool,
    },
    /// One WebSocket writing reserve frames as fast as it can while REST
    /// clients list stores.
    FloodWs {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Reserve frames to write (at most 100,000).
        #[arg(long, default_value_t = 20_000)]
        frames: usize,
        /// REST clients calling `GET /api/market/stores/` meanwhile.
        #[arg(long, default_value_t = 50)]
        rest_clients: usize,
        /// The service's process id, to sample its resident memory.
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// An audited faulted storm: starts `serve` itself behind a fault proxy
    /// on a fresh database, then audits the database (exit 1 if broken).
    Chaos(chaos::ChaosArgs),
}

/// Runs a scenario against the service at its `--url`.
pub async fn run(config: &Config, pool: &DbPool, scenario: Scenario) -> anyhow::Result<()> {
    match scenario {
        Scenario::Reserve {
            url,
            shoppers,
            promos,
            concurrency,
        } => {
            let target = Target::connect(config, url).await?;
            reserve(&target, pool, shoppers, promos.max(1), concurrency.max(1)).await
        }
        Scenario::Fanout {
            url,
            sessions,
            server_pid,
        } => {
            let target = Target::connect(config, url).await?;
            fanout(&target, pool, sessions.clamp(1, 100_000), server_pid).await
        }
        Scenario::Eligible {
            url,
            promos,
            concurrency,
            seconds,
        } => {
            let target = Target::connect(config, url).await?;
            let duration = Duration::from_secs(seconds.clamp(1, 300));
            eligible(&target, pool, promos.max(1), concurrency.max(1), duration).await
        }
        Scenario::Subscribe {
            url,
            entries,
            concurrency,
        } => {
            let target = Target::connect(config, url).await?;
            subscribe(
                &target,
                pool,
                entries.clamp(1, 10_000_000),
                concurrency.max(1),
            )
            .await
        }
        Scenario::Finish { url, subscribers } => {
            let target = Target::connect(config, url).await?;
            finish(&target, pool, subscribers.clamp(1, 50_000_000)).await
        }
        Scenario::FloodLogin {
            url,
            connections,
            seconds,
            server_pid,
            spread,
        } => {
            let (connections, seconds) = (connections.clamp(1, 5_000), seconds.clamp(1, 120));
            let url = url.trim_end_matches('/');
            super::flood::login(config, url, connections, seconds, server_pid, spread).await
        }
        Scenario::FloodWs {
            url,
            frames,
            rest_clients,
            server_pid,
        } => {
            let (frames, rest_clients) = (frames.clamp(1, 100_000), rest_clients.clamp(1, 500));
            let url = url.trim_end_matches('/');
            super::flood::ws(config, url, frames, rest_clients, server_pid).await
        }
        Scenario::Chaos(args) => chaos::run(config, args).await,
    }
}

/// The service under load and an admin token for it.
/// Signs the admin of `config` in at the service at `url`: its token.
pub(super) async fn sign_in_admin(
    http: &Client,
    config: &Config,
    url: &str,
) -> anyhow::Result<String> {
    let password = config
        .admin_password
        .clone()
        .context("set ADMIN_PASSWORD to the service's admin password")?;
    let answer: Value = http
        .post(format!("{url}/api/auth/token/"))
        .json(&json!({"username": config.admin_username, "password": password}))
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?
        .json()
        .await?;
    Ok(answer["token"]
        .as_str()
        .context("admin login refused")?
        .to_owned())
}

struct Target {
    http: Client,
    url: String,
    admin: String,
    tag: String,
}

impl Target {
    async fn connect(config: &Config, url: String) -> anyhow::Result<Target> {
        let http = Client::builder()
            .pool_max_idle_per_host(512)
            .timeout(Duration::from_secs(30))
            .build()?;
        let url = url.trim_end_matches('/').to_owned();
        let admin = sign_in_admin(&http, config, &url).await?;
        let tag = format!("{:x}", chrono::Utc::now().timestamp_millis());
        Ok(Target {
            http,
            url,
            admin,
            tag,
        })
    }

    async fn create(&self, path: &str, body: Value) -> anyhow::Result<i64> {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        ensure!(
            status == StatusCode::CREATED,
            "{path} answered {status}: {body}"
        );
        body["id"].as_i64().context("no id in the answer")
    }

    /// A segment, and `count` running promos, each on its own product, with stores
    /// spread up to `spread_km` around (0, 0).
    async fn running_promos(
        &self,
        count: usize,
        quantity: usize,
        spread_km: f64,
    ) -> anyhow::Result<(i64, Vec<i64>)> {
        let segment = self
            .create(
                "/api/users/user-segments/",
                json!({"name": format!("loadgen {}", self.tag)}),
            )
            .await?;
        let stores = count.div_ceil(10);
        let mut promos = Vec::with_capacity(count);
        for store_index in 0..stores {
            let offset = spread_km / 111.32 * (store_index as f64 / stores as f64);
            let store = self
                .create(
                    "/api/market/stores/",
                    json!({"name": format!("loadgen {} #{store_index}", self.tag), "latitude": offset, "longitude": -offset}),
                )
                .await?;
            let on_this_store = (count - promos.len()).min(10);
            let creations = (0..on_this_store).map(|product_index| async move {
                let product = self
                    .create(
                        "/api/market/products/",
                        json!({"store_id": store, "name": format!("item {product_index}"), "regular_price": "100.00"}),
                    )
                    .await?;
                let start = chrono::Utc::now() - chrono::Duration::seconds(5);
                self.create(
                    "/api/promotions/flash-promos/",
                    json!({"product_id": product, "promo_price": "50.00", "segment_ids": [segment],
                           "start_time": start.to_rfc3339(), "end_time": (start + chrono::Duration::hours(1)).to_rfc3339(),
                           "quantity": quantity, "max_distance_km": 2.0}),
                )
                .await
            });
            for promo in join_all(creations).await {
                promos.push(promo?);
            }
        }
        Ok((segment, promos))
    }

    /// Shoppers with tokens, placed at (0, 0) through `PATCH me/`.
    async fn shoppers(
        &self,
        pool: &DbPool,
        count: usize,
        segment: i64,
    ) -> anyhow::Result<Vec<String>> {
        let created = db::demo::insert_token_shoppers(
            pool,
            &format!("loadgen{}_", self.tag),
            count,
            &[segment],
        )
        .await?;
        let tokens: Vec<String> = created.into_iter().map(|(_, _, token)| token).collect();
        for chunk in tokens.chunks(64) {
            let moves = chunk.iter().map(|token| {
                self.http
                    .patch(format!("{}/api/users/clients-profiles/me/", self.url))
                    .bearer_auth(token)
                    .json(&json!({"latitude": 0.0, "longitude": 0.0}))
                    .send()
            });
            for moved in join_all(moves).await {
                ensure!(moved?.status().is_success(), "could not place a shopper");
            }
        }
        Ok(tokens)
    }
}

async fn reserve(
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
    println!("reserving {total} units with {concurrency} requests in flight…");
    let started = Instant::now();
    let workers = (0..concurrency).map(|_| {
        let next = next.clone();
        let (tokens, promo_ids) = (&tokens, &promo_ids);
        async move {
            let mut samples = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= total {
                    break samples;
                }
                let (token, promo) = (
                    &tokens[index / promo_ids.len()],
                    promo_ids[index % promo_ids.len()],
                );
                let sent = Instant::now();
                let status = target
                    .http
                    .post(format!("{}/api/promotions/promo-reservations/", target.url))
                    .bearer_auth(token)
                    .json(&json!({"promo_id": promo}))
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
    let created = samples.iter().filter(|(status, _)| *status == 201).count();
    report("reserve", &samples, elapsed);
    println!(
        "durable reservations: {created} in {elapsed:.2?} = {:.0}/s",
        created as f64 / elapsed.as_secs_f64()
    );
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

async fn eligible(
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

/// A new campaign for a load run.
async fn campaign(target: &Target) -> anyhow::Result<i64> {
    target
        .create(
            "/api/raffles/campaigns/",
            json!({
                "name": format!("loadgen {}", target.tag),
                "admin_email": "loadgen-admin@example.com",
                "email_subject": "Confirm your entry",
                "email_template": "Confirm: {{verify_url}}",
            }),
        )
        .await
}

async fn subscribe(
    target: &Target,
    pool: &DbPool,
    entries: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let campaign_id = campaign(target).await?;
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
    let created = samples.iter().filter(|(status, _)| *status == 201).count();
    report("add_subscriber", &samples, elapsed);
    println!(
        "durable entries: {created} in {elapsed:.2?} = {:.0}/s",
        created as f64 / elapsed.as_secs_f64()
    );
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

async fn finish(target: &Target, pool: &DbPool, subscribers: usize) -> anyhow::Result<()> {
    let campaign_id = campaign(target).await?;
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
    println!(
        "finish_campaign over {subscribers} verified subscribers: {elapsed:.2?} (winner {})",
        body["winner"]["email"]
    );
    Ok(())
}

/// Prints counts by status, the rate, and latency percentiles.
fn report(name: &str, samples: &[(u16, Duration)], elapsed: Duration) {
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

async fn fanout(
    target: &Target,
    pool: &DbPool,
    sessions: usize,
    server_pid: Option<u32>,
) -> anyhow::Result<()> {
    println!("setting up {sessions} shoppers…");
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
    let rss_before = server_pid.and_then(resident_kib);
    println!("opening {sessions} WebSocket sessions…");
    let (arrivals, opened) = open_sessions(&target.url, &tokens).await?;
    let rss_after = server_pid.and_then(resident_kib);
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        println!(
            "server memory: {} MiB before, {} MiB with {opened} idle sessions = {:.1} KiB per session",
            before / 1024,
            after / 1024,
            (after.saturating_sub(before)) as f64 / opened.max(1) as f64
        );
    }
    let start = chrono::Utc::now() - chrono::Duration::seconds(1);
    let started = Instant::now();
    target
        .create(
            "/api/promotions/flash-promos/",
            json!({"product_id": product, "promo_price": "50.00", "segment_ids": [segment],
                   "start_time": start.to_rfc3339(), "end_time": (start + chrono::Duration::hours(1)).to_rfc3339(),
                   "quantity": 1, "max_distance_km": 2.0}),
        )
        .await?;
    let mut latencies = Vec::with_capacity(opened);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut arrivals = arrivals;
    while latencies.len() < opened {
        match tokio::time::timeout_at(deadline, arrivals.recv()).await {
            Ok(Some(at)) => latencies.push(at.duration_since(started)),
            _ => break,
        }
    }
    latencies.sort_unstable();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "notified {} of {opened} connected eligible shoppers; since the create request: p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        latencies.len(),
        percentile(0.5),
        percentile(0.99),
        latencies.last().copied().unwrap_or_default()
    );
    ensure!(
        latencies.len() == opened,
        "some sessions were not notified within 60 s"
    );
    Ok(())
}

/// Opens one session per token, spreading source addresses over 127.0.0.0/8
/// (20,000 per address) so the ephemeral ports of one address do not run out.
/// Each session reports the instant its first `promo.notification` arrives.
async fn open_sessions(
    url: &str,
    tokens: &[String],
) -> anyhow::Result<(tokio::sync::mpsc::UnboundedReceiver<Instant>, usize)> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let address: std::net::SocketAddr = url
        .trim_start_matches("http://")
        .parse()
        .context("fanout needs --url http://<ip>:<port>")?;
    let (tell, arrivals) = tokio::sync::mpsc::unbounded_channel();
    let mut opened = 0;
    for (index, token) in tokens.iter().enumerate() {
        let source = std::net::Ipv4Addr::new(
            127,
            0,
            (index / 20_000 / 250) as u8,
            1 + (index / 20_000 % 250) as u8,
        );
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind((source, 0).into())?;
        let stream = socket.connect(address).await?;
        let request = format!("ws://{address}/ws/?token={token}");
        let (mut connection, _) = tokio_tungstenite::client_async(request, stream).await?;
        let tell = tell.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = connection.next().await {
                if let Message::Text(text) = message {
                    if text.contains("\"promo.notification\"") {
                        let _ = tell.send(Instant::now());
                    }
                }
            }
        });
        opened += 1;
        if opened % 2_000 == 0 {
            println!("  {opened} open");
        }
    }
    Ok((arrivals, opened))
}

/// The resident memory of a process, in KiB (Linux).
pub(super) fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
