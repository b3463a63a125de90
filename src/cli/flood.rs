//! `loadgen flood-login` and `loadgen flood-ws`: what one abusive caller does
//! to everyone else (API.md, "Load that one caller can cause").
//!
//! - `flood-login`: N connections send HTTP Basic requests with wrong
//!   passwords (a new username each time, so only the per-address throttle and
//!   the password gate stand in the way) while one token client measures its
//!   own latency and a few clients count `/healthz` answers. `--spread` sends
//!   from 253 loopback addresses (127.0.0.2..254) so the per-address throttle
//!   lets more through and the password gate takes the load.
//! - `flood-ws`: one WebSocket writes F `reserve` frames for a promo that does
//!   not exist while 50 REST clients call `GET /api/market/stores/`.
//!
//! Both sample the server's resident memory from `/proc/PID/status` every
//! 100 ms. Every loop is bounded in count and time, and only the `--url` given
//! (which must be a loopback address) is targeted.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use futures_util::future::join_all;
use futures_util::{SinkExt, StreamExt};
use reqwest::Client;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::config::Config;

/// Counts by status (or error-frame code).
type Counts = Arc<Mutex<BTreeMap<String, u64>>>;

fn bump(counts: &Counts, key: String) {
    let mut counts = counts
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    *counts.entry(key).or_default() += 1;
}

