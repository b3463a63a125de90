//! The admin console: a promo created in its form reaches a shopper's open
//! page as a notification within 2 s and shows in the live running table,
//! whose held count follows a reservation; a promo priced above the regular
//! price shows the error beside the price field; a raffle's counts follow
//! entries live and Finish shows the winner.

use std::time::{Duration, Instant};

use anyhow::ensure;
use fantoccini::Locator;

use super::driver::{Browser, STEP};
use super::{
    document, finish, market_and_shopper, start, LAPTOP, ONE_BROWSER_TEST_AT_A_TIME, PHONE,
};
use crate::helpers::{Market, ADMIN_PASSWORD, ADMIN_USERNAME, SHOPPER_PASSWORD};

/// Opens the console, signs the admin in and shows the flash promo form.
async fn console_on_promos(browser: &Browser) -> anyhow::Result<()> {
    browser.open("/admin/").await?;
    browser.sign_in(ADMIN_USERNAME, ADMIN_PASSWORD).await?;
    browser
        .text_until("#connection", STEP, |text| text == "Live")
        .await?;
    browser.click("#tab-promos").await?;
    // The product list arrives with the first load.
    browser
        .text_until("#promos-product_id", STEP, |text| {
            text.contains("Audífonos XYZ")
        })
        .await?;
    Ok(())
}

/// Fills the promo form for `market` at `price` (times and radius keep their defaults).
async fn fill_promo(browser: &Browser, market: &Market, price: &str) -> anyhow::Result<()> {
    browser
        .visible("#promos-product_id")
        .await?
        .select_by_value(&market.product_id.to_string())
        .await?;
    browser.fill("#promos-promo_price", price).await?;
    browser.fill("#promos-quantity", "2").await?;
    browser
        .click(&format!(
            "#promos-segment_ids input[value=\"{}\"]",
            market.segment_id
        ))
        .await
}

#[actix_web::test]
async fn a_promo_created_in_the_console_notifies_a_shopper_nearby_within_two_seconds() {
    let _turn = ONE_BROWSER_TEST_AT_A_TIME.lock().await;
    let (app, driver) = start().await;
    let (market, shopper) = market_and_shopper(&app, "eva").await;
    let console = driver
        .browser(&app.address, LAPTOP.0, LAPTOP.1)
        .await
        .unwrap();
    let phone = driver
        .browser(&app.address, PHONE.0, PHONE.1)
        .await
        .unwrap();

    let outcome = async {
        phone.open("/").await?;
        phone.sign_in(&shopper.username, SHOPPER_PASSWORD).await?;
        phone
            .text_until("#connection", STEP, |text| text == "Live")
            .await?;
        console_on_promos(&console).await?;
        fill_promo(&console, &market, "499.00").await?;
        console.click("#promos-form button[type=submit]").await?;
        let created = Instant::now();
        phone
            .text_until("#toasts .toast", Duration::from_secs(2), |text| {
                text.contains("Audífonos XYZ")
            })
            .await?;
        let notified_after = created.elapsed();
        ensure!(
            notified_after <= Duration::from_secs(2),
            "notified after {notified_after:?}"
        );
        phone
            .text_until("#inbox li", STEP, |text| text.contains("Audífonos XYZ"))
            .await?;

        let row = console
            .text_until("#promos-form ~ .table-wrap tbody tr", STEP, |text| {
                text.contains("running")
            })
            .await?;
        ensure!(row.contains("$499.00 / $999.00"), "{row}");
        document(&console, "admin").await?;
        console.click("#tab-running").await?;
        let promo_id: i64 = console
            .visible("#running-table tbody tr")
            .await?
            .attr("data-promo-id")
            .await?
            .and_then(|id| id.parse().ok())
            .unwrap_or(0);
        let held = format!("#running-table tr[data-promo-id=\"{promo_id}\"] td.held");
        console.text_until(&held, STEP, |text| text == "0").await?;
        let answer = app.reserve(&shopper, promo_id).await;
        ensure!(answer.status == 201, "{:?}", answer.body);
        console
            .text_until(&held, Duration::from_secs(3), |text| text == "1")
            .await?;
        let available = format!("#running-table tr[data-promo-id=\"{promo_id}\"] td.available");
        console
            .text_until(&available, STEP, |text| text == "1")
            .await?;
        Ok(())
    }
    .await;
    finish(
        "console_promo_notifies_shopper",
        outcome,
        vec![console, phone],
    )
    .await;
}

