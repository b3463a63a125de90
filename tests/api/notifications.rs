//! Promo start notifications: exactly the right clients, at most once a day.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_app, wait_until, Shopper, TestApp};

async fn inbox(app: &TestApp, shopper: &Shopper) -> serde_json::Value {
    let answer = app.get("/api/users/notifications/", &shopper.auth).await;
    assert_eq!(answer.status, StatusCode::OK);
    answer.body
}

async fn notified_count(app: &TestApp) -> i64 {
    app.count_rows("promo_notifications").await
}

#[actix_web::test]
async fn a_promo_start_notifies_exactly_its_audience() {
    let app = spawn_app().await;
    let market = app.create_market_at(19.4326, -99.1332).await;
    let other_segment = app.create_segment("Frequent buyers").await;
    let inside = app
        .create_shopper(
            "inside",
            Some((19.4326 + 0.01797, -99.1332)),
            &[market.segment_id],
        )
        .await;
    let outside = app
        .create_shopper(
            "outside",
            Some((19.4326 - 0.01800, -99.1332)),
            &[market.segment_id],
        )
        .await;
    let wrong = app
        .create_shopper("wrong", Some((19.4326, -99.1332)), &[other_segment])
        .await;
    let nowhere = app
        .create_shopper("nowhere", None, &[market.segment_id])
        .await;

    let promo = app.create_running_promo(&market, 3, json!({})).await;
    let told = wait_until(Duration::from_secs(5), || async {
        notified_count(&app).await == 1
    })
    .await;
    assert!(told, "the audience was not told");
    let mine = inbox(&app, &inside).await;
    assert_eq!(mine["count"], 1);
    assert_eq!(mine["results"][0]["promo"]["id"], promo["id"]);
    assert!(mine["results"][0]["sent_at"].is_string());
    assert!(mine["results"][0]["delivered"].is_boolean());
    for shopper in [&outside, &wrong, &nowhere] {
        assert_eq!(
            inbox(&app, shopper).await["count"],
            0,
            "{}",
            shopper.username
        );
    }
    let profile = app
        .get("/api/users/clients-profiles/me/", &inside.auth)
        .await;
    assert!(profile.body["last_notification_date"].is_string());
    let untouched = app
        .get("/api/users/clients-profiles/me/", &outside.auth)
        .await;
    assert_eq!(untouched.body["last_notification_date"], json!(null));
}

