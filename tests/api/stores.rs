//! `/api/market/stores/`.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

#[actix_web::test]
async fn the_admin_creates_reads_replaces_patches_and_deletes_a_store() {
    let app = spawn_app().await;
    let created = app.create_store("TechShop", 19.4326, -99.1332).await;
    assert_eq!(created["name"], "TechShop");
    assert_eq!(created["latitude"], 19.4326);
    let path = format!("/api/market/stores/{}/", created["id"]);

    let shopper = app.create_shopper("ana", None, &[]).await;
    let read = app.get(&path, &shopper.auth).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body, created);

    let replaced = app
        .put(
            &path,
            &app.admin,
            json!({"name": "TechShop 2", "latitude": 10, "longitude": 20}),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK);
    assert_eq!(replaced.body["latitude"], 10.0);

    let patched = app
        .patch(&path, &app.admin, json!({"name": "  Renamed  "}))
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!(patched.body["name"], "Renamed");
    assert_eq!(patched.body["longitude"], 20.0);

    let deleted = app.delete(&path, &app.admin).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&path, &app.admin).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&path, &app.admin).await.status,
        StatusCode::NOT_FOUND
    );
}

#[actix_web::test]
async fn a_replace_needs_every_field() {
    let app = spawn_app().await;
    let created = app.create_store("TechShop", 1.0, 1.0).await;
    let path = format!("/api/market/stores/{}/", created["id"]);
    let answer = app
        .put(&path, &app.admin, json!({"name": "Only a name"}))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.body["fields"]["latitude"].is_array());
    assert!(answer.body["fields"]["longitude"].is_array());
    assert_eq!(app.get(&path, &app.admin).await.body["name"], "TechShop");
}

#[actix_web::test]
async fn invalid_stores_are_refused_field_by_field_and_nothing_is_written() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"name": "X", "latitude": 90.5, "longitude": 0}),
            "latitude",
        ),
        (
            json!({"name": "X", "latitude": 0, "longitude": -181}),
            "longitude",
        ),
        (
            json!({"name": "   ", "latitude": 0, "longitude": 0}),
            "name",
        ),
        (
            json!({"name": "x".repeat(101), "latitude": 0, "longitude": 0}),
            "name",
        ),
        (
            json!({"name": "X", "latitude": "19.4", "longitude": 0}),
            "latitude",
        ),
        (json!({"name": 5, "latitude": 0, "longitude": 0}), "name"),
        (json!({"name": "X", "latitude": 0}), "longitude"),
        (
            json!({"name": "X", "latitude": 0, "longitude": 0, "id": 99}),
            "id",
        ),
    ];
    for (body, field) in cases {
        let answer = app
            .post("/api/market/stores/", &app.admin, body.clone())
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer.code(), "validation_error");
        assert!(
            answer.body["fields"][field].is_array(),
            "{body}: {:?}",
            answer.body
        );
    }
    assert_eq!(app.count_rows("stores").await, 0);
}

#[actix_web::test]
async fn paths_work_with_and_without_the_trailing_slash() {
    let app = spawn_app().await;
    let without = app
        .post(
            "/api/market/stores",
            &app.admin,
            json!({"name": "A", "latitude": 1, "longitude": 1}),
        )
        .await;
    assert_eq!(without.status, StatusCode::CREATED, "{:?}", without.body);
    let with = app
        .get(
            &format!("/api/market/stores/{}/", without.body["id"]),
            &app.admin,
        )
        .await;
    assert_eq!(with.status, StatusCode::OK);
    let bare = app
        .get(
            &format!("/api/market/stores/{}", without.body["id"]),
            &app.admin,
        )
        .await;
    assert_eq!(bare.status, StatusCode::OK);
}

#[actix_web::test]
async fn deleting_a_store_deletes_its_products() {
    let app = spawn_app().await;
    let store = app.create_store("TechShop", 1.0, 1.0).await;
    app.create_product(store["id"].as_i64().unwrap(), "Audífonos XYZ", "999.00")
        .await;
    let deleted = app
        .delete(&format!("/api/market/stores/{}/", store["id"]), &app.admin)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(app.count_rows("products").await, 0);
}
