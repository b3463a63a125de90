//! `GET /metrics`: after real traffic (a request, a reservation, a
//! WebSocket session) the counters have moved, and the `route` label is the
//! route pattern, never the raw path.
//!
//! The recorder is one per process and tests run side by side, so every
//! check compares a value before and after with "at least", never equality.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_app, wait_until, Auth, TestApp};
use crate::websocket::{next_json, ws_url};

/// One sample line: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            let value: f64 = value.parse().ok()?;
            let (name, labels) = match key.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (key, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|pair| !pair.is_empty())
                .filter_map(|pair| {
                    let (label, value) = pair.split_once('=')?;
                    Some((label.to_owned(), value.trim_matches('"').to_owned()))
                })
                .collect();
            Some(Sample {
                name: name.to_owned(),
                labels,
                value,
            })
        })
        .collect()
}

async fn scrape(app: &TestApp) -> String {
    let response = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .expect("scrape");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.expect("text")
}

/// The value of `name` with (at least) these labels; 0 when absent.
async fn value(app: &TestApp, name: &str, labels: &[(&str, &str)]) -> f64 {
    parse(&scrape(app).await)
        .into_iter()
        .filter(|sample| sample.name == name)
        .filter(|sample| {
            labels
                .iter()
                .all(|(label, value)| sample.labels.get(*label).map(String::as_str) == Some(value))
        })
        .map(|sample| sample.value)
        .sum()
}

const STORE_BY_ID: [(&str, &str); 3] = [
    ("method", "GET"),
    ("route", "/api/market/stores/{id}"),
    ("status", "404"),
];

#[actix_web::test]
async fn requests_are_counted_under_their_route_pattern() {
    let app = spawn_app().await;
    let requests = "promo_engine_http_requests_total";
    let before = value(&app, requests, &STORE_BY_ID).await;

    let missing = app.get("/api/market/stores/987654321/", &app.admin).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let unmatched = app.get("/no/such/route/4242", &Auth::None).await;
    assert_eq!(unmatched.status, StatusCode::NOT_FOUND);

    let text = scrape(&app).await;
    assert!(value(&app, requests, &STORE_BY_ID).await >= before + 1.0);
    assert!(!text.contains("987654321"), "a raw path became a label");
    assert!(
        !text.contains("/no/such/route"),
        "a raw path became a label"
    );
    let unmatched_route = [("route", "unmatched"), ("status", "404")];
    assert!(value(&app, requests, &unmatched_route).await >= 1.0);
    let duration = "promo_engine_http_request_duration_seconds_count";
    assert!(value(&app, duration, &STORE_BY_ID[..2]).await >= 1.0);
}

#[actix_web::test]
async fn reservations_sessions_and_frames_are_counted() {
    let app = spawn_app().await;
    let market = app.create_market_at(19.43, -99.13).await;
    let promo = app.create_running_promo(&market, 1, json!({})).await;
    let shopper = app
        .create_shopper("metered", Some((19.43, -99.13)), &[market.segment_id])
        .await;
    let reservations = "promo_engine_reservations_total";
    let held_before = value(&app, reservations, &[("outcome", "held")]).await;
    let repeat_before = value(&app, reservations, &[("outcome", "already_reserved")]).await;
    let hello_before = value(
        &app,
        "promo_engine_ws_frames_sent_total",
        &[("type", "hello")],
    )
    .await;

    let held = app.reserve(&shopper, promo["id"].as_i64().unwrap()).await;
    assert_eq!(held.status, StatusCode::CREATED, "{:?}", held.body);
    let repeat = app.reserve(&shopper, promo["id"].as_i64().unwrap()).await;
    assert_eq!(repeat.code(), "already_reserved");
    let token = match &shopper.auth {
        Auth::Token(token) => token.clone(),
        other => panic!("token expected, got {other:?}"),
    };
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url(&app, &token))
        .await
        .expect("upgrade");
    assert_eq!(next_json(&mut socket).await["type"], "hello");

    assert!(value(&app, reservations, &[("outcome", "held")]).await >= held_before + 1.0);
    assert!(
        value(&app, reservations, &[("outcome", "already_reserved")]).await >= repeat_before + 1.0
    );
    let frames = "promo_engine_ws_frames_sent_total";
    assert!(value(&app, frames, &[("type", "hello")]).await >= hello_before + 1.0);
    assert!(value(&app, "promo_engine_ws_sessions", &[]).await >= 1.0);
    assert!(value(&app, "promo_engine_db_write_seconds_count", &[]).await >= 1.0);
    let running = wait_until(Duration::from_secs(5), || async {
        value(&app, "promo_engine_running_promos", &[]).await >= 1.0
    })
    .await;
    assert!(running, "the running promo is in the gauge");
}
