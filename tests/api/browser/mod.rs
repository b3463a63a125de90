//! The web clients in real headless Chromium: the shopper page at `/` and
//! the admin console at `/admin/`, each test against its own app and
//! database, driving the pages as a person would (typing, clicking) and
//! reading what they show.
//!
//! Browser tests take turns (one Chromium at a time) so that timing
//! assertions such as "notified within 2 s" measure the service, not a
//! machine crowded with browsers. A failing test saves a screenshot of every
//! window under `target/tmp/browser-failures/` and prints its path. With
//! `UPDATE_SCREENSHOTS=1` the tests also refresh `docs/shopper.png` and
//! `docs/admin.png`.

mod admin;
mod driver;
mod shopper;

use std::path::PathBuf;

use driver::{Browser, Chromedriver};
use tokio::sync::Mutex;

use crate::helpers::{spawn_app_with, Market, Shopper, TestApp};

static ONE_BROWSER_TEST_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// A phone-sized window for the shopper page.
const PHONE: (u32, u32) = (412, 915);
/// A laptop-sized window for the console.
const LAPTOP: (u32, u32) = (1280, 900);

/// An app with a 30 s hold (time to click Buy) and chromedriver beside it.
async fn start() -> (TestApp, Chromedriver) {
    let app =
        spawn_app_with(|config| config.reservation_hold = std::time::Duration::from_secs(30)).await;
    let driver = Chromedriver::start()
        .await
        .unwrap_or_else(|error| panic!("{error:#}"));
    (app, driver)
}

/// A market at the Mexico City centre and a shopper 300 m north of it.
async fn market_and_shopper(app: &TestApp, username: &str) -> (Market, Shopper) {
    let market = app.create_market_at(19.4326, -99.1332).await;
    let shopper = app
        .create_shopper(username, Some((19.4353, -99.1332)), &[market.segment_id])
        .await;
    (market, shopper)
}

/// Ends a scenario: on failure, screenshots of every window (paths printed),
/// then the panic; the sessions are closed either way.
async fn finish(name: &str, outcome: anyhow::Result<()>, browsers: Vec<Browser>) {
    let mut shots = Vec::new();
    if outcome.is_err() {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-failures");
        for (index, browser) in browsers.iter().enumerate() {
            let path = dir.join(format!("{name}-{index}.png"));
            if browser.screenshot(&path).await.is_ok() {
                eprintln!("screenshot of the failing page: {}", path.display());
                shots.push(path.display().to_string());
            }
        }
    }
    for browser in browsers {
        let _ = browser.client.close().await;
    }
    if let Err(error) = outcome {
        panic!("{name}: {error:#}\nscreenshots: {shots:?}");
    }
}

/// Saves `docs/<name>.png` when `UPDATE_SCREENSHOTS=1`.
async fn document(browser: &Browser, name: &str) -> anyhow::Result<()> {
    if std::env::var("UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("docs")
            .join(format!("{name}.png"));
        browser.screenshot(&path).await?;
        eprintln!("saved {}", path.display());
    }
    Ok(())
}
