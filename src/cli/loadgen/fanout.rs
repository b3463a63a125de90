//! `loadgen fanout`: S shoppers, each with an open WebSocket session; a promo
//! starts; how long until every session has its `promo.notification`, and
//! the service's memory per idle session.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use serde_json::json;

use super::report::{percentile, resident_kib};
use super::target::Target;
use crate::db::DbPool;

/// Opens `sessions` sessions, starts a promo, times every notification.
pub(super) async fn fanout(
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
