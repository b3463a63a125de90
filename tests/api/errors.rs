//! Malformed requests: every one gets a 4xx JSON error and changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{spawn_app, Auth};

#[actix_web::test]
async fn malformed_json_is_bad_json() {
    let app = spawn_app().await;
    for body in [&b"{\"name\": "[..], b"not json", b"{\"name\": \"x\",}"] {
        let answer = app
            .call_raw(
                Method::POST,
                "/api/market/stores/",
                &app.admin,
                "application/json",
                body.to_vec(),
            )
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(answer.code(), "bad_json");
        assert!(answer.body["detail"].is_string());
    }
    assert_eq!(app.count_rows("stores").await, 0);
}

#[actix_web::test]
async fn a_body_that_is_not_an_object_is_a_validation_error() {
    let app = spawn_app().await;
    let answer = app
        .post("/api/market/stores/", &app.admin, json!(["TechShop", 1, 1]))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.code(), "validation_error");
}

#[actix_web::test]
async fn an_oversized_body_is_refused_with_413() {
    let app = spawn_app().await;
    let name = "x".repeat(70 * 1024);
    let body = format!("{{\"name\": \"{name}\", \"latitude\": 1, \"longitude\": 1}}");
    let answer = app
        .call_raw(
            Method::POST,
            "/api/market/stores/",
            &app.admin,
            "application/json",
            body.into_bytes(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.code(), "payload_too_large");
    assert_eq!(app.count_rows("stores").await, 0);
}

#[actix_web::test]
async fn a_body_declared_as_something_else_is_refused() {
    let app = spawn_app().await;
    let answer = app
        .call_raw(
            Method::POST,
            "/api/market/stores/",
            &app.admin,
            "text/plain",
            b"name=x".to_vec(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(answer.code(), "unsupported_media_type");
}

#[actix_web::test]
async fn unknown_routes_and_objects_are_json_404s() {
    let app = spawn_app().await;
    for path in [
        "/api/nothing-here/",
        "/api/market/stores/999999/",
        "/api/market/stores/abc/",
        "/api/market/stores/99999999999999999999999/",
    ] {
        let answer = app.get(path, &app.admin).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(answer.code(), "not_found", "{path}");
    }
}

#[actix_web::test]
async fn an_unsupported_method_is_a_json_405() {
    let app = spawn_app().await;
    let answer = app.delete("/api/market/stores/", &app.admin).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.code(), "method_not_allowed");
}

#[actix_web::test]
async fn unauthenticated_beats_malformed() {
    let app = spawn_app().await;
    let answer = app
        .call_raw(
            Method::POST,
            "/api/market/stores/",
            &Auth::Token("f".repeat(64)),
            "application/json",
            b"{oops".to_vec(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}
