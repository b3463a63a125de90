//! `/api/promotions/flash-promos/`: CRUD, validation, scheduling, and the
//! in-memory `running/` and `eligible/` views.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{in_seconds, spawn_app, spawn_app_with, wait_until, Auth, TestApp};
use crate::websocket::{next_of, ws_url};

fn promo_body(app_product: i64, segment: i64) -> Value {
    json!({
        "product_id": app_product, "promo_price": "499.00",
        "start_time": in_seconds(3600), "end_time": in_seconds(7200),
        "segment_ids": [segment],
    })
}

async fn status_of(app: &TestApp, promo_id: &Value) -> String {
    let answer = app
        .get(
            &format!("/api/promotions/flash-promos/{promo_id}/"),
            &app.admin,
        )
        .await;
    answer.body["status"].as_str().unwrap_or("").to_owned()
}

#[actix_web::test]
async fn the_admin_creates_reads_updates_and_deletes_promos() {
    let app = spawn_app().await;
    let market = app.create_market_at(19.4326, -99.1332).await;
    let created = app
        .post(
            "/api/promotions/flash-promos/",
            &app.admin,
            promo_body(market.product_id, market.segment_id),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let promo = &created.body;
    assert_eq!(promo["status"], "scheduled");
    assert_eq!(promo["promo_price"], "499.00");
    assert_eq!(promo["max_distance_km"], 2.0);
    assert_eq!(promo["is_active"], true);
    assert_eq!(
        (
            promo["quantity"].clone(),
            promo["available"].clone(),
            promo["held"].clone(),
            promo["sold"].clone()
        ),
        (json!(1), json!(1), json!(0), json!(0))
    );
    assert_eq!(promo["product"]["store"]["name"], "TechShop");
    assert_eq!(promo["segments"][0]["name"], "New users");
    assert!(promo["start_time"].as_str().unwrap().ends_with('Z'));
    let path = format!("/api/promotions/flash-promos/{}/", promo["id"]);

    let shopper = app.create_shopper("ana", None, &[]).await;
    assert_eq!(app.get(&path, &shopper.auth).await.status, StatusCode::OK);
    assert_eq!(
        app.get("/api/promotions/flash-promos/", &shopper.auth)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get("/api/promotions/flash-promos/", &app.admin)
            .await
            .body["count"],
        1
    );

    let patched = app
        .patch(
            &path,
            &app.admin,
            json!({"promo_price": 450, "quantity": 5, "max_distance_km": 3.5}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
    assert_eq!(patched.body["promo_price"], "450.00");
    assert_eq!(patched.body["available"], 5);
    assert_eq!(patched.body["max_distance_km"], 3.5);

    let mut replacement = promo_body(market.product_id, market.segment_id);
    replacement["is_active"] = json!(false);
    let replaced = app.put(&path, &app.admin, replacement).await;
    assert_eq!(replaced.status, StatusCode::OK, "{:?}", replaced.body);
    assert_eq!(replaced.body["status"], "inactive");
    assert_eq!(
        replaced.body["quantity"], 1,
        "a replace resets what it omits"
    );

    assert_eq!(
        app.delete(&path, &app.admin).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&path, &app.admin).await.status,
        StatusCode::NOT_FOUND
    );
}

#[actix_web::test]
async fn invalid_promos_are_refused_field_by_field() {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    let base = promo_body(market.product_id, market.segment_id);
    let cases = [
        (json!({"end_time": in_seconds(3000)}), "end_time"),
        (
            json!({"start_time": in_seconds(-7200), "end_time": in_seconds(-3600)}),
            "end_time",
        ),
        (json!({"promo_price": "999.00"}), "promo_price"),
        (json!({"promo_price": "0"}), "promo_price"),
        (json!({"max_distance_km": 0}), "max_distance_km"),
        (json!({"max_distance_km": 100.5}), "max_distance_km"),
        (json!({"quantity": 0}), "quantity"),
        (json!({"quantity": 1.5}), "quantity"),
        (json!({"segment_ids": []}), "segment_ids"),
        (json!({"segment_ids": [424242]}), "segment_ids"),
        (json!({"product_id": 424242}), "product_id"),
        (json!({"start_time": "2030-01-01T10:00:00"}), "start_time"),
        (json!({"status": "running"}), "status"),
        (json!({"available": 3}), "available"),
    ];
    for (change, field) in cases {
        let mut body = base.clone();
        body.as_object_mut()
            .unwrap()
            .extend(change.as_object().unwrap().clone());
        let answer = app
            .post("/api/promotions/flash-promos/", &app.admin, body)
            .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{change}: {:?}",
            answer.body
        );
        assert!(
            answer.body["fields"][field].is_array(),
            "{change}: {:?}",
            answer.body
        );
    }
    assert_eq!(app.count_rows("flash_promos").await, 0);
}

#[actix_web::test]
async fn windows_of_one_product_may_touch_but_not_overlap() {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    let (start, middle, end) = (in_seconds(3600), in_seconds(5400), in_seconds(7200));
    let first = json!({"product_id": market.product_id, "promo_price": "10.00", "start_time": start, "end_time": middle, "segment_ids": [market.segment_id]});
    assert_eq!(
        app.post("/api/promotions/flash-promos/", &app.admin, first)
            .await
            .status,
        StatusCode::CREATED
    );
    let touching = json!({"product_id": market.product_id, "promo_price": "10.00", "start_time": middle, "end_time": end, "segment_ids": [market.segment_id]});
    let touching = app
        .post("/api/promotions/flash-promos/", &app.admin, touching)
        .await;
    assert_eq!(touching.status, StatusCode::CREATED, "{:?}", touching.body);
    let overlapping = json!({"product_id": market.product_id, "promo_price": "10.00", "start_time": in_seconds(5000), "end_time": in_seconds(6000), "segment_ids": [market.segment_id]});
    let answer = app
        .post("/api/promotions/flash-promos/", &app.admin, overlapping)
        .await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert_eq!(answer.code(), "overlap");
    // Moving the second onto the first is refused too, and changes nothing.
    let path = format!("/api/promotions/flash-promos/{}/", touching.body["id"]);
    let moved = app
        .patch(&path, &app.admin, json!({"start_time": in_seconds(4000)}))
        .await;
    assert_eq!(moved.code(), "overlap");
    assert_eq!(
        app.get(&path, &app.admin).await.body["start_time"],
        touching.body["start_time"]
    );
    assert_eq!(app.count_rows("flash_promos").await, 2);
}

#[actix_web::test]
async fn a_scheduled_promo_starts_and_ends_on_time() {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    let body = json!({
        "product_id": market.product_id, "promo_price": "10.00",
        "start_time": in_seconds(2), "end_time": in_seconds(6), "segment_ids": [market.segment_id],
    });
    let promo = app
        .post("/api/promotions/flash-promos/", &app.admin, body)
        .await
        .body;
    assert_eq!(promo["status"], "scheduled");
    let shopper = app
        .create_shopper("ana", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    let running = wait_until(Duration::from_secs(5), || async {
        app.get("/api/promotions/flash-promos/running/", &shopper.auth)
            .await
            .body["count"]
            == 1
    })
    .await;
    assert!(running, "the promo did not start");
    assert_eq!(status_of(&app, &promo["id"]).await, "running");
    let ended = wait_until(Duration::from_secs(9), || async {
        app.get("/api/promotions/flash-promos/running/", &shopper.auth)
            .await
            .body["count"]
            == 0
    })
    .await;
    assert!(ended, "the promo did not end");
    assert_eq!(status_of(&app, &promo["id"]).await, "ended");
    let late = app.reserve(&shopper, promo["id"].as_i64().unwrap()).await;
    assert_eq!(late.code(), "promo_not_running");
}

#[actix_web::test]
async fn eligible_promos_match_segment_and_distance_nearest_first() {
    let app = spawn_app().await;
    let near = app.create_market_at(19.4326, -99.1332).await;
    let other_segment = app.create_segment("Frequent buyers").await;
    let store = app.create_store("Far shop", 19.4326 + 0.01, -99.1332).await;
    let far_product = app
        .create_product(store["id"].as_i64().unwrap(), "Far thing", "100.00")
        .await;
    let near_promo = app.create_running_promo(&near, 5, json!({})).await;
    let far_promo = app
        .create_running_promo(
            &crate::helpers::Market {
                product_id: far_product["id"].as_i64().unwrap(),
                ..near.clone()
            },
            5,
            json!({"promo_price": "50.00"}),
        )
        .await;

    // 0.01797° north of TechShop is 1.998 km away; 0.01800° is 2.0015 km.
    let inside = app
        .create_shopper(
            "inside",
            Some((19.4326 + 0.01797, -99.1332)),
            &[near.segment_id],
        )
        .await;
    // 2.0015 km south of TechShop (and 3.1 km from the far shop, north of it).
    let outside = app
        .create_shopper(
            "outside",
            Some((19.4326 - 0.01800, -99.1332)),
            &[near.segment_id],
        )
        .await;
    let wrong_segment = app
        .create_shopper("other", Some((19.4326, -99.1332)), &[other_segment])
        .await;
    let nowhere = app
        .create_shopper("nowhere", None, &[near.segment_id])
        .await;

    let eligible = app
        .get("/api/promotions/flash-promos/eligible/", &inside.auth)
        .await;
    assert_eq!(eligible.status, StatusCode::OK);
    let ids: Vec<Value> = eligible.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|promo| promo["id"].clone())
        .collect();
    assert_eq!(
        ids,
        vec![far_promo["id"].clone(), near_promo["id"].clone()],
        "nearest first"
    );
    let distance = eligible.body["results"][1]["distance_km"].as_f64().unwrap();
    assert!((distance - 1.998).abs() < 0.01, "{distance}");

    let outside_list = app
        .get("/api/promotions/flash-promos/eligible/", &outside.auth)
        .await;
    assert_eq!(
        outside_list.body["count"], 0,
        "2.0015 km is outside a 2 km radius"
    );
    assert_eq!(
        app.get(
            "/api/promotions/flash-promos/eligible/",
            &wrong_segment.auth
        )
        .await
        .body["count"],
        0
    );
    assert_eq!(
        app.get("/api/promotions/flash-promos/eligible/", &nowhere.auth)
            .await
            .body["count"],
        0
    );

    // Moving changes eligibility at once.
    app.move_shopper(&outside, 19.4326, -99.1332).await;
    assert_eq!(
        app.get("/api/promotions/flash-promos/eligible/", &outside.auth)
            .await
            .body["count"],
        2
    );
}

#[actix_web::test]
async fn a_promo_near_the_antimeridian_reaches_across_it() {
    let app = spawn_app().await;
    let market = app.create_market_at(-16.5, 179.995).await;
    app.create_running_promo(&market, 1, json!({})).await;
    let across = app
        .create_shopper("fiji", Some((-16.5, -179.995)), &[market.segment_id])
        .await;
    let eligible = app
        .get("/api/promotions/flash-promos/eligible/", &across.auth)
        .await;
    assert_eq!(eligible.body["count"], 1, "{:?}", eligible.body);
    assert!(eligible.body["results"][0]["distance_km"].as_f64().unwrap() < 1.1);
    let reserved = app
        .reserve(&across, eligible.body["results"][0]["id"].as_i64().unwrap())
        .await;
    assert_eq!(reserved.status, StatusCode::CREATED, "{:?}", reserved.body);
}

#[actix_web::test]
async fn deactivating_or_deleting_a_running_promo_stops_it() {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    let promo = app.create_running_promo(&market, 2, json!({})).await;
    let shopper = app
        .create_shopper("ana", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    let path = format!("/api/promotions/flash-promos/{}/", promo["id"]);
    let held = app.reserve(&shopper, promo["id"].as_i64().unwrap()).await;
    assert_eq!(held.status, StatusCode::CREATED);

    let off = app
        .patch(&path, &app.admin, json!({"is_active": false}))
        .await;
    assert_eq!(off.body["status"], "inactive");
    assert_eq!(
        app.get("/api/promotions/flash-promos/running/", &shopper.auth)
            .await
            .body["count"],
        0
    );
    assert_eq!(
        app.reserve(&shopper, promo["id"].as_i64().unwrap())
            .await
            .code(),
        "promo_not_running"
    );
    let reservation_path = format!("/api/promotions/promo-reservations/{}/", held.body["id"]);
    let released = wait_until(Duration::from_secs(5), || async {
        app.get(&reservation_path, &shopper.auth).await.body["status"] == "cancelled"
    })
    .await;
    assert!(released, "the hold was not released");

    let on = app
        .patch(&path, &app.admin, json!({"is_active": true}))
        .await;
    assert_eq!(on.body["status"], "running");
    assert_eq!(
        app.reserve(&shopper, promo["id"].as_i64().unwrap())
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.delete(&path, &app.admin).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get("/api/promotions/flash-promos/running/", &shopper.auth)
            .await
            .body["count"],
        0
    );
    assert_eq!(
        app.reserve(&shopper, promo["id"].as_i64().unwrap())
            .await
            .code(),
        "not_found"
    );
}

#[actix_web::test]
async fn deleting_the_store_stops_its_running_promo() {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    let promo = app.create_running_promo(&market, 2, json!({})).await;
    let shopper = app
        .create_shopper("ana", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    assert_eq!(
        app.get("/api/promotions/flash-promos/running/", &shopper.auth)
            .await
            .body["count"],
        1
    );
    let deleted = app
        .delete(
            &format!("/api/market/stores/{}/", market.store_id),
            &app.admin,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/promotions/flash-promos/running/", &shopper.auth)
            .await
            .body["count"],
        0
    );
    assert_eq!(
        app.reserve(&shopper, promo["id"].as_i64().unwrap())
            .await
            .code(),
        "not_found"
    );
}

#[actix_web::test]
async fn moving_a_store_moves_its_promos_reach_at_once() {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    app.create_running_promo(&market, 1, json!({})).await;
    let shopper = app
        .create_shopper("ana", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    assert_eq!(
        app.get("/api/promotions/flash-promos/eligible/", &shopper.auth)
            .await
            .body["count"],
        1
    );
    let moved = app
        .patch(
            &format!("/api/market/stores/{}/", market.store_id),
            &app.admin,
            json!({"latitude": 1.0}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK);
    assert_eq!(
        app.get("/api/promotions/flash-promos/eligible/", &shopper.auth)
            .await
            .body["count"],
        0
    );
}

#[actix_web::test]
async fn a_promo_whose_units_are_all_held_is_still_eligible() {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    let promo = app.create_running_promo(&market, 1, json!({})).await;
    let ana = app
        .create_shopper("ana", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    let luis = app
        .create_shopper("luis", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    assert_eq!(
        app.reserve(&ana, promo["id"].as_i64().unwrap())
            .await
            .status,
        StatusCode::CREATED
    );
    let eligible = app
        .get("/api/promotions/flash-promos/eligible/", &luis.auth)
        .await;
    assert_eq!(eligible.body["count"], 1, "not sold out, only held");
    assert_eq!(eligible.body["results"][0]["held"], 1);
    assert_eq!(eligible.body["results"][0]["available"], 0);
}

#[actix_web::test]
async fn two_patches_at_the_same_instant_both_take_effect() {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    let promo = app.create_running_promo(&market, 1, json!({})).await;
    let path = format!("/api/promotions/flash-promos/{}/", promo["id"]);
    for round in 0..20 {
        let reset = app
            .patch(
                &path,
                &app.admin,
                json!({"is_active": true, "promo_price": "499.00"}),
            )
            .await;
        assert_eq!(reset.status, StatusCode::OK, "{:?}", reset.body);
        let (off, cheaper) = futures_util::join!(
            app.patch(&path, &app.admin, json!({"is_active": false})),
            app.patch(&path, &app.admin, json!({"promo_price": "401.01"})),
        );
        assert_eq!(
            (off.status, cheaper.status),
            (StatusCode::OK, StatusCode::OK)
        );
        let after = app.get(&path, &app.admin).await.body;
        assert_eq!(
            (after["is_active"].clone(), after["promo_price"].clone()),
            (json!(false), json!("401.01")),
            "round {round} lost a change"
        );
    }
}

// Registry resyncs -------------------------------------------------------------

/// A registry that resyncs every 100 ms, with room in the pool for resyncs
/// that pile up (the defect some of these tests look for).
async fn spawn_fast_resync_app() -> TestApp {
    spawn_app_with(|config| {
        config.registry_resync_interval = Duration::from_millis(100);
        config.database_pool_size = 16;
    })
    .await
}

/// Holds an exclusive lock on `user_segments` until the returned client
/// rolls back: a resync reads its promos, then waits on this lock to read
/// their segments, so it stays in flight with what it read before.
async fn stall_resyncs(app: &TestApp) -> deadpool_postgres::Object {
    let locker = app.pool.get().await.expect("connection");
    locker
        .batch_execute("BEGIN; LOCK TABLE user_segments IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock taken");
    locker
}

/// Statements of the service waiting for the lock of [`stall_resyncs`].
async fn stalled_resyncs(app: &TestApp) -> i64 {
    let client = app.pool.get().await.expect("connection");
    client
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE NOT granted \
             AND relation = 'user_segments'::regclass \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
        .expect("locks read")
        .get(0)
}

/// A promo running now inserted straight into the database, as another
/// instance would: only a resync can tell this one about it.
async fn insert_running_promo_elsewhere(app: &TestApp, product_id: i64) -> i64 {
    let client = app.pool.get().await.expect("connection");
    client
        .query_one(
            "INSERT INTO flash_promos (product_id, promo_price, start_time, end_time, quantity) \
             VALUES ($1, 499, now() - interval '1 minute', now() + interval '1 hour', 1) \
             RETURNING id",
            &[&product_id],
        )
        .await
        .expect("promo inserted")
        .get(0)
}

async fn running_ids(app: &TestApp) -> Vec<i64> {
    let answer = app
        .get(
            "/api/promotions/flash-promos/running/?page_size=100",
            &app.admin,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    answer.body["results"]
        .as_array()
        .map(|promos| {
            promos
                .iter()
                .filter_map(|promo| promo["id"].as_i64())
                .collect()
        })
        .unwrap_or_default()
}

#[actix_web::test]
async fn a_slow_resync_is_never_joined_by_another_and_one_follows_it() {
    let app = spawn_fast_resync_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    let locker = stall_resyncs(&app).await;
    let stalled = wait_until(Duration::from_secs(5), || async {
        stalled_resyncs(&app).await >= 1
    })
    .await;
    assert!(stalled, "no resync started");
    let elsewhere = insert_running_promo_elsewhere(&app, market.product_id).await;
    // Ten intervals pass while the first resync is still reading.
    let joined = wait_until(Duration::from_secs(1), || async {
        stalled_resyncs(&app).await >= 2
    })
    .await;
    locker.batch_execute("ROLLBACK").await.expect("unlocked");
    assert!(!joined, "a second resync started while one was in flight");
    let picked_up = wait_until(Duration::from_secs(5), || async {
        running_ids(&app).await.contains(&elsewhere)
    })
    .await;
    assert!(picked_up, "no resync ran after the slow one");
}

#[actix_web::test]
async fn a_promo_deleted_while_a_resync_reads_it_stays_gone() {
    let app = spawn_fast_resync_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    let promo_id = app.create_running_promo(&market, 1, json!({})).await["id"]
        .as_i64()
        .unwrap();
    assert_eq!(running_ids(&app).await, vec![promo_id]);
    let locker = stall_resyncs(&app).await;
    let stalled = wait_until(Duration::from_secs(5), || async {
        stalled_resyncs(&app).await >= 1
    })
    .await;
    assert!(stalled, "no resync started");
    // The stalled resync has read the promo; now it is deleted.
    let deleted = app
        .delete(
            &format!("/api/promotions/flash-promos/{promo_id}/"),
            &app.admin,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(running_ids(&app).await, Vec::<i64>::new());
    let elsewhere = insert_running_promo_elsewhere(&app, market.product_id).await;
    locker.batch_execute("ROLLBACK").await.expect("unlocked");

    // A resync that read the database after the delete has been applied, so
    // the stalled one was applied before it.
    let caught_up = wait_until(Duration::from_secs(5), || async {
        running_ids(&app).await.contains(&elsewhere)
    })
    .await;
    assert!(caught_up, "resyncs stopped");
    let back = wait_until(Duration::from_secs(1), || async {
        running_ids(&app).await.contains(&promo_id)
    })
    .await;
    assert!(!back, "the deleted promo came back in running/");
    let shopper = app
        .create_shopper("ana", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    assert_eq!(app.reserve(&shopper, promo_id).await.code(), "not_found");
}

#[actix_web::test]
async fn a_promo_deleted_elsewhere_leaves_at_the_next_resync_and_its_holder_is_told() {
    let app = spawn_fast_resync_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    let promo_id = app.create_running_promo(&market, 2, json!({})).await["id"]
        .as_i64()
        .unwrap();
    let holder = app
        .create_shopper("holder", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    let Auth::Token(token) = &holder.auth else {
        panic!("a token");
    };
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url(&app, token))
        .await
        .expect("upgrade");
    assert_eq!(
        app.reserve(&holder, promo_id).await.status,
        StatusCode::CREATED
    );
    next_of(&mut socket, "reservation.held").await;

    // Another instance deletes it: only a resync can tell this one.
    let client = app.pool.get().await.unwrap();
    client
        .execute("DELETE FROM flash_promos WHERE id = $1", &[&promo_id])
        .await
        .unwrap();
    let gone = wait_until(Duration::from_secs(5), || async {
        running_ids(&app).await.is_empty()
    })
    .await;
    assert!(gone, "the deleted promo is still in running/");
    let ended = next_of(&mut socket, "promo.ended").await;
    assert_eq!(
        (ended["promo_id"].clone(), ended["reason"].clone()),
        (json!(promo_id), json!("deleted"))
    );
    assert_eq!(app.reserve(&holder, promo_id).await.code(), "not_found");
    let back = wait_until(Duration::from_secs(1), || async {
        !running_ids(&app).await.is_empty()
    })
    .await;
    assert!(!back, "the deleted promo came back in running/");
}
