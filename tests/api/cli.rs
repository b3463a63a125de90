//! The command line, run as the real binary: `migrate` creates a missing
//! database, `demo-data` loads (idempotently) with promos and a raffle that
//! the demo shoppers can use at once, a bad setting names itself.

use std::process::Command;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_app, ServiceProcess, TestDatabase};

fn promo_engine(database_url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_promo-engine"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .env("ADMIN_PASSWORD", "admin-password-1")
        .output()
        .expect("the binary runs")
}

#[actix_web::test]
async fn migrate_creates_the_database_when_it_is_missing() {
    let database = TestDatabase::new();
    let output = promo_engine(&database.url(), &["migrate"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (client, connection) = tokio_postgres::connect(&database.url(), tokio_postgres::NoTls)
        .await
        .expect("the new database accepts connections");
    actix_web::rt::spawn(connection);
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'flash_promos'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 1);
}

#[actix_web::test]
async fn a_bad_setting_stops_start_up_and_names_the_variable() {
    let output = Command::new(env!("CARGO_BIN_EXE_promo-engine"))
        .arg("migrate")
        .env("RESERVATION_HOLD_SECONDS", "a minute")
        .output()
        .expect("the binary runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("RESERVATION_HOLD_SECONDS"));
}

#[actix_web::test]
async fn demo_data_loads_the_originals_data_set_once() {
    let app = spawn_app().await;
    let url = app.database_url();
    for _ in 0..2 {
        let output = promo_engine(&url, &["demo-data", "--clients", "40", "--stores", "4"]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert_eq!(app.count_rows("stores").await, 4);
    assert_eq!(
        app.count_rows("client_profiles").await,
        43,
        "40 generated + ana, luis, sofia"
    );
    assert_eq!(app.count_rows("user_segments").await, 2);

    let ana = app.login("ana", "shopper-pass").await;
    let products = app.get("/api/market/products/?page_size=100", &ana).await;
    let headphones = products.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|product| product["name"] == "Audífonos XYZ")
        .cloned()
        .expect("the original's headphones");
    assert_eq!(headphones["regular_price"], "999.00");
    assert_eq!(headphones["store"]["name"], "TechShop");
    let me = app.get("/api/users/clients-profiles/me/", &ana).await;
    assert_eq!(me.body["segments"][0]["name"], "New users");
    assert_eq!(me.status, StatusCode::OK);
    // The foreign keys dropped for the bulk load are back.
    let orphan = app
        .post(
            "/api/users/clients-profiles/",
            &app.admin,
            json!({"username": "x1", "password": "long-enough", "segment_ids": [999]}),
        )
        .await;
    assert_eq!(orphan.status, StatusCode::BAD_REQUEST);
    let client = app.pool.get().await.unwrap();
    let keys: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' \
             AND conrelid IN ('client_profiles'::regclass, 'client_segments'::regclass)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(keys, 3);
}

#[actix_web::test]
async fn demo_data_starts_a_promo_ana_is_eligible_for_one_soon_after_and_a_raffle() {
    let database = TestDatabase::new();
    for _ in 0..2 {
        let output = promo_engine(&database.url(), &["demo-data", "--clients", "0"]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let service = ServiceProcess::start(&database.url(), 60).await;
    let eligible: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}/api/promotions/flash-promos/eligible/",
            service.address
        ))
        .basic_auth("ana", Some("shopper-pass"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(eligible["count"], 1, "{eligible}");
    let running = &eligible["results"][0];
    assert_eq!(running["product"]["name"], "Cargador rápido");
    assert_eq!(running["status"], "running");
    assert!(running["available"].as_i64().unwrap() > 1, "a few units");

    let (client, connection) = tokio_postgres::connect(&database.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    actix_web::rt::spawn(connection);
    let promos = client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE start_time > now()) FROM flash_promos",
            &[],
        )
        .await
        .unwrap();
    let (all, later): (i64, i64) = (promos.get(0), promos.get(1));
    assert_eq!(
        (all, later),
        (2, 1),
        "one running, one later; the rerun added none"
    );
    let raffle = client
        .query_one(
            "SELECT count(*), min(status), min(subscriber_count), min(verified_count) FROM campaigns",
            &[],
        )
        .await
        .unwrap();
    let (campaigns, status): (i64, String) = (raffle.get(0), raffle.get(1));
    let (entries, verified): (i64, i64) = (raffle.get(2), raffle.get(3));
    assert_eq!((campaigns, status.as_str()), (1, "open"));
    assert!(
        entries > verified && verified > 0,
        "{entries} entries, {verified} verified"
    );
}

#[actix_web::test]
async fn serve_with_demo_data_lets_the_demo_shoppers_take_part_in_promos() {
    let (app, _service) = crate::helpers::spawn_process_app_with(60, &["--demo"]).await;
    let ana = app.login("ana", "shopper-pass").await;
    let sofia = app.login("sofia", "shopper-pass").await;
    let demo_promo = app
        .get("/api/promotions/flash-promos/eligible/", &ana)
        .await;
    assert_eq!(
        demo_promo.body["count"], 1,
        "the demo's running promo: {:?}",
        demo_promo.body
    );
    let segments = app.get("/api/users/user-segments/", &app.admin).await;
    let new_users = segments.body["results"][0]["id"].clone();
    let products = app.get("/api/market/products/", &ana).await;
    let promo = app
        .post(
            "/api/promotions/flash-promos/",
            &app.admin,
            json!({"product_id": products.body["results"][0]["id"], "promo_price": "499.00",
                   "segment_ids": [new_users], "start_time": crate::helpers::in_seconds(-1),
                   "end_time": crate::helpers::in_seconds(3600)}),
        )
        .await;
    assert_eq!(promo.status, StatusCode::CREATED, "{:?}", promo.body);
    let eligible = app
        .get("/api/promotions/flash-promos/eligible/", &ana)
        .await;
    assert_eq!(
        eligible.body["count"], 2,
        "ana is 300 m away and a new user: this promo and the demo's"
    );
    assert!(eligible.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .any(|item| item["id"] == promo.body["id"]));
    let far = app
        .post(
            "/api/promotions/promo-reservations/",
            &sofia,
            json!({"promo_id": promo.body["id"]}),
        )
        .await;
    assert_eq!(far.code(), "too_far", "sofia is 5 km away");
}

#[actix_web::test]
async fn the_flood_scenarios_run_briefly_and_report_what_they_measured() {
    let app = spawn_app().await;
    let (url, database_url) = (app.address.clone(), app.database_url());
    let pid = std::process::id().to_string();
    let login = tokio::task::spawn_blocking({
        let (url, database_url, pid) = (url.clone(), database_url.clone(), pid.clone());
        move || {
            let args = [
                "loadgen",
                "flood-login",
                "--url",
                &url,
                "--connections",
                "8",
            ];
            let more = ["--seconds", "1", "--server-pid", &pid, "--spread"];
            promo_engine(&database_url, &[&args[..], &more[..]].concat())
        }
    })
    .await
    .unwrap();
    let printed = String::from_utf8_lossy(&login.stdout);
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    for part in [
        "flood (8 connections",
        "token client:",
        "/healthz:",
        "server RSS:",
    ] {
        assert!(printed.contains(part), "{part} missing from: {printed}");
    }
    let ws = tokio::task::spawn_blocking(move || {
        let args = ["loadgen", "flood-ws", "--url", &url, "--frames", "200"];
        let more = ["--rest-clients", "4", "--server-pid", &pid];
        promo_engine(&database_url, &[&args[..], &more[..]].concat())
    })
    .await
    .unwrap();
    let printed = String::from_utf8_lossy(&ws.stdout);
    assert!(
        ws.status.success(),
        "{}",
        String::from_utf8_lossy(&ws.stderr)
    );
    assert!(printed.contains("too_many_requests"), "{printed}");
    assert!(printed.contains("REST (4 clients)"), "{printed}");
}

#[actix_web::test]
async fn the_flood_scenarios_refuse_to_target_another_machine() {
    let database = TestDatabase::new();
    let args = ["loadgen", "flood-login", "--url", "http://192.0.2.1:8080"];
    let output = tokio::task::spawn_blocking(move || promo_engine(&database.url(), &args))
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("loopback"));
}

#[actix_web::test]
async fn loadgen_eligible_against_healthz_prints_both_rates_and_their_ratio() {
    let app = spawn_app().await;
    let (url, database_url) = (app.address.clone(), app.database_url());
    let output = tokio::task::spawn_blocking(move || {
        let args = ["loadgen", "eligible", "--url", &url, "--promos", "25"];
        let more = ["--concurrency", "2", "--seconds", "1", "--against-healthz"];
        promo_engine(&database_url, &[&args[..], &more[..]].concat())
    })
    .await
    .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for part in [
        "eligible: ",
        "healthz: ",
        "each answer listed 25 eligible promos",
    ] {
        assert!(printed.contains(part), "{part} missing from: {printed}");
    }
    let ratio = printed
        .lines()
        .find(|line| line.starts_with("eligible/: "))
        .unwrap_or_default();
    assert!(ratio.contains(" req/s p50 "), "{printed}");
    assert!(ratio.contains("; /healthz: "), "{printed}");
    assert!(
        ratio.contains("; ratio ") && ratio.ends_with(" %"),
        "{printed}"
    );
    assert!(!printed.contains("not every answer was 200"), "{printed}");
    assert_eq!(app.count_rows("flash_promos").await, 25);
}

#[actix_web::test]
async fn serve_with_demo_leaves_a_database_that_is_not_a_demo_one_alone() {
    let app = spawn_app().await;
    app.create_store("Corner shop", 19.4326, -99.1332).await;
    app.create_segment("New users").await;
    let segments_before = app.count_rows("user_segments").await;
    let data_dir = tempfile::tempdir().expect("a data directory");
    let data_path = data_dir.path().to_string_lossy().into_owned();
    let _service = ServiceProcess::start_with_env(
        &app.database_url(),
        60,
        &["--demo"],
        &[("DATA_DIR", &data_path)],
    )
    .await;
    assert_eq!(app.count_rows("campaigns").await, 0, "no demo raffle");
    assert_eq!(app.count_rows("user_segments").await, segments_before);
    assert_eq!(app.count_rows("stores").await, 1, "no demo store");
    assert_eq!(app.count_rows("users WHERE username = 'ana'").await, 0);
    assert_eq!(app.count_rows("flash_promos").await, 0, "no demo promo");
}

#[actix_web::test]
async fn loadgen_reserve_spreads_its_reservations_over_every_url_given() {
    let app = spawn_app().await;
    let (url, database_url) = (app.address.clone(), app.database_url());
    let output = tokio::task::spawn_blocking(move || {
        let second = format!("{url}/");
        let args = ["loadgen", "reserve", "--url", &url, "--url", &second];
        let more = ["--shoppers", "6", "--promos", "2", "--concurrency", "3"];
        promo_engine(&database_url, &[&args[..], &more[..]].concat())
    })
    .await
    .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for part in ["round-robin over 2 URLs", "durable reservations: 12 in "] {
        assert!(printed.contains(part), "{part} missing from: {printed}");
    }
    assert_eq!(app.count_rows("promo_reservations").await, 12);
}

#[actix_web::test]
async fn loadgen_fanout_holds_sessions_past_its_share_in_helper_processes() {
    let app = spawn_app().await;
    let (url, database_url) = (app.address.clone(), app.database_url());
    let pid = std::process::id().to_string();
    let output = tokio::task::spawn_blocking(move || {
        let args = ["loadgen", "fanout", "--url", &url, "--url", &url];
        let more = ["--sessions", "12", "--sessions-per-process", "5"];
        let pids = ["--server-pid", &pid, "--server-pid", &pid];
        promo_engine(&database_url, &[&args[..], &more[..], &pids[..]].concat())
    })
    .await
    .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for part in [
        "2 helper processes",
        "server memory (sum of 2 processes): ",
        "with 12 idle sessions",
        "notified 12 of 12 connected eligible shoppers",
    ] {
        assert!(printed.contains(part), "{part} missing from: {printed}");
    }
}
