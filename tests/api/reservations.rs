//! `/api/promotions/promo-reservations/`: the one-minute hold, every refusal of
//! API.md's table, races, expiry, and the guarantees across a crash.

use std::time::Duration;

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{
    in_seconds, spawn_app, spawn_app_with, spawn_process_app, wait_until, ServiceProcess, Shopper,
    TestApp,
};

async fn sold_in_database(app: &TestApp, promo_id: i64) -> (i64, i64) {
    let client = app.pool.get().await.unwrap();
    let row = client
        .query_one(
            "SELECT f.sold::bigint, (SELECT count(*) FROM promo_reservations r \
             WHERE r.promo_id = f.id AND r.status = 'completed') FROM flash_promos f WHERE f.id = $1",
            &[&promo_id],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

async fn complete(
    app: &TestApp,
    shopper: &Shopper,
    reservation: &serde_json::Value,
) -> crate::helpers::Answer {
    app.post(
        &format!(
            "/api/promotions/promo-reservations/{}/complete/",
            reservation["id"]
        ),
        &shopper.auth,
        json!({}),
    )
    .await
}

async fn cancel(
    app: &TestApp,
    shopper: &Shopper,
    reservation: &serde_json::Value,
) -> crate::helpers::Answer {
    app.post(
        &format!(
            "/api/promotions/promo-reservations/{}/cancel/",
            reservation["id"]
        ),
        &shopper.auth,
        json!({}),
    )
    .await
}

#[actix_web::test]
async fn a_reservation_holds_a_unit_and_belongs_to_its_shopper() {
    let app = spawn_app().await;
    let market = app.create_market_at(19.4326, -99.1332).await;
    let promo = app.create_running_promo(&market, 3, json!({})).await;
    let promo_id = promo["id"].as_i64().unwrap();
    let ana = app
        .create_shopper("ana", Some((19.433, -99.133)), &[market.segment_id])
        .await;
    let luis = app
        .create_shopper("luis", Some((19.433, -99.133)), &[market.segment_id])
        .await;

    let held = app.reserve(&ana, promo_id).await;
    assert_eq!(held.status, StatusCode::CREATED, "{:?}", held.body);
    let reservation = &held.body;
    assert_eq!(reservation["status"], "held");
    assert_eq!(reservation["completed"], false);
    assert_eq!(reservation["promo"]["id"], promo_id);
    assert_eq!(reservation["promo"]["held"], 1);
    assert_eq!(reservation["promo"]["available"], 2);
    assert_eq!(reservation["reservation_id"].as_str().unwrap().len(), 36);
    let created =
        chrono::DateTime::parse_from_rfc3339(reservation["created_at"].as_str().unwrap()).unwrap();
    let expires =
        chrono::DateTime::parse_from_rfc3339(reservation["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!((expires - created).num_seconds(), 2, "the test hold is 2 s");
    // Durable before the 201: the row is there.
    assert_eq!(app.count_rows("promo_reservations").await, 1);

    let path = format!("/api/promotions/promo-reservations/{}/", reservation["id"]);
    assert_eq!(
        app.get(&path, &ana.auth).await.body["reservation_id"],
        reservation["reservation_id"]
    );
    assert_eq!(
        app.get("/api/promotions/promo-reservations/", &ana.auth)
            .await
            .body["count"],
        1
    );
    assert_eq!(
        app.get("/api/promotions/promo-reservations/", &luis.auth)
            .await
            .body["count"],
        0
    );
    assert_eq!(
        app.get(&path, &luis.auth).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        complete(&app, &luis, reservation).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        cancel(&app, &luis, reservation).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.get(&path, &ana.auth).await.body["status"], "held");
}

#[actix_web::test]
async fn every_refusal_has_its_status_and_code() {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    let promo = app.create_running_promo(&market, 1, json!({})).await;
    let promo_id = promo["id"].as_i64().unwrap();
    let other_segment = app.create_segment("Frequent buyers").await;
    let ana = app
        .create_shopper("ana", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    let luis = app
        .create_shopper("luis", Some((0.001, 0.0)), &[market.segment_id])
        .await;
    let outsider = app
        .create_shopper("out", Some((0.0, 0.0)), &[other_segment])
        .await;
    let lost = app.create_shopper("lost", None, &[market.segment_id]).await;
    let far = app
        .create_shopper("far", Some((1.0, 1.0)), &[market.segment_id])
        .await;

    let expect = |answer: crate::helpers::Answer, status: StatusCode, code: &str| {
        assert_eq!(answer.status, status, "{code}: {:?}", answer.body);
        assert_eq!(answer.code(), code);
        answer
    };
    expect(
        app.reserve(&ana, 424242).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let scheduled = app
        .post(
            "/api/promotions/flash-promos/",
            &app.admin,
            json!({"product_id": market.product_id, "promo_price": "1.00", "start_time": in_seconds(7200),
                   "end_time": in_seconds(9000), "segment_ids": [market.segment_id]}),
        )
        .await;
    expect(
        app.reserve(&ana, scheduled.body["id"].as_i64().unwrap())
            .await,
        StatusCode::CONFLICT,
        "promo_not_running",
    );
    expect(
        app.reserve(&outsider, promo_id).await,
        StatusCode::FORBIDDEN,
        "not_in_segment",
    );
    expect(
        app.reserve(&lost, promo_id).await,
        StatusCode::BAD_REQUEST,
        "location_unknown",
    );
    expect(
        app.reserve(&far, promo_id).await,
        StatusCode::FORBIDDEN,
        "too_far",
    );
    expect(app.reserve(&ana, promo_id).await, StatusCode::CREATED, "");
    expect(
        app.reserve(&ana, promo_id).await,
        StatusCode::CONFLICT,
        "already_reserved",
    );
    let busy = expect(
        app.reserve(&luis, promo_id).await,
        StatusCode::CONFLICT,
        "all_units_held",
    );
    let retry_after = busy.body["retry_after"].as_u64().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_eq!(
        busy.headers["retry-after"].to_str().unwrap(),
        retry_after.to_string()
    );
    let mine = app
        .get("/api/promotions/promo-reservations/", &ana.auth)
        .await
        .body["results"][0]
        .clone();
    assert_eq!(complete(&app, &ana, &mine).await.status, StatusCode::OK);
    expect(
        app.reserve(&luis, promo_id).await,
        StatusCode::CONFLICT,
        "sold_out",
    );
    // The admin has no profile, hence no segment.
    let admin = Shopper {
        profile_id: 0,
        user_id: 0,
        username: "admin".into(),
        auth: app.admin.clone(),
    };
    expect(
        app.reserve(&admin, promo_id).await,
        StatusCode::FORBIDDEN,
        "not_in_segment",
    );
    let bad = app
        .post(
            "/api/promotions/promo-reservations/",
            &ana.auth,
            json!({"promo_id": "5"}),
        )
        .await;
    assert_eq!(bad.code(), "validation_error");
    assert_eq!(app.count_rows("promo_reservations").await, 1);
}

#[actix_web::test]
async fn two_hundred_shoppers_racing_for_three_units_get_exactly_three_holds() {
    let app = spawn_app_with(|config| config.reservation_hold = Duration::from_secs(60)).await;
    let market = app.create_market_at(0.0, 0.0).await;
    let promo = app.create_running_promo(&market, 3, json!({})).await;
    let promo_id = promo["id"].as_i64().unwrap();
    let shoppers = app
        .create_shoppers_quickly("racer", 200, (0.0, 0.0), &[market.segment_id])
        .await;

    let answers = join_all(
        shoppers
            .iter()
            .map(|shopper| app.reserve(shopper, promo_id)),
    )
    .await;
    let held = answers
        .iter()
        .filter(|answer| answer.status == StatusCode::CREATED)
        .count();
    let busy = answers
        .iter()
        .filter(|answer| answer.code() == "all_units_held")
        .count();
    assert_eq!(
        (held, busy),
        (3, 197),
        "{:?}",
        answers
            .iter()
            .find(|a| a.status != StatusCode::CREATED && a.code() != "all_units_held")
    );
    let client = app.pool.get().await.unwrap();
    let rows: i64 = client
        .query_one(
            "SELECT count(*) FROM promo_reservations WHERE promo_id = $1 AND status = 'held'",
            &[&promo_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 3);
    let read = app
        .get(
            &format!("/api/promotions/flash-promos/{promo_id}/"),
            &app.admin,
        )
        .await;
    assert_eq!(
        (read.body["available"].clone(), read.body["held"].clone()),
        (json!(0), json!(3))
    );
}

#[actix_web::test]
async fn an_expired_hold_frees_its_unit_for_someone_else() {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    let promo_id = app.create_running_promo(&market, 1, json!({})).await["id"]
        .as_i64()
        .unwrap();
    let ana = app
        .create_shopper("ana", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    let luis = app
        .create_shopper("luis", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    let first = app.reserve(&ana, promo_id).await.body;
    assert_eq!(app.reserve(&luis, promo_id).await.code(), "all_units_held");
    let taken = wait_until(Duration::from_secs(6), || async {
        app.reserve(&luis, promo_id).await.status == StatusCode::CREATED
    })
    .await;
    assert!(taken, "the unit never came free");
    let path = format!("/api/promotions/promo-reservations/{}/", first["id"]);
    assert_eq!(app.get(&path, &ana.auth).await.body["status"], "expired");
    let late = complete(&app, &ana, &first).await;
    assert_eq!(late.status, StatusCode::CONFLICT);
    assert_eq!(late.code(), "reservation_expired");
    assert_eq!(
        cancel(&app, &ana, &first).await.code(),
        "reservation_expired"
    );
    let client = app.pool.get().await.unwrap();
    let stored: String = client
        .query_one(
            "SELECT status FROM promo_reservations WHERE id = $1",
            &[&first["id"].as_i64().unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, "expired", "the expiry was written");
}

#[actix_web::test]
async fn completing_is_idempotent_and_the_last_sale_sells_out() {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    let promo_id = app.create_running_promo(&market, 1, json!({})).await["id"]
        .as_i64()
        .unwrap();
    let ana = app
        .create_shopper("ana", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    let luis = app
        .create_shopper("luis", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    let reservation = app.reserve(&ana, promo_id).await.body;
    let first = complete(&app, &ana, &reservation).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert_eq!(first.body["status"], "completed");
    assert_eq!(first.body["reservation"]["completed"], true);
    assert_eq!(first.body["reservation"]["promo"]["status"], "sold_out");
    let again = complete(&app, &ana, &reservation).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["reservation"]["id"], reservation["id"]);
    assert_eq!(
        cancel(&app, &ana, &reservation).await.code(),
        "already_completed"
    );
    assert_eq!(app.reserve(&luis, promo_id).await.code(), "sold_out");
    assert_eq!(
        app.get("/api/promotions/flash-promos/running/", &luis.auth)
            .await
            .body["count"],
        0
    );
    assert_eq!(
        app.get("/api/promotions/flash-promos/eligible/", &luis.auth)
            .await
            .body["count"],
        0
    );
    let read = app
        .get(
            &format!("/api/promotions/flash-promos/{promo_id}/"),
            &luis.auth,
        )
        .await;
    assert_eq!(read.body["status"], "sold_out");
    assert_eq!(sold_in_database(&app, promo_id).await, (1, 1));
}

#[actix_web::test]
async fn cancelling_releases_at_once_and_is_idempotent() {
    let app = spawn_app_with(|config| config.reservation_hold = Duration::from_secs(60)).await;
    let market = app.create_market_at(0.0, 0.0).await;
    let promo_id = app.create_running_promo(&market, 1, json!({})).await["id"]
        .as_i64()
        .unwrap();
    let ana = app
        .create_shopper("ana", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    let luis = app
        .create_shopper("luis", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    let reservation = app.reserve(&ana, promo_id).await.body;
    let cancelled = cancel(&app, &ana, &reservation).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(
        cancel(&app, &ana, &reservation).await.status,
        StatusCode::OK
    );
    assert_eq!(
        complete(&app, &ana, &reservation).await.code(),
        "reservation_cancelled"
    );
    assert_eq!(
        app.reserve(&luis, promo_id).await.status,
        StatusCode::CREATED
    );
}

#[actix_web::test]
async fn completions_racing_expiry_never_sell_an_expired_hold_or_oversell() {
    let app = spawn_app_with(|config| config.reservation_hold = Duration::from_secs(1)).await;
    let market = app.create_market_at(0.0, 0.0).await;
    let promo_id = app.create_running_promo(&market, 20, json!({})).await["id"]
        .as_i64()
        .unwrap();
    let shoppers = app
        .create_shoppers_quickly("late", 20, (0.0, 0.0), &[market.segment_id])
        .await;
    let reservations = join_all(
        shoppers
            .iter()
            .map(|shopper| app.reserve(shopper, promo_id)),
    )
    .await;
    // Complete each hold at a different moment around its expiry; whatever
    // the timing, each must end sold or expired, and never both.
    let app = &app;
    let attempts =
        shoppers
            .iter()
            .zip(&reservations)
            .enumerate()
            .map(|(index, (shopper, held))| async move {
                tokio::time::sleep(Duration::from_millis(700 + 30 * index as u64)).await;
                complete(app, shopper, &held.body).await
            });
    let answers = join_all(attempts).await;
    let completed = answers
        .iter()
        .filter(|answer| answer.status == StatusCode::OK)
        .count();
    let expired = answers
        .iter()
        .filter(|answer| answer.code() == "reservation_expired")
        .count();
    assert_eq!(
        completed + expired,
        20,
        "{:?}",
        answers
            .iter()
            .map(|a| a.code().to_owned())
            .collect::<Vec<_>>()
    );
    let (sold, completed_rows) = sold_in_database(app, promo_id).await;
    assert_eq!((sold, completed_rows), (completed as i64, completed as i64));
    // Every hold that was not sold ends expired, in the database too.
    let client = app.pool.get().await.unwrap();
    let settled = wait_until(Duration::from_secs(5), || async {
        let expired_rows: i64 = client
            .query_one(
                "SELECT count(*) FROM promo_reservations WHERE promo_id = $1 AND status = 'expired'",
                &[&promo_id],
            )
            .await
            .unwrap()
            .get(0);
        expired_rows == expired as i64
    })
    .await;
    assert!(settled, "unsold holds were not all written as expired");
}

#[actix_web::test]
async fn a_crash_in_the_middle_of_live_holds_changes_nothing_a_client_sees() {
    let (mut app, mut first) = spawn_process_app(30).await;
    let market = app.create_market_at(0.0, 0.0).await;
    let promo_id = app.create_running_promo(&market, 2, json!({})).await["id"]
        .as_i64()
        .unwrap();
    let shoppers = app
        .create_shoppers_quickly("crash", 3, (0.0, 0.0), &[market.segment_id])
        .await;
    let (ana, luis, sofia) = (&shoppers[0], &shoppers[1], &shoppers[2]);
    let ana_hold = app.reserve(ana, promo_id).await.body;
    let luis_hold = app.reserve(luis, promo_id).await.body;
    assert_eq!(app.reserve(sofia, promo_id).await.code(), "all_units_held");

    first.kill();
    let second = ServiceProcess::start(&app.database_url(), 30).await;
    app.address = second.address.clone();

    let path = format!("/api/promotions/promo-reservations/{}/", ana_hold["id"]);
    let after = app.get(&path, &ana.auth).await.body;
    assert_eq!(after["status"], "held");
    assert_eq!(
        after["expires_at"], ana_hold["expires_at"],
        "same expiry after the restart"
    );
    let busy = app.reserve(sofia, promo_id).await;
    assert_eq!(
        busy.code(),
        "all_units_held",
        "both holds survived: {:?}",
        busy.body
    );
    let retry_after = busy.body["retry_after"].as_u64().unwrap();
    assert!(
        (20..=30).contains(&retry_after),
        "remaining time kept: {retry_after}"
    );
    assert_eq!(app.reserve(ana, promo_id).await.code(), "already_reserved");

    assert_eq!(complete(&app, ana, &ana_hold).await.status, StatusCode::OK);
    assert_eq!(complete(&app, ana, &ana_hold).await.status, StatusCode::OK);
    assert_eq!(cancel(&app, luis, &luis_hold).await.status, StatusCode::OK);
    assert_eq!(
        app.reserve(sofia, promo_id).await.status,
        StatusCode::CREATED
    );
    assert_eq!(sold_in_database(&app, promo_id).await, (1, 1));
    drop(second);
}

#[actix_web::test]
async fn holds_that_expire_while_the_service_is_down_are_released_after_it_returns() {
    let (mut app, mut first) = spawn_process_app(2).await;
    let market = app.create_market_at(0.0, 0.0).await;
    let promo_id = app.create_running_promo(&market, 1, json!({})).await["id"]
        .as_i64()
        .unwrap();
    let shoppers = app
        .create_shoppers_quickly("down", 2, (0.0, 0.0), &[market.segment_id])
        .await;
    let held = app.reserve(&shoppers[0], promo_id).await.body;
    first.kill();
    // The service stays down until the hold has run out.
    let expires: chrono::DateTime<chrono::Utc> =
        held["expires_at"].as_str().unwrap().parse().unwrap();
    let until_expiry = (expires - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(until_expiry + Duration::from_millis(100)).await;
    let second = ServiceProcess::start(&app.database_url(), 2).await;
    app.address = second.address.clone();
    assert_eq!(
        app.reserve(&shoppers[1], promo_id).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        complete(&app, &shoppers[0], &held).await.code(),
        "reservation_expired"
    );
    let client = app.pool.get().await.unwrap();
    let expired_written = wait_until(Duration::from_secs(5), || async {
        let status: String = client
            .query_one(
                "SELECT status FROM promo_reservations WHERE id = $1",
                &[&held["id"].as_i64().unwrap()],
            )
            .await
            .unwrap()
            .get(0);
        status == "expired"
    })
    .await;
    assert!(expired_written);
    drop(second);
}

#[actix_web::test]
async fn a_hold_that_cannot_be_written_is_undone_and_answered_503() {
    let proxy = crate::helpers::DbProxy::start().await;
    let app = crate::helpers::spawn_app_through(&proxy).await;
    let market = app.create_market_at(0.0, 0.0).await;
    let promo_id = app.create_running_promo(&market, 1, json!({})).await["id"]
        .as_i64()
        .unwrap();
    let ana = app
        .create_shopper("ana", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    let luis = app
        .create_shopper("luis", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    // Authenticate once while the database is up (credentials are then cached).
    assert_eq!(
        app.get("/api/promotions/flash-promos/running/", &ana.auth)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/promotions/flash-promos/running/", &luis.auth)
            .await
            .status,
        StatusCode::OK
    );

    proxy.cut();
    let refused = app.reserve(&ana, promo_id).await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        refused.body
    );
    assert_eq!(refused.code(), "unavailable");
    proxy.restore();

    // The undone hold left the unit free and ana free to try again.
    let taken = wait_until(Duration::from_secs(15), || async {
        app.reserve(&luis, promo_id).await.status == StatusCode::CREATED
    })
    .await;
    assert!(
        taken,
        "the unit stayed taken by a hold that was never written"
    );
    assert_eq!(app.reserve(&ana, promo_id).await.code(), "all_units_held");
    assert_eq!(app.count_rows("promo_reservations").await, 1);
}

#[actix_web::test]
async fn quantity_changes_respect_committed_units() {
    let app = spawn_app_with(|config| config.reservation_hold = Duration::from_secs(60)).await;
    let market = app.create_market_at(0.0, 0.0).await;
    let promo_id = app.create_running_promo(&market, 3, json!({})).await["id"]
        .as_i64()
        .unwrap();
    let path = format!("/api/promotions/flash-promos/{promo_id}/");
    let shoppers = app
        .create_shoppers_quickly("qty", 3, (0.0, 0.0), &[market.segment_id])
        .await;
    let sold = app.reserve(&shoppers[0], promo_id).await.body;
    assert_eq!(
        complete(&app, &shoppers[0], &sold).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.reserve(&shoppers[1], promo_id).await.status,
        StatusCode::CREATED
    );

    let too_low = app.patch(&path, &app.admin, json!({"quantity": 1})).await;
    assert_eq!(too_low.status, StatusCode::CONFLICT);
    assert_eq!(too_low.code(), "quantity_below_committed");
    assert_eq!(app.get(&path, &app.admin).await.body["quantity"], 3);
    // The refused change did not shrink the stock in memory either.
    assert_eq!(
        app.reserve(&shoppers[2], promo_id).await.status,
        StatusCode::CREATED
    );

    let exact = app.patch(&path, &app.admin, json!({"quantity": 3})).await;
    assert_eq!(exact.status, StatusCode::OK);
    let lowered_to_committed = app.patch(&path, &app.admin, json!({"quantity": 2})).await;
    assert_eq!(lowered_to_committed.code(), "quantity_below_committed");
}

#[actix_web::test]
async fn raising_the_quantity_of_a_sold_out_promo_runs_it_again() {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    let promo_id = app.create_running_promo(&market, 1, json!({})).await["id"]
        .as_i64()
        .unwrap();
    let path = format!("/api/promotions/flash-promos/{promo_id}/");
    let shoppers = app
        .create_shoppers_quickly("more", 2, (0.0, 0.0), &[market.segment_id])
        .await;
    let held = app.reserve(&shoppers[0], promo_id).await.body;
    assert_eq!(
        complete(&app, &shoppers[0], &held).await.status,
        StatusCode::OK
    );
    assert_eq!(app.get(&path, &app.admin).await.body["status"], "sold_out");
    assert_eq!(app.reserve(&shoppers[1], promo_id).await.code(), "sold_out");

    let raised = app.patch(&path, &app.admin, json!({"quantity": 2})).await;
    assert_eq!(raised.status, StatusCode::OK, "{:?}", raised.body);
    assert_eq!(raised.body["status"], "running");
    assert_eq!(raised.body["available"], 1);
    assert_eq!(
        app.get("/api/promotions/flash-promos/running/", &shoppers[1].auth)
            .await
            .body["count"],
        1
    );
    assert_eq!(
        app.reserve(&shoppers[1], promo_id).await.status,
        StatusCode::CREATED
    );
}

#[actix_web::test]
async fn a_hold_taken_before_the_end_may_complete_after_it() {
    let app = spawn_app_with(|config| config.reservation_hold = Duration::from_secs(30)).await;
    let market = app.create_market_at(0.0, 0.0).await;
    let promo = app
        .create_running_promo(&market, 2, json!({"end_time": in_seconds(2)}))
        .await;
    let promo_id = promo["id"].as_i64().unwrap();
    let shoppers = app
        .create_shoppers_quickly("late", 2, (0.0, 0.0), &[market.segment_id])
        .await;
    let held = app.reserve(&shoppers[0], promo_id).await.body;
    let ended = wait_until(Duration::from_secs(6), || async {
        app.get(
            &format!("/api/promotions/flash-promos/{promo_id}/"),
            &app.admin,
        )
        .await
        .body["status"]
            == "ended"
    })
    .await;
    assert!(ended);
    assert_eq!(
        app.reserve(&shoppers[1], promo_id).await.code(),
        "promo_not_running"
    );
    let completed = complete(&app, &shoppers[0], &held).await;
    assert_eq!(completed.status, StatusCode::OK, "{:?}", completed.body);
    assert_eq!(sold_in_database(&app, promo_id).await, (1, 1));
}

#[actix_web::test]
async fn a_hold_on_a_promo_that_ended_while_the_service_was_down_may_still_complete() {
    let (mut app, mut first) = spawn_process_app(30).await;
    let market = app.create_market_at(0.0, 0.0).await;
    let promo = app
        .create_running_promo(&market, 1, json!({"end_time": in_seconds(3)}))
        .await;
    let promo_id = promo["id"].as_i64().unwrap();
    let shoppers = app
        .create_shoppers_quickly("gone", 1, (0.0, 0.0), &[market.segment_id])
        .await;
    let held = app.reserve(&shoppers[0], promo_id).await.body;
    first.kill();
    // Down until the promo is over.
    let end: chrono::DateTime<chrono::Utc> = promo["end_time"].as_str().unwrap().parse().unwrap();
    tokio::time::sleep(
        (end - chrono::Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(200),
    )
    .await;
    let second = ServiceProcess::start(&app.database_url(), 30).await;
    app.address = second.address.clone();
    let completed = complete(&app, &shoppers[0], &held).await;
    assert_eq!(completed.status, StatusCode::OK, "{:?}", completed.body);
    assert_eq!(sold_in_database(&app, promo_id).await, (1, 1));
}

// Stale `held` rows ------------------------------------------------------------

/// A promo of `product_id` that ran from two hours ago to one hour ago,
/// written straight to the database (the API refuses a window in the past).
async fn insert_ended_promo(app: &TestApp, product_id: i64) -> i64 {
    let client = app.pool.get().await.unwrap();
    client
        .query_one(
            "INSERT INTO flash_promos (product_id, promo_price, start_time, end_time, quantity) \
             VALUES ($1, 499, now() - interval '2 hours', now() - interval '1 hour', 1) \
             RETURNING id",
            &[&product_id],
        )
        .await
        .unwrap()
        .get(0)
}

/// A `held` row written straight to the database, expiring `seconds` from now.
async fn insert_held_row(app: &TestApp, promo_id: i64, user_id: i64, seconds: i64) -> i64 {
    let client = app.pool.get().await.unwrap();
    client
        .query_one(
            "INSERT INTO promo_reservations (reservation_id, promo_id, user_id, status, \
             created_at, expires_at) VALUES (gen_random_uuid(), $1, $2, 'held', \
             now() - interval '10 minutes', now() + make_interval(secs => $3)) RETURNING id",
            &[&promo_id, &user_id, &(seconds as f64)],
        )
        .await
        .unwrap()
        .get(0)
}

async fn row_status(app: &TestApp, row_id: i64) -> String {
    let client = app.pool.get().await.unwrap();
    client
        .query_one(
            "SELECT status FROM promo_reservations WHERE id = $1",
            &[&row_id],
        )
        .await
        .unwrap()
        .get(0)
}

#[actix_web::test]
async fn stale_held_rows_are_settled_at_the_next_resync_and_free_their_shopper() {
    let app = spawn_app_with(|config| {
        config.registry_resync_interval = Duration::from_millis(100);
    })
    .await;
    let off_market = app.create_market_at(0.0, 0.0).await;
    let off_id = app
        .create_running_promo(&off_market, 1, json!({"is_active": false}))
        .await["id"]
        .as_i64()
        .unwrap();
    let over_market = app.create_market_at(0.0, 0.0).await;
    let over_id = insert_ended_promo(&app, over_market.product_id).await;
    let live_market = app.create_market_at(0.0, 0.0).await;
    let live_id = app.create_running_promo(&live_market, 3, json!({})).await["id"]
        .as_i64()
        .unwrap();
    let shoppers = app
        .create_shoppers_quickly("stale", 2, (0.0, 0.0), &[off_market.segment_id])
        .await;
    let (ana, luis) = (&shoppers[0], &shoppers[1]);

    let off_row = insert_held_row(&app, off_id, ana.user_id, 3600).await;
    let over_row = insert_held_row(&app, over_id, ana.user_id, -60).await;
    // A live actor owns this promo and the hold has time left: not the resync's.
    let live_row = insert_held_row(&app, live_id, luis.user_id, 3600).await;

    let settled = wait_until(Duration::from_secs(5), || async {
        row_status(&app, off_row).await == "cancelled"
            && row_status(&app, over_row).await == "expired"
    })
    .await;
    assert!(
        settled,
        "stale rows left as {} and {}",
        row_status(&app, off_row).await,
        row_status(&app, over_row).await
    );
    assert_eq!(row_status(&app, live_row).await, "held");

    let on = app
        .patch(
            &format!("/api/promotions/flash-promos/{off_id}/"),
            &app.admin,
            json!({"is_active": true}),
        )
        .await;
    assert_eq!(on.body["status"], "running", "{:?}", on.body);
    let again = app.reserve(ana, off_id).await;
    assert_eq!(again.status, StatusCode::CREATED, "{:?}", again.body);
}

#[actix_web::test]
async fn holds_of_an_ended_promo_that_ran_out_while_the_service_was_down_are_settled_at_boot() {
    let (mut app, mut first) = spawn_process_app(30).await;
    let market = app.create_market_at(0.0, 0.0).await;
    let over_id = insert_ended_promo(&app, market.product_id).await;
    let shopper = app
        .create_shoppers_quickly("boot", 1, (0.0, 0.0), &[market.segment_id])
        .await
        .remove(0);
    first.kill();
    let row = insert_held_row(&app, over_id, shopper.user_id, -60).await;
    let second = ServiceProcess::start(&app.database_url(), 30).await;
    app.address = second.address.clone();
    let settled = wait_until(Duration::from_secs(5), || async {
        row_status(&app, row).await == "expired"
    })
    .await;
    assert!(settled, "the row is still {}", row_status(&app, row).await);
}
