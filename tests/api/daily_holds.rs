//! Holds of a daily promo's occurrence that outlive it: they complete until
//! their own expiry, across a restart and a lower quantity.
//!
//! As in `daily_windows`, the window is the whole day and the range cuts
//! today's occurrence to a few seconds; once it has ended, the range is
//! moved an hour on, so the promo shows a later occurrence (with no holds)
//! while the holds of the first one are still live.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    in_seconds, spawn_app_with, spawn_process_app, wait_until, Market, ServiceProcess, Shopper,
    TestApp,
};

const PROMOS: &str = "/api/promotions/flash-promos/";

/// A daily promo whose occurrence today runs from now for `seconds`: its id.
async fn create_daily(app: &TestApp, market: &Market, quantity: u32, seconds: i64) -> i64 {
    crate::daily_windows::create_daily(app, market, quantity, seconds).await["id"]
        .as_i64()
        .unwrap()
}

/// Waits for the occurrence to end, then moves the range an hour on (with
/// the changes in `extra`): the promo now shows a later occurrence.
async fn move_past_the_occurrence(app: &TestApp, promo_id: i64, extra: Value) -> Value {
    let path = format!("{PROMOS}{promo_id}/");
    let ended = wait_until(Duration::from_secs(20), || async {
        app.get(&path, &app.admin).await.body["status"] == "ended"
    })
    .await;
    assert!(ended, "the occurrence did not end");
    let mut body = json!({"start_time": in_seconds(3600), "end_time": in_seconds(7200)});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let answer = app.patch(&path, &app.admin, body).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.body["status"], "scheduled");
    answer.body
}

async fn complete(app: &TestApp, shopper: &Shopper, reservation: &Value) -> StatusCode {
    let path = format!(
        "/api/promotions/promo-reservations/{}/complete/",
        reservation["id"]
    );
    let answer = app.post(&path, &shopper.auth, json!({})).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    answer.status
}

#[actix_web::test]
async fn a_hold_of_an_ended_occurrence_completes_after_a_restart() {
    let (mut app, mut first) = spawn_process_app(60).await;
    let market = app.create_market_at(0.0, 0.0).await;
    let shoppers = app
        .create_shoppers_quickly("restart", 1, (0.0, 0.0), &[market.segment_id])
        .await;
    let promo_id = create_daily(&app, &market, 1, 5).await;
    let held = app.reserve(&shoppers[0], promo_id).await;
    assert_eq!(held.status, StatusCode::CREATED, "{:?}", held.body);
    let later = move_past_the_occurrence(&app, promo_id, json!({})).await;
    assert_eq!(later["held"], 0, "the hold is not the later occurrence's");

    first.kill();
    let second = ServiceProcess::start(&app.database_url(), 60).await;
    app.address = second.address.clone();
    complete(&app, &shoppers[0], &held.body).await;
}

#[actix_web::test]
async fn holds_of_an_ended_occurrence_complete_after_the_quantity_is_lowered() {
    let app = spawn_app_with(|config| config.reservation_hold = Duration::from_secs(60)).await;
    let market = app.create_market_at(0.0, 0.0).await;
    let shoppers = app
        .create_shoppers_quickly("lowered", 3, (0.0, 0.0), &[market.segment_id])
        .await;
    let promo_id = create_daily(&app, &market, 3, 5).await;
    let mut holds = Vec::new();
    for shopper in &shoppers {
        let held = app.reserve(shopper, promo_id).await;
        assert_eq!(held.status, StatusCode::CREATED, "{:?}", held.body);
        holds.push(held.body);
    }
    move_past_the_occurrence(&app, promo_id, json!({})).await;
    let path = format!("{PROMOS}{promo_id}/");
    let lowered = app.patch(&path, &app.admin, json!({"quantity": 1})).await;
    assert_eq!(lowered.status, StatusCode::OK, "{:?}", lowered.body);
    for (shopper, hold) in shoppers.iter().zip(&holds) {
        complete(&app, shopper, hold).await;
    }
    let promo = app.get(&path, &app.admin).await;
    assert_eq!(promo.body["sold_total"], 3);
}
