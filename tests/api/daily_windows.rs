//! Daily windows: promos that run every day between two local times, each
//! run an occurrence with its own stock.
//!
//! `HH:MM` has minute resolution, so the tests use real arithmetic rather
//! than a clock knob: the window is the whole day (`00:00`–`24:00`) and
//! `start_time`/`end_time` cut today's occurrence to a few seconds. The next
//! occurrence is made to begin, once the current one has ended, by moving
//! the range (a PATCH of `start_time`/`end_time`): the occurrence that then
//! contains "now" starts at the new `start_time`, a different occurrence with
//! fresh stock, exactly as tomorrow's would. (Moving the start of an
//! occurrence while it runs keeps it the same occurrence.)

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{
    in_seconds, spawn_app, spawn_app_with, wait_until, Auth, Market, Shopper, TestApp,
};
use crate::websocket::{next_json, next_of, ws_url, Socket};

const PROMOS: &str = "/api/promotions/flash-promos/";

fn all_day() -> Value {
    json!({"start": "00:00", "end": "24:00", "timezone": "UTC"})
}

/// A whole-day window in a zone where it is now at least three hours past
/// midnight, so that an hour earlier is still the same local day.
fn all_day_far_from_midnight() -> Value {
    use chrono::Timelike;
    let zone = if (6..18).contains(&chrono::Utc::now().hour()) {
        "UTC"
    } else {
        // UTC+9: 03:00 to 15:00 there.
        "Asia/Tokyo"
    };
    json!({"start": "00:00", "end": "24:00", "timezone": zone})
}

/// A daily promo of `market` whose occurrence today runs from now for `seconds`.
pub(crate) async fn create_daily(
    app: &TestApp,
    market: &Market,
    quantity: u32,
    seconds: i64,
) -> Value {
    create_daily_in(app, market, quantity, seconds, all_day()).await
}

