//! `/api/users/user-segments/`.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

#[actix_web::test]
async fn the_admin_manages_segments() {
    let app = spawn_app().await;
    let created = app
        .post(
            "/api/users/user-segments/",
            &app.admin,
            json!({"name": "New users", "description": "Joined this month"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.body["description"], "Joined this month");
    let path = format!("/api/users/user-segments/{}/", created.body["id"]);

    let read = app.get(&path, &app.admin).await;
    assert_eq!(read.body, created.body);
    let patched = app
        .patch(
            &path,
            &app.admin,
            json!({"description": "Joined this week"}),
        )
        .await;
    assert_eq!(patched.body["name"], "New users");
    assert_eq!(patched.body["description"], "Joined this week");
    let replaced = app
        .put(&path, &app.admin, json!({"name": "Newcomers"}))
        .await;
    assert_eq!(replaced.status, StatusCode::OK);
    assert_eq!(replaced.body["description"], "");
    let listed = app.get("/api/users/user-segments/", &app.admin).await;
    assert_eq!(listed.body["count"], 1);
    assert_eq!(
        app.delete(&path, &app.admin).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.count_rows("user_segments").await, 0);
}

#[actix_web::test]
async fn segment_names_are_unique_ignoring_case() {
    let app = spawn_app().await;
    app.create_segment("New users").await;
    let duplicate = app
        .post(
            "/api/users/user-segments/",
            &app.admin,
            json!({"name": "NEW USERS"}),
        )
        .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    assert_eq!(duplicate.code(), "duplicate");
    let other = app.create_segment("Frequent buyers").await;
    let renamed = app
        .patch(
            &format!("/api/users/user-segments/{other}/"),
            &app.admin,
            json!({"name": "new Users"}),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::CONFLICT);
    assert_eq!(app.count_rows("user_segments").await, 2);
}

#[actix_web::test]
async fn deleting_a_segment_removes_it_from_profiles() {
    let app = spawn_app().await;
    let segment = app.create_segment("New users").await;
    let shopper = app.create_shopper("ana", None, &[segment]).await;
    let deleted = app
        .delete(&format!("/api/users/user-segments/{segment}/"), &app.admin)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let profile = app
        .get("/api/users/clients-profiles/me/", &shopper.auth)
        .await;
    assert_eq!(profile.body["segments"], json!([]));
}

#[actix_web::test]
async fn a_segment_that_a_promo_targets_cannot_be_deleted() {
    let app = spawn_app().await;
    let segment = app.create_segment("New users").await;
    let store = app.create_store("TechShop", 1.0, 1.0).await;
    let product = app
        .create_product(store["id"].as_i64().unwrap(), "P", "10.00")
        .await;
    // Promos get their own API later; the targeting row is what matters here.
    let client = app.pool.get().await.unwrap();
    let promo_id: i64 = client
        .query_one(
            "INSERT INTO flash_promos (product_id, promo_price, start_time, end_time) \
             VALUES ($1, 5.00, now(), now() + interval '1 hour') RETURNING id",
            &[&product["id"].as_i64().unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    client
        .execute(
            "INSERT INTO flash_promo_segments VALUES ($1, $2)",
            &[&promo_id, &segment],
        )
        .await
        .unwrap();
    let answer = app
        .delete(&format!("/api/users/user-segments/{segment}/"), &app.admin)
        .await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert_eq!(answer.code(), "in_use");
    assert_eq!(app.count_rows("user_segments").await, 1);
}