fn show(counts: &Counts) -> String {
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
async fn admin_token(config: &Config, url: &str) -> anyhow::Result<String> {
    let parsed = url::Url::parse(url).context("--url must be a URL")?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    ensure!(loopback, "flood scenarios only target loopback addresses");
    super::loadgen::sign_in_admin(&Client::new(), config, url).await
}

/// Samples the server's RSS (KiB) until `stop`; returns the largest seen.
fn sample_rss(pid: Option<u32>, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Option<u64>> {
    tokio::spawn(async move {
        let pid = pid?;
        let mut most = 0;
        while !stop.load(Ordering::Relaxed) {
            most = most.max(super::loadgen::resident_kib(pid).unwrap_or(0));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(most)
    })
}

/// Latencies and non-2xx count of one client calling `path` until `stop`.
async fn measure(
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

fn percentiles(mut latencies: Vec<Duration>) -> String {
    latencies.sort_unstable();
    let at = |p: f64| {
        let index = ((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1));
        latencies.get(index).copied().unwrap_or_default()
    };
    format!(
        "{} requests, p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        latencies.len(),
        at(0.5),
        at(0.99),
        latencies.last().copied().unwrap_or_default()
    )
}

/// One flooding connection: wrong Basic passwords, new usernames, until `stop`.
async fn flood_basic(
    http: Client,
    url: String,
    lane: usize,
    stop: Arc<AtomicBool>,
    counts: Counts,
) {
    let mut attempt = 0u64;
    while !stop.load(Ordering::Relaxed) && attempt < 10_000_000 {
        attempt += 1;
        let answer = http
            .get(&url)
            .basic_auth(format!("flood{lane}x{attempt}"), Some("not-the-password"))
            .send()
            .await;
        let key = match answer {
            Ok(response) => response.status().as_u16().to_string(),
            Err(_) => "transport error".into(),
        };
        bump(&counts, key);
    }
}

/// `/healthz` answers per second from a few clients until `stop`.
async fn count_health(http: Client, url: String, stop: Arc<AtomicBool>) -> u64 {
    let served = Arc::new(AtomicU64::new(0));
    let loops = (0..4).map(|_| {
        let (http, url, stop, served) = (http.clone(), url.clone(), stop.clone(), served.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(response) = http.get(&url).send().await {
                    if response.status().is_success() {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    });
    join_all(loops).await;
    served.load(Ordering::Relaxed)
}

/// Clients for the flood: one per source address.
fn flood_clients(spread: bool, connections: usize) -> anyhow::Result<Vec<Client>> {
    let sources: Vec<Option<IpAddr>> = if spread {
        (2..=254)
            .map(|last| Some(Ipv4Addr::new(127, 0, 0, last).into()))
            .collect()
    } else {
        vec![None]
    };
    sources
        .into_iter()
        .map(|source| {
            Ok(Client::builder()
                .local_address(source)
                .pool_max_idle_per_host(connections)
                .timeout(Duration::from_secs(30))
                .build()?)
        })
        .collect()
}

/// `flood-login`: see the module doc.
pub async fn login(
    config: &Config,
    url: &str,
    connections: usize,
    seconds: u64,
    server_pid: Option<u32>,
    spread: bool,
) -> anyhow::Result<()> {
    let token = admin_token(config, url).await?;
    let rss_before = server_pid.and_then(super::loadgen::resident_kib);
    let stop = Arc::new(AtomicBool::new(false));
    let rss = sample_rss(server_pid, stop.clone());
    let counts: Counts = Arc::default();
    let clients = flood_clients(spread, connections)?;
    let target = format!("{url}/api/market/stores/");
    let flood: Vec<_> = (0..connections)
        .map(|lane| {
            let http = clients[lane % clients.len()].clone();
            tokio::spawn(flood_basic(
                http,
                target.clone(),
                lane,
                stop.clone(),
                counts.clone(),
            ))
        })
        .collect();
    let probe = tokio::spawn(measure(Client::new(), target.clone(), token, stop.clone()));
    let health = tokio::spawn(count_health(
        Client::new(),
        format!("{url}/healthz"),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let (latencies, failed, _) = probe.await?;
    let healthy = health.await?;
    join_all(flood).await;
    println!(
        "flood ({connections} connections, {seconds} s): {}",
        show(&counts)
    );
    println!("token client: {}; non-2xx {failed}", percentiles(latencies));
    println!("/healthz: {:.0}/s", healthy as f64 / seconds as f64);
    print_rss(rss_before, rss.await?);
    Ok(())
}

fn print_rss(before: Option<u64>, most: Option<u64>) {
    if let (Some(before), Some(most)) = (before, most) {
        println!(
            "server RSS: {} MiB before, max {} MiB during",
            before / 1024,
            most / 1024
        );
    }
}

/// `flood-ws`: see the module doc.
pub async fn ws(
    config: &Config,
    url: &str,
    frames: usize,
    rest_clients: usize,
    server_pid: Option<u32>,
) -> anyhow::Result<()> {
    let token = admin_token(config, url).await?;
    let rss_before = server_pid.and_then(super::loadgen::resident_kib);
    let stop = Arc::new(AtomicBool::new(false));
    let rss = sample_rss(server_pid, stop.clone());
    let http = Client::builder()
        .pool_max_idle_per_host(rest_clients)
        .build()?;
    let target = format!("{url}/api/market/stores/");
    let rest: Vec<_> = (0..rest_clients)
        .map(|_| {
            tokio::spawn(measure(
                http.clone(),
                target.clone(),
                token.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let codes = one_socket_flood(url, &token, frames).await;
    stop.store(true, Ordering::Relaxed);
    let (mut latencies, mut failed, mut unavailable) = (Vec::new(), 0, 0);
    for client in join_all(rest).await {
        let (samples, client_failed, client_unavailable) = client?;
        latencies.extend(samples);
        failed += client_failed;
        unavailable += client_unavailable;
    }
    let (codes, elapsed) = codes?;
    println!(
        "socket ({frames} reserve frames, answered in {elapsed:.2?}): {}",
        show(&codes)
    );
    println!(
        "REST ({rest_clients} clients): {}; non-2xx {failed}, 503 {unavailable}",
        percentiles(latencies)
    );
    print_rss(rss_before, rss.await?);
    Ok(())
}

/// Writes `frames` reserve frames on one socket and counts the answers by
/// code until all came back or 60 s passed.
async fn one_socket_flood(
    url: &str,
    token: &str,
    frames: usize,
) -> anyhow::Result<(Counts, Duration)> {
    let ws_url = format!("{}/ws/?token={token}", url.replacen("http", "ws", 1));
    let (socket, _) = tokio_tungstenite::connect_async(ws_url).await?;
    let (mut sink, mut stream) = socket.split();
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        for request_id in 0..frames {
            let frame =
                json!({"type": "reserve", "promo_id": 999_999_999, "request_id": request_id});
            sink.feed(Message::Text(frame.to_string())).await?;
        }
        sink.flush().await?;
        anyhow::Ok(sink)
    });
    let codes: Counts = Arc::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut answered = 0;
    while answered < frames {
        let text = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(_))) => continue,
            _ => break,
        };
        let frame: Value = serde_json::from_str(&text).unwrap_or_default();
        if frame["type"] == "error" {
            answered += 1;
            bump(&codes, frame["code"].as_str().unwrap_or("?").to_owned());
        }
    }
    let elapsed = started.elapsed();
    let _sink = writer.await??;
    Ok((codes, elapsed))
}