/// [`create_daily`] with its own daily window.
async fn create_daily_in(
    app: &TestApp,
    market: &Market,
    quantity: u32,
    seconds: i64,
    window: Value,
) -> Value {
    let answer = app
        .post(
            PROMOS,
            &app.admin,
            json!({
                "product_id": market.product_id, "promo_price": "499.00",
                "start_time": in_seconds(0), "end_time": in_seconds(seconds),
                "segment_ids": [market.segment_id], "quantity": quantity,
                "daily_window": window,
            }),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    answer.body
}

/// Moves the range so that the next occurrence starts now, for `seconds`.
async fn begin_next_occurrence(app: &TestApp, promo_id: i64, seconds: i64) -> Value {
    let answer = app
        .patch(
            &format!("{PROMOS}{promo_id}/"),
            &app.admin,
            json!({"start_time": in_seconds(0), "end_time": in_seconds(seconds)}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    answer.body
}

async fn promo(app: &TestApp, promo_id: i64) -> Value {
    app.get(&format!("{PROMOS}{promo_id}/"), &app.admin)
        .await
        .body
}

async fn wait_for_status(app: &TestApp, promo_id: i64, status: &str, within: Duration) -> bool {
    wait_until(within, || async {
        promo(app, promo_id).await["status"] == status
    })
    .await
}

async fn connect(app: &TestApp, shopper: &Shopper) -> Socket {
    let Auth::Token(token) = &shopper.auth else {
        panic!("a token expected");
    };
    let (mut socket, _) = connect_async(ws_url(app, token)).await.expect("upgrade");
    assert_eq!(next_json(&mut socket).await["type"], "hello");
    socket
}

/// The next frame of `kind`, waiting up to `within` ([`next_of`] gives up
/// after 5 s without a frame; an occurrence may end later than that).
async fn next_of_within(socket: &mut Socket, kind: &str, within: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .unwrap_or_else(|_| panic!("a {kind} frame within {within:?}"))
            .expect("the socket is open")
            .expect("a valid frame");
        if let Message::Text(text) = message {
            let frame: Value = serde_json::from_str(&text).expect("JSON");
            if frame["type"] == kind {
                return frame;
            }
        }
    }
}

/// How many frames of `kind` arrive until `until` (a frame in flight at
/// that instant may be missed; a frame sent at once after a change is not).
async fn count_frames_until(
    socket: &mut Socket,
    kind: &str,
    until: chrono::DateTime<chrono::Utc>,
) -> usize {
    let left = (until - chrono::Utc::now()).to_std().unwrap_or_default();
    let deadline = tokio::time::Instant::now() + left;
    let mut count = 0;
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, socket.next()).await {
        if let Message::Text(text) = message.expect("a valid frame") {
            let frame: Value = serde_json::from_str(&text).expect("JSON");
            count += usize::from(frame["type"] == kind);
        }
    }
    count
}

async fn complete(app: &TestApp, shopper: &Shopper, reservation: &Value) -> Value {
    let answer = app
        .post(
            &format!(
                "/api/promotions/promo-reservations/{}/complete/",
                reservation["id"]
            ),
            &shopper.auth,
            json!({}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    answer.body["reservation"].clone()
}

#[actix_web::test]
async fn each_occurrence_is_announced_sells_out_ends_and_the_next_starts_fresh() {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    // Shoppers first: hashing their passwords takes a while in a debug build.
    // Bob is out of reach until the first occurrence is over, so the one
    // start he is told of is the next occurrence's.
    let ana = app
        .create_shopper("ana", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    let bob = app
        .create_shopper("bob", Some((10.0, 10.0)), &[market.segment_id])
        .await;
    let cleo = app
        .create_shopper("cleo", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    let mut ana_socket = connect(&app, &ana).await;
    let created = create_daily(&app, &market, 1, 6).await;
    let promo_id = created["id"].as_i64().unwrap();
    assert_eq!(created["daily_window"], all_day());
    assert_eq!(created["status"], "running");
    assert_eq!(created["occurrence"]["start"], created["start_time"]);
    assert_eq!(created["occurrence"]["end"], created["end_time"]);
    let told = next_of(&mut ana_socket, "promo.notification").await;
    assert_eq!(told["promo"]["id"], promo_id);

    let held = app.reserve(&ana, promo_id).await;
    assert_eq!(held.status, StatusCode::CREATED, "{:?}", held.body);
    assert_eq!(held.body["occurrence_start"], created["start_time"]);
    complete(&app, &ana, &held.body).await;
    let sold_out = next_of(&mut ana_socket, "promo.ended").await;
    assert_eq!(sold_out["reason"], "sold_out");
    assert_eq!(app.reserve(&cleo, promo_id).await.code(), "sold_out");
    assert!(wait_for_status(&app, promo_id, "ended", Duration::from_secs(20)).await);
    app.move_shopper(&bob, 0.0, 0.0).await;
    assert_eq!(
        app.reserve(&bob, promo_id).await.code(),
        "promo_not_running"
    );

    let mut bob_socket = connect(&app, &bob).await;
    let next = begin_next_occurrence(&app, promo_id, 6).await;
    assert_eq!(next["status"], "running");
    assert_eq!(next["occurrence"]["start"], next["start_time"]);
    assert_eq!(
        (next["available"].clone(), next["sold"].clone()),
        (json!(1), json!(0))
    );
    assert_eq!(next["sold_total"], 1);
    // The start is announced again: bob hears of it; ana had hers today.
    let told = next_of(&mut bob_socket, "promo.notification").await;
    assert_eq!(told["promo"]["id"], promo_id);
    let again = app.reserve(&ana, promo_id).await;
    assert_eq!(again.status, StatusCode::CREATED, "one hold per occurrence");
    assert_eq!(again.body["occurrence_start"], next["start_time"]);
    let ended = next_of_within(&mut ana_socket, "promo.ended", Duration::from_secs(20)).await;
    assert_eq!(
        (ended["promo_id"].clone(), ended["reason"].clone()),
        (json!(promo_id), json!("ended"))
    );
    let inbox = app.get("/api/users/notifications/", &ana.auth).await;
    assert_eq!(inbox.body["count"], 1, "at most one notification a day");
}

#[actix_web::test]
async fn a_hold_of_one_occurrence_completes_in_the_next_without_counting_against_it() {
    let app = spawn_app_with(|config| config.reservation_hold = Duration::from_secs(15)).await;
    let market = app.create_market_at(0.0, 0.0).await;
    let ana = app
        .create_shopper("ana", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    let bob = app
        .create_shopper("bob", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    let created = create_daily(&app, &market, 1, 5).await;
    let promo_id = created["id"].as_i64().unwrap();
    let first = app.reserve(&ana, promo_id).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    assert!(wait_for_status(&app, promo_id, "ended", Duration::from_secs(20)).await);

    let next = begin_next_occurrence(&app, promo_id, 30).await;
    assert_eq!(
        (next["available"].clone(), next["held"].clone()),
        (json!(1), json!(0)),
        "the last occurrence's hold is not this one's"
    );
    let second = app.reserve(&bob, promo_id).await;
    assert_eq!(second.status, StatusCode::CREATED, "{:?}", second.body);
    let bought = complete(&app, &ana, &first.body).await;
    assert_eq!(bought["occurrence_start"], created["start_time"]);
    let now = promo(&app, promo_id).await;
    assert_eq!(
        (
            now["available"].clone(),
            now["held"].clone(),
            now["sold"].clone(),
            now["sold_total"].clone()
        ),
        (json!(0), json!(1), json!(0), json!(1))
    );
    complete(&app, &bob, &second.body).await;
    let now = promo(&app, promo_id).await;
    assert_eq!(
        (now["status"].clone(), now["sold"].clone()),
        (json!("sold_out"), json!(1))
    );
    assert_eq!(now["sold_total"], 2);
    let client = app.pool.get().await.unwrap();
    let rows = client
        .query(
            "SELECT sold, quantity FROM promo_occurrences WHERE promo_id = $1 ORDER BY occurrence_start",
            &[&promo_id],
        )
        .await
        .unwrap();
    let per_occurrence: Vec<(i32, i32)> = rows.iter().map(|row| (row.get(0), row.get(1))).collect();
    assert_eq!(per_occurrence, vec![(1, 1), (1, 1)]);
}

fn daily_body(market: &Market, start: &str, end: &str) -> Value {
    json!({
        "product_id": market.product_id, "promo_price": "499.00",
        "start_time": in_seconds(3600), "end_time": in_seconds(4 * 86_400),
        "segment_ids": [market.segment_id],
        "daily_window": {"start": start, "end": end, "timezone": "America/Mexico_City"},
    })
}

#[actix_web::test]
async fn promos_of_one_product_overlap_when_any_of_their_occurrences_do() {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    let evening = app
        .post(PROMOS, &app.admin, daily_body(&market, "17:00", "19:00"))
        .await;
    assert_eq!(evening.status, StatusCode::CREATED, "{:?}", evening.body);
    let morning = app
        .post(PROMOS, &app.admin, daily_body(&market, "08:00", "10:00"))
        .await;
    assert_eq!(
        morning.status,
        StatusCode::CREATED,
        "same dates, disjoint hours"
    );
    let touching = app
        .post(PROMOS, &app.admin, daily_body(&market, "19:00", "20:00"))
        .await;
    assert_eq!(
        touching.status,
        StatusCode::CREATED,
        "touching hours do not overlap"
    );
    let late = app
        .post(PROMOS, &app.admin, daily_body(&market, "18:30", "18:45"))
        .await;
    assert_eq!(
        (late.status, late.code()),
        (StatusCode::CONFLICT, "overlap")
    );

    // A continuous promo across a whole day meets the evening's occurrence.
    let mut continuous = daily_body(&market, "00:00", "24:00");
    continuous["daily_window"] = Value::Null;
    continuous["start_time"] = json!(in_seconds(2 * 86_400));
    continuous["end_time"] = json!(in_seconds(3 * 86_400));
    let whole_day = app.post(PROMOS, &app.admin, continuous.clone()).await;
    assert_eq!(
        (whole_day.status, whole_day.code()),
        (StatusCode::CONFLICT, "overlap")
    );
    // Moved past the daily promos' dates, it fits.
    continuous["start_time"] = json!(in_seconds(5 * 86_400));
    continuous["end_time"] = json!(in_seconds(6 * 86_400));
    assert_eq!(
        app.post(PROMOS, &app.admin, continuous).await.status,
        StatusCode::CREATED
    );

    let morning_path = format!("{PROMOS}{}/", morning.body["id"]);
    let moved = app
        .patch(
            &morning_path,
            &app.admin,
            json!({"daily_window": {"start": "16:00", "end": "17:30", "timezone": "America/Mexico_City"}}),
        )
        .await;
    assert_eq!(
        (moved.status, moved.code()),
        (StatusCode::CONFLICT, "overlap")
    );
    let other_zone = app
        .patch(
            &morning_path,
            &app.admin,
            json!({"daily_window": {"start": "17:00", "end": "19:00", "timezone": "Asia/Tokyo"}}),
        )
        .await;
    assert_eq!(
        other_zone.status,
        StatusCode::OK,
        "17:00 in Tokyo is 02:00 in Mexico City"
    );
}

#[actix_web::test]
async fn two_writers_of_overlapping_daily_promos_cannot_both_pass() {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    let writes = (0..4).map(|minute| {
        let body = daily_body(&market, &format!("17:0{minute}"), "19:00");
        let app = &app;
        async move { app.post(PROMOS, &app.admin, body).await.status }
    });
    let statuses = futures_util::future::join_all(writes).await;
    let created = statuses
        .iter()
        .filter(|status| **status == StatusCode::CREATED)
        .count();
    let refused = statuses
        .iter()
        .filter(|status| **status == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, refused), (1, 3), "{statuses:?}");
}

#[actix_web::test]
async fn bad_daily_windows_are_refused_by_field_and_good_ones_returned_as_written() {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    let bad = [
        json!("17:00-19:00"),
        json!({"start": "7:00", "end": "19:00", "timezone": "UTC"}),
        json!({"start": "17:00", "end": "25:00", "timezone": "UTC"}),
        json!({"start": "19:00", "end": "17:00", "timezone": "UTC"}),
        json!({"start": "17:00", "end": "19:00", "timezone": "Mars/Olympus"}),
        json!({"start": "17:00", "end": "19:00"}),
        json!({"start": 17, "end": "19:00", "timezone": "UTC"}),
        json!({"start": "17:00", "end": "19:00", "timezone": "UTC", "days": "weekdays"}),
    ];
    for window in bad {
        let mut body = daily_body(&market, "17:00", "19:00");
        body["daily_window"] = window.clone();
        let answer = app.post(PROMOS, &app.admin, body).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{window}: {:?}",
            answer.body
        );
        assert_eq!(answer.code(), "validation_error");
        assert!(
            answer.body["fields"]["daily_window"].is_array(),
            "{:?}",
            answer.body
        );
    }
    // A window whose hours miss the dates has no occurrence at all.
    let mut missed = daily_body(&market, "17:00", "19:00");
    missed["start_time"] = json!("2031-01-01T10:00:00Z");
    missed["end_time"] = json!("2031-01-01T12:00:00Z");
    let answer = app.post(PROMOS, &app.admin, missed).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer.body["fields"]["daily_window"].is_array(),
        "{:?}",
        answer.body
    );
    assert_eq!(app.count_rows("flash_promos").await, 0, "nothing written");

    let created = app
        .post(PROMOS, &app.admin, daily_body(&market, "17:00", "24:00"))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(
        created.body["daily_window"],
        json!({"start": "17:00", "end": "24:00", "timezone": "America/Mexico_City"})
    );
    assert_eq!(created.body["status"], "scheduled");
    assert!(created.body["occurrence"]["start"].is_string());
    let path = format!("{PROMOS}{}/", created.body["id"]);
    let continuous = app
        .patch(&path, &app.admin, json!({"daily_window": null}))
        .await;
    assert_eq!(continuous.status, StatusCode::OK);
    assert_eq!(continuous.body["daily_window"], Value::Null);
    assert_eq!(
        continuous.body["occurrence"]["start"],
        continuous.body["start_time"]
    );
    assert_eq!(
        continuous.body["occurrence"]["end"],
        continuous.body["end_time"]
    );
    assert_eq!(continuous.body["sold_total"], 0);
}

#[actix_web::test]
async fn a_socket_session_sees_each_occurrence_end() {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    let ana = app
        .create_shopper("ana", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    let mut socket = connect(&app, &ana).await;
    let created = create_daily(&app, &market, 2, 2).await;
    let promo_id = created["id"].as_i64().unwrap();
    next_of(&mut socket, "promo.notification").await;
    let within = Duration::from_secs(20);
    let first = next_of_within(&mut socket, "promo.ended", within).await;
    assert_eq!(first["reason"], "ended");
    begin_next_occurrence(&app, promo_id, 2).await;
    let second = next_of_within(&mut socket, "promo.ended", within).await;
    assert_eq!(
        (second["promo_id"].clone(), second["reason"].clone()),
        (json!(promo_id), json!("ended"))
    );
}

#[actix_web::test]
async fn moving_the_start_of_the_running_occurrence_keeps_its_stock() {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    let ana = app
        .create_shopper("ana", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    let bob = app
        .create_shopper("bob", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    let mut socket = connect(&app, &ana).await;
    let window = all_day_far_from_midnight();
    let created = create_daily_in(&app, &market, 1, 8, window).await;
    let promo_id = created["id"].as_i64().unwrap();
    let held = app.reserve(&ana, promo_id).await;
    assert_eq!(held.status, StatusCode::CREATED, "{:?}", held.body);
    complete(&app, &ana, &held.body).await;
    let sold_out = next_of(&mut socket, "promo.ended").await;
    assert_eq!(sold_out["reason"], "sold_out");

    // An hour earlier on its first day: the same occurrence, started earlier.
    let earlier = chrono::DateTime::parse_from_rfc3339(created["start_time"].as_str().unwrap())
        .unwrap()
        - chrono::Duration::hours(1);
    let moved = app
        .patch(
            &format!("{PROMOS}{promo_id}/"),
            &app.admin,
            json!({"start_time": earlier.to_rfc3339()}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    assert_eq!(moved.body["occurrence"]["start"], moved.body["start_time"]);
    let counts = |promo: &Value| {
        [
            "status",
            "quantity",
            "available",
            "held",
            "sold",
            "sold_total",
        ]
        .map(|field| promo[field].clone())
    };
    let unchanged = [
        json!("sold_out"),
        json!(1),
        json!(0),
        json!(0),
        json!(1),
        json!(1),
    ];
    assert_eq!(counts(&moved.body), unchanged);
    assert_eq!(app.reserve(&bob, promo_id).await.code(), "sold_out");
    assert_eq!(counts(&promo(&app, promo_id).await), unchanged);
    let client = app.pool.get().await.unwrap();
    let rows = client
        .query(
            "SELECT occurrence_start, sold FROM promo_occurrences WHERE promo_id = $1",
            &[&promo_id],
        )
        .await
        .unwrap();
    let keyed: Vec<(chrono::DateTime<chrono::Utc>, i32)> =
        rows.iter().map(|row| (row.get(0), row.get(1))).collect();
    assert_eq!(keyed, vec![(earlier.with_timezone(&chrono::Utc), 1)]);

    // Its end was told once, when it sold out: not again for the move,
    // nor at the occurrence's end.
    let end = chrono::DateTime::parse_from_rfc3339(created["end_time"].as_str().unwrap()).unwrap();
    let after_end = end.with_timezone(&chrono::Utc) + chrono::Duration::seconds(1);
    assert_eq!(
        count_frames_until(&mut socket, "promo.ended", after_end).await,
        0
    );
    assert_eq!(promo(&app, promo_id).await["status"], "ended");
}

#[actix_web::test]
async fn promos_are_indexed_by_product_now_that_the_exclusion_skips_daily_ones() {
    let app = spawn_app().await;
    let client = app.pool.get().await.unwrap();
    let definitions: Vec<String> = client
        .query(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'flash_promos'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(
        definitions
            .iter()
            .any(|definition| definition.ends_with("USING btree (product_id)")),
        "{definitions:?}"
    );
}

#[actix_web::test]
async fn a_session_is_sent_only_the_current_occurrences_missed_notification() {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    // Out of reach at the start: the notifications are written below.
    let ana = app
        .create_shopper("ana", Some((10.0, 10.0)), &[market.segment_id])
        .await;
    let created = create_daily(&app, &market, 1, 30).await;
    let promo_id = created["id"].as_i64().unwrap();
    let client = app.pool.get().await.unwrap();
    let insert = "INSERT INTO promo_notifications \
        (user_id, promo_id, notify_day, distance_km, sent_at) \
        VALUES ($1, $2, current_date - $3::int, 0.5, now() - make_interval(days => $3::int)) \
        RETURNING id";
    let yesterday: i64 = client
        .query_one(insert, &[&ana.user_id, &promo_id, &1_i32])
        .await
        .unwrap()
        .get(0);
    let today: i64 = client
        .query_one(insert, &[&ana.user_id, &promo_id, &0_i32])
        .await
        .unwrap()
        .get(0);

    let mut socket = connect(&app, &ana).await;
    let missed = next_of(&mut socket, "promo.notification").await;
    assert_eq!(missed["notification_id"], today);
    // Both would have been taken by the same statement.
    let row = client
        .query_one(
            "SELECT delivered_at IS NULL FROM promo_notifications WHERE id = $1",
            &[&yesterday],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "yesterday's occurrence's was sent");
}

#[actix_web::test]
async fn an_occurrence_is_announced_even_when_the_last_announcement_finished_after_it_began() {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    let ana = app
        .create_shopper("ana", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    let bob = app
        .create_shopper("bob", Some((10.0, 10.0)), &[market.segment_id])
        .await;
    let mut ana_socket = connect(&app, &ana).await;
    let created = create_daily(&app, &market, 1, 4).await;
    let promo_id = created["id"].as_i64().unwrap();
    next_of(&mut ana_socket, "promo.notification").await;
    let client = app.pool.get().await.unwrap();
    let marked = wait_until(Duration::from_secs(10), || async {
        client
            .query_one(
                "SELECT notified_at IS NOT NULL FROM flash_promos WHERE id = $1",
                &[&promo_id],
            )
            .await
            .unwrap()
            .get::<_, bool>(0)
    })
    .await;
    assert!(marked, "the first start was not marked announced");
    // As if that announcement had finished only after the next occurrence began.
    client
        .execute(
            "UPDATE flash_promos SET notified_at = now() + interval '1 hour' WHERE id = $1",
            &[&promo_id],
        )
        .await
        .unwrap();
    assert!(wait_for_status(&app, promo_id, "ended", Duration::from_secs(20)).await);

    app.move_shopper(&bob, 0.0, 0.0).await;
    let mut bob_socket = connect(&app, &bob).await;
    begin_next_occurrence(&app, promo_id, 30).await;
    let told = next_of_within(
        &mut bob_socket,
        "promo.notification",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(told["promo"]["id"], promo_id);
}