#[actix_web::test]
async fn nobody_is_told_twice_in_a_day_even_by_two_promos_starting_together() {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    let store = app.create_store("Second shop", 0.001, 0.0).await;
    let product = app
        .create_product(store["id"].as_i64().unwrap(), "Other", "100.00")
        .await;
    let shoppers = app
        .create_shoppers_quickly("daily", 50, (0.0, 0.0), &[market.segment_id])
        .await;
    let second_market = crate::helpers::Market {
        product_id: product["id"].as_i64().unwrap(),
        ..market.clone()
    };
    let (first, second) = futures_util::join!(
        app.create_running_promo(&market, 1, json!({})),
        app.create_running_promo(&second_market, 1, json!({"promo_price": "50.00"})),
    );
    let told = wait_until(Duration::from_secs(5), || async {
        notified_count(&app).await == 50
    })
    .await;
    assert!(told, "every shopper is told once");
    // Both announcements are done: still one each.
    let done = wait_until(Duration::from_secs(5), || async {
        let client = app.pool.get().await.unwrap();
        let announced: i64 = client
            .query_one(
                "SELECT count(*) FROM flash_promos WHERE notified_at IS NOT NULL",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        announced == 2
    })
    .await;
    assert!(done);
    assert_eq!(notified_count(&app).await, 50);
    for shopper in shoppers.iter().take(5) {
        assert_eq!(inbox(&app, shopper).await["count"], 1);
    }
    let _ = (first, second);
}

#[actix_web::test]
async fn moving_into_a_running_promos_radius_notifies_once() {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    app.create_running_promo(&market, 1, json!({})).await;
    let shopper = app
        .create_shopper("walker", Some((1.0, 1.0)), &[market.segment_id])
        .await;
    assert_eq!(inbox(&app, &shopper).await["count"], 0);
    app.move_shopper(&shopper, 0.001, 0.0).await;
    let told = wait_until(Duration::from_secs(5), || async {
        inbox(&app, &shopper).await["count"] == 1
    })
    .await;
    assert!(told, "entering the radius notifies");
    app.move_shopper(&shopper, 1.0, 1.0).await;
    app.move_shopper(&shopper, 0.0, 0.0).await;
    // Give a second claim every chance to land; there must still be one.
    let twice = wait_until(Duration::from_millis(500), || async {
        inbox(&app, &shopper).await["count"] == 2
    })
    .await;
    assert!(!twice, "at most once a day");
}

#[actix_web::test]
async fn an_announcement_racing_a_deactivation_spends_nobodys_daily_slot() {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    let promo = app.create_running_promo(&market, 1, json!({})).await;
    let shopper = app
        .create_shopper("walker", Some((1.0, 1.0)), &[market.segment_id])
        .await;
    // Switched off in the database a moment before the engine hears of it.
    let client = app.pool.get().await.unwrap();
    client
        .execute(
            "UPDATE flash_promos SET is_active = false WHERE id = $1",
            &[&promo["id"].as_i64().unwrap()],
        )
        .await
        .unwrap();
    // The engine still believes it runs: the geofence tries to claim the slot.
    app.move_shopper(&shopper, 0.001, 0.0).await;
    let told = wait_until(Duration::from_millis(1_500), || async {
        inbox(&app, &shopper).await["count"] != 0
    })
    .await;
    assert!(!told, "a switched-off promo spent the shopper's slot");
    let profile = app
        .get("/api/users/clients-profiles/me/", &shopper.auth)
        .await;
    assert_eq!(
        profile.body["last_notification_date"],
        serde_json::Value::Null
    );
}

#[actix_web::test]
async fn deleting_a_promo_or_its_store_keeps_the_record_and_clears_the_inbox() {
    let app = spawn_app().await;
    let market = app.create_market_at(19.4326, -99.1332).await;
    let shopper = app
        .create_shopper("near", Some((19.4326, -99.1332)), &[market.segment_id])
        .await;
    let promo = app.create_running_promo(&market, 3, json!({})).await;
    let told = wait_until(Duration::from_secs(5), || async {
        notified_count(&app).await == 1
    })
    .await;
    assert!(told, "the shopper was not told");
    assert_eq!(inbox(&app, &shopper).await["count"], 1);

    let deleted = app
        .delete(
            &format!("/api/promotions/flash-promos/{}/", promo["id"]),
            &app.admin,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(inbox(&app, &shopper).await["count"], 0);
    assert_eq!(
        app.count_rows("promo_notifications WHERE promo_id IS NULL")
            .await,
        1,
        "the day's slot stays spent, with no promo"
    );
    let profile = app
        .get("/api/users/clients-profiles/me/", &shopper.auth)
        .await;
    assert!(profile.body["last_notification_date"].is_string());

    // A store's delete cascades to its products' promos: the same holds.
    let tomorrow = app.create_running_promo(&market, 3, json!({})).await;
    let client = app.pool.get().await.expect("connection");
    client
        .execute(
            "INSERT INTO promo_notifications (user_id, promo_id, notify_day, distance_km) \
             VALUES ((SELECT id FROM users WHERE username = 'near'), $1, current_date + 1, 0.1)",
            &[&tomorrow["id"].as_i64().expect("promo id")],
        )
        .await
        .expect("a notification for tomorrow");
    let deleted = app
        .delete(
            &format!("/api/market/stores/{}/", market.store_id),
            &app.admin,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.count_rows("promo_notifications WHERE promo_id IS NOT NULL")
            .await,
        0
    );
    assert_eq!(notified_count(&app).await, 2);
}