#[actix_web::test]
async fn the_console_shows_the_field_error_of_a_promo_priced_above_the_regular_price() {
    let _turn = ONE_BROWSER_TEST_AT_A_TIME.lock().await;
    let (app, driver) = start().await;
    let market = app.create_market_at(19.4326, -99.1332).await;
    let console = driver
        .browser(&app.address, LAPTOP.0, LAPTOP.1)
        .await
        .unwrap();

    let outcome = async {
        console_on_promos(&console).await?;
        fill_promo(&console, &market, "1500.00").await?;
        console.click("#promos-form button[type=submit]").await?;
        let error = console
            .text_until("#promos-promo_price-error", STEP, |text| !text.is_empty())
            .await?;
        ensure!(
            error.contains("regular price"),
            "the price field says {error:?}"
        );
        let described_by = console
            .client
            .find(Locator::Css("#promos-promo_price"))
            .await?
            .attr("aria-describedby")
            .await?;
        ensure!(described_by.as_deref() == Some("promos-promo_price-error"));
        ensure!(
            app.count_rows("flash_promos").await == 0,
            "no promo was created"
        );
        Ok(())
    }
    .await;
    finish("console_price_field_error", outcome, vec![console]).await;
}

#[actix_web::test]
async fn the_console_counts_raffle_entries_live_and_finishing_shows_the_winner() {
    let _turn = ONE_BROWSER_TEST_AT_A_TIME.lock().await;
    let (app, driver) = start().await;
    let campaign_id = app.create_campaign("Valentine stay").await;
    let console = driver
        .browser(&app.address, LAPTOP.0, LAPTOP.1)
        .await
        .unwrap();

    let outcome = async {
        console.open("/admin/#campaigns").await?;
        console.sign_in(ADMIN_USERNAME, ADMIN_PASSWORD).await?;
        console
            .text_until("#connection", STEP, |text| text == "Live")
            .await?;
        let row = format!("#section-campaigns tr[data-campaign-id=\"{campaign_id}\"]");
        console
            .text_until(&row, STEP, |text| text.contains("Valentine stay"))
            .await?;
        app.subscribe_verified(campaign_id, "ana@example.com").await;
        let entered = Instant::now();
        console
            .text_until(&format!("{row} .verified-count"), STEP, |text| text == "1")
            .await?;
        ensure!(
            entered.elapsed() < Duration::from_secs(3),
            "counted after {:?}",
            entered.elapsed()
        );
        console
            .text_until(&format!("{row} .subscriber-count"), STEP, |text| {
                text == "1"
            })
            .await?;
        console
            .click(&format!("{row} button[data-action=finish]"))
            .await?;
        let result = console
            .text_until("#draw-result", STEP, |text| {
                text.contains("ana@example.com")
            })
            .await?;
        ensure!(result.contains("the winner is"), "{result}");
        console
            .text_until(&row, STEP, |text| text.contains("finished"))
            .await?;
        // The draw's proof: the seed is shown once drawn, beside its commitment.
        let proof = console
            .text_until("#draw-proof", STEP, |text| text.contains("Entries digest"))
            .await?;
        ensure!(proof.contains("entries.txt"), "{proof}");
        Ok(())
    }
    .await;
    finish("console_raffle_live_and_finish", outcome, vec![console]).await;
}
