//! `loadgen flood-login`: N connections send HTTP Basic requests with wrong
//! passwords (a new username each time, so only the per-address throttle and
//! the password gate stand in the way) while one token client measures its
//! own latency and a few clients count `/healthz` answers. `--spread` sends
//! from 253 loopback addresses (127.0.0.2..254) so the per-address throttle
//! lets more through and the password gate takes the load.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use reqwest::Client;

use super::flood::{admin_token, bump, measure, percentiles, print_rss, sample_rss, show, Counts};
use super::report::resident_kib;
use crate::config::Config;

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
pub(super) async fn login(
    config: &Config,
    url: &str,
    connections: usize,
    seconds: u64,
    server_pid: Option<u32>,
    spread: bool,
) -> anyhow::Result<()> {
    let token = admin_token(config, url).await?;
    let rss_before = server_pid.and_then(resident_kib);
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
