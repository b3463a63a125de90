//! Tokens, the three credential spellings, and who may call what.

use base64::Engine;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_app, Auth, ADMIN_PASSWORD, ADMIN_USERNAME, SHOPPER_PASSWORD};

#[actix_web::test]
async fn the_token_endpoint_returns_a_token_and_the_user() {
    let app = spawn_app().await;
    let answer = app
        .post(
            "/api/auth/token/",
            &Auth::None,
            json!({"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let token = answer.body["token"].as_str().unwrap();
    assert!(token.len() >= 32, "token too short: {token}");
    assert_eq!(answer.body["user"]["username"], ADMIN_USERNAME);
    assert_eq!(answer.body["user"]["is_admin"], true);
    // Only the hash is stored.
    let client = app.pool.get().await.unwrap();
    let stored: i64 = client
        .query_one(
            "SELECT count(*) FROM auth_tokens WHERE token_hash = $1",
            &[&token.as_bytes()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0, "the token itself must not be stored");
    assert_eq!(app.count_rows("auth_tokens").await, 2);
}

#[actix_web::test]
async fn wrong_credentials_are_refused_with_invalid_credentials() {
    let app = spawn_app().await;
    for body in [
        json!({"username": ADMIN_USERNAME, "password": "not-the-password"}),
        json!({"username": "nobody", "password": ADMIN_PASSWORD}),
    ] {
        let answer = app.post("/api/auth/token/", &Auth::None, body).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.code(), "invalid_credentials");
    }
    let missing = app
        .post("/api/auth/token/", &Auth::None, json!({"username": "x"}))
        .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert!(missing.body["fields"]["password"].is_array());
}

#[actix_web::test]
async fn bearer_token_and_basic_credentials_are_all_accepted() {
    let app = spawn_app().await;
    let segment = app.create_segment("New users").await;
    let shopper = app
        .create_shopper("ana", Some((19.43, -99.13)), &[segment])
        .await;
    let Auth::Token(token) = &shopper.auth else {
        panic!("token expected")
    };
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("ana:{SHOPPER_PASSWORD}"));
    for auth in [
        Auth::Header(format!("Bearer {token}")),
        Auth::Header(format!("Token {token}")),
        Auth::Header(format!("Basic {basic}")),
        Auth::Basic("ana".into(), SHOPPER_PASSWORD.into()),
    ] {
        let answer = app.get("/api/users/clients-profiles/me/", &auth).await;
        assert_eq!(answer.status, StatusCode::OK, "{auth:?}: {:?}", answer.body);
        assert_eq!(answer.body["user"]["username"], "ana");
    }
}

#[actix_web::test]
async fn missing_or_bad_credentials_are_401_not_authenticated() {
    let app = spawn_app().await;
    for auth in [
        Auth::None,
        Auth::Token("0".repeat(64)),
        Auth::Header("Token".into()),
        Auth::Header("Basic !!!not-base64".into()),
        Auth::Header("Digest abc".into()),
        Auth::Basic(ADMIN_USERNAME.into(), "wrong-password".into()),
    ] {
        let answer = app.get("/api/market/stores/", &auth).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(answer.code(), "not_authenticated", "{auth:?}");
    }
}

#[actix_web::test]
async fn a_shopper_is_forbidden_on_admin_endpoints() {
    let app = spawn_app().await;
    let shopper = app.create_shopper("ana", None, &[]).await;
    let store = app.create_store("TechShop", 19.4326, -99.1332).await;
    let store_path = format!("/api/market/stores/{}/", store["id"]);
    let forbidden = [
        app.post(
            "/api/market/stores/",
            &shopper.auth,
            json!({"name": "X", "latitude": 1, "longitude": 1}),
        )
        .await,
        app.patch(&store_path, &shopper.auth, json!({"name": "Mine"}))
            .await,
        app.delete(&store_path, &shopper.auth).await,
        app.post(
            "/api/market/products/",
            &shopper.auth,
            json!({"store_id": store["id"], "name": "P", "regular_price": "1.00"}),
        )
        .await,
        app.get("/api/users/user-segments/", &shopper.auth).await,
        app.post(
            "/api/users/user-segments/",
            &shopper.auth,
            json!({"name": "Mine"}),
        )
        .await,
        app.post(
            "/api/users/clients-profiles/",
            &shopper.auth,
            json!({"username": "eve", "password": "long-enough"}),
        )
        .await,
        app.delete(
            &format!("/api/users/clients-profiles/{}/", shopper.profile_id),
            &shopper.auth,
        )
        .await,
    ];
    for answer in forbidden {
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{:?}", answer.body);
        assert_eq!(answer.code(), "permission_denied");
    }
    // Nothing was written.
    assert_eq!(app.count_rows("stores").await, 1);
    assert_eq!(
        app.get(&store_path, &shopper.auth).await.body["name"],
        "TechShop"
    );
    assert_eq!(app.count_rows("user_segments").await, 0);
    assert_eq!(app.count_rows("client_profiles").await, 1);
}

#[actix_web::test]
async fn a_password_change_ends_cached_basic_access_at_once() {
    let app = spawn_app().await;
    let shopper = app.create_shopper("ana", None, &[]).await;
    let old = Auth::Basic("ana".into(), SHOPPER_PASSWORD.into());
    assert_eq!(
        app.get("/api/users/clients-profiles/me/", &old)
            .await
            .status,
        StatusCode::OK
    );
    let path = format!("/api/users/clients-profiles/{}/", shopper.profile_id);
    let changed = app
        .patch(&path, &app.admin, json!({"password": "a-brand-new-one"}))
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.body);
    assert_eq!(
        app.get("/api/users/clients-profiles/me/", &old)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let new = Auth::Basic("ana".into(), "a-brand-new-one".into());
    assert_eq!(
        app.get("/api/users/clients-profiles/me/", &new)
            .await
            .status,
        StatusCode::OK
    );
}
