//! The shopper page: sign in, an eligible promo with its prices and stock,
//! reserve with a countdown, buy; and a second shopper watching the stock
//! fall live; the location set by typed coordinates and by a click on the map.

use std::time::{Duration, Instant};

use anyhow::ensure;
use serde_json::json;

use super::driver::{Browser, STEP};
use super::{document, finish, market_and_shopper, start, ONE_BROWSER_TEST_AT_A_TIME, PHONE};
use crate::helpers::{Shopper, SHOPPER_PASSWORD};

fn card(promo_id: i64) -> String {
    format!("li.promo[data-promo-id=\"{promo_id}\"]")
}

/// Opens `/` and signs `shopper` in; waits until the live connection is up.
async fn signed_in(browser: &Browser, shopper: &Shopper) -> anyhow::Result<()> {
    browser.open("/").await?;
    browser.sign_in(&shopper.username, SHOPPER_PASSWORD).await?;
    browser
        .text_until("#connection", STEP, |text| text == "Live")
        .await?;
    Ok(())
}

/// Seconds shown by a `m:ss` countdown.
fn countdown_seconds(text: &str) -> Option<u64> {
    let (minutes, seconds) = text.trim().split_once(':')?;
    Some(minutes.parse::<u64>().ok()? * 60 + seconds.parse::<u64>().ok()?)
}

#[actix_web::test]
async fn a_shopper_signs_in_sees_a_promo_reserves_sees_the_countdown_and_buys() {
    let _turn = ONE_BROWSER_TEST_AT_A_TIME.lock().await;
    let (app, driver) = start().await;
    let (market, shopper) = market_and_shopper(&app, "eva").await;
    let promo = app.create_running_promo(&market, 3, json!({})).await;
    let promo_id = promo["id"].as_i64().unwrap();
    let browser = driver
        .browser(&app.address, PHONE.0, PHONE.1)
        .await
        .unwrap();

    let outcome = async {
        signed_in(&browser, &shopper).await?;
        let card = card(promo_id);
        let shown = browser
            .text_until(&card, STEP, |text| text.contains("Audífonos XYZ"))
            .await?;
        for expected in [
            "TechShop",
            "300 m away",
            "$499.00",
            "$999.00",
            "3 of 3 left",
        ] {
            ensure!(
                shown.contains(expected),
                "the card lacks {expected:?}: {shown:?}"
            );
        }
        browser
            .click(&format!("{card} button[data-action=reserve]"))
            .await?;
        let countdown = format!("{card} .countdown");
        let first = browser
            .text_until(&countdown, STEP, |text| countdown_seconds(text).is_some())
            .await?;
        let left = countdown_seconds(&first).unwrap_or(0);
        ensure!((1..=30).contains(&left), "a 30 s hold shows {first}");
        browser
            .text_until(&countdown, Duration::from_secs(3), |text| text != first)
            .await?;
        document(&browser, "shopper").await?;
        browser
            .click(&format!("{card} button[data-action=buy]"))
            .await?;
        browser
            .text_until(&format!("{card} .reservation-state"), STEP, |text| {
                text.starts_with("Bought")
            })
            .await?;
        let mine = app
            .get("/api/promotions/promo-reservations/", &shopper.auth)
            .await;
        ensure!(
            mine.body["results"][0]["status"] == "completed",
            "{:?}",
            mine.body
        );
        Ok(())
    }
    .await;
    finish("shopper_reserves_and_buys", outcome, vec![browser]).await;
}

#[actix_web::test]
async fn a_second_shoppers_page_shows_the_stock_fall_live() {
    let _turn = ONE_BROWSER_TEST_AT_A_TIME.lock().await;
    let (app, driver) = start().await;
    let (market, first) = market_and_shopper(&app, "eva").await;
    let second = app
        .create_shopper("tom", Some((19.4330, -99.1340)), &[market.segment_id])
        .await;
    let promo = app.create_running_promo(&market, 3, json!({})).await;
    let promo_id = promo["id"].as_i64().unwrap();
    let buyer = driver
        .browser(&app.address, PHONE.0, PHONE.1)
        .await
        .unwrap();
    let watcher = driver
        .browser(&app.address, PHONE.0, PHONE.1)
        .await
        .unwrap();

    let outcome = async {
        signed_in(&buyer, &first).await?;
        signed_in(&watcher, &second).await?;
        let stock = format!("{} .stock-text", card(promo_id));
        watcher
            .text_until(&stock, STEP, |text| text.starts_with("3 of 3 left"))
            .await?;
        buyer
            .click(&format!("{} button[data-action=reserve]", card(promo_id)))
            .await?;
        let reserved = Instant::now();
        watcher
            .text_until(&stock, STEP, |text| {
                text.starts_with("2 of 3 left · 1 held")
            })
            .await?;
        let seen_after = reserved.elapsed();
        buyer
            .click(&format!("{} button[data-action=buy]", card(promo_id)))
            .await?;
        watcher
            .text_until(&stock, STEP, |text| {
                text.starts_with("2 of 3 left · 0 held · 1 sold")
            })
            .await?;
        ensure!(
            seen_after < Duration::from_secs(3),
            "the hold showed after {seen_after:?}"
        );
        Ok(())
    }
    .await;
    finish(
        "second_shopper_sees_stock_fall",
        outcome,
        vec![buyer, watcher],
    )
    .await;
}

#[actix_web::test]
async fn typed_coordinates_and_a_click_on_the_map_set_the_live_location() {
    let _turn = ONE_BROWSER_TEST_AT_A_TIME.lock().await;
    let (app, driver) = start().await;
    let market = app.create_market_at(19.4326, -99.1332).await;
    let shopper = app.create_shopper("eva", None, &[market.segment_id]).await;
    let promo = app.create_running_promo(&market, 3, json!({})).await;
    let promo_id = promo["id"].as_i64().unwrap();
    let browser = driver
        .browser(&app.address, PHONE.0, PHONE.1)
        .await
        .unwrap();

    let outcome = async {
        signed_in(&browser, &shopper).await?;
        browser
            .text_until("#promos-empty", STEP, |text| {
                text.starts_with("Set your location")
            })
            .await?;
        browser.fill("#latitude", "19.5").await?;
        browser.fill("#longitude", "-99.1332").await?;
        browser.click("#location-form button[type=submit]").await?;
        browser
            .text_until("#location-text", STEP, |text| {
                text.contains("19.50000, -99.13320")
            })
            .await?;
        browser
            .text_until("#promos-empty", STEP, |text| {
                text.starts_with("No promos near you")
            })
            .await?;
        // The store's marker: a click there puts the shopper at the store.
        browser.click("#map .store rect").await?;
        browser
            .text_until(&card(promo_id), STEP, |text| text.contains("Audífonos XYZ"))
            .await?;
        let me = app
            .get("/api/users/clients-profiles/me/", &shopper.auth)
            .await;
        let (latitude, longitude) = (me.body["latitude"].as_f64(), me.body["longitude"].as_f64());
        let near =
            |value: Option<f64>, target: f64| value.is_some_and(|v| (v - target).abs() < 0.002);
        ensure!(
            near(latitude, 19.4326) && near(longitude, -99.1332),
            "{:?}",
            me.body
        );
        Ok(())
    }
    .await;
    finish("shopper_sets_location", outcome, vec![browser]).await;
}
