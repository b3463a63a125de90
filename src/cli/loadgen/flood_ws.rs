//! `loadgen flood-ws`: one WebSocket writes F `reserve` frames for a promo
//! that does not exist, as fast as it can, while REST clients call
//! `GET /api/market/stores/` and measure their latency.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use futures_util::{SinkExt, StreamExt};
use reqwest::Client;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::flood::{admin_token, bump, measure, percentiles, print_rss, sample_rss, show, Counts};
use super::report::resident_kib;
use crate::config::Config;

/// `flood-ws`: see the module doc.
pub(super) async fn ws(
    config: &Config,
    url: &str,
    frames: usize,
    rest_clients: usize,
    server_pid: Option<u32>,
) -> anyhow::Result<()> {
    let token = admin_token(config, url).await?;
    let rss_before = server_pid.and_then(resident_kib);
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
