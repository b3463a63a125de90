//! Tokens, the three credential spellings, and who may call what.

use base64::Engine;
use reqwest::StatusCode;
use serde_json::json;

use actix_web::dev::ServerHandle;
use promo_engine::config::Config;
use promo_engine::startup::Application;

use crate::helpers::{
    spawn_app, spawn_app_with, Auth, TestApp, ADMIN_PASSWORD, ADMIN_USERNAME, SHOPPER_PASSWORD,
};

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

/// A client whose requests come from `address` (any of 127.0.0.0/8 is this
/// machine), so that one test can play several client addresses.
fn client_from(address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address.parse::<std::net::IpAddr>().unwrap())
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap()
}

/// `POST /api/auth/token/` from `client`: the status, `Retry-After` and body.
async fn sign_in(
    app: &TestApp,
    client: &reqwest::Client,
    username: &str,
    password: &str,
) -> (StatusCode, Option<u64>, serde_json::Value) {
    let response = client
        .post(format!("{}/api/auth/token/", app.address))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().parse().unwrap());
    (status, retry_after, response.json().await.unwrap())
}

/// An authenticated GET with HTTP Basic from `client`: the status.
async fn basic_get(app: &TestApp, client: &reqwest::Client, user: &str, pw: &str) -> StatusCode {
    client
        .get(format!("{}/api/users/clients-profiles/me/", app.address))
        .basic_auth(user, Some(pw))
        .send()
        .await
        .unwrap()
        .status()
}

#[actix_web::test]
async fn the_eleventh_wrong_password_for_a_username_is_429_even_with_the_right_one() {
    let app = spawn_app().await;
    app.create_shopper("ana", None, &[]).await;
    app.create_shopper("bob", None, &[]).await;
    // Ten failures, each from its own address and by either route.
    for attempt in 0..10 {
        let client = client_from(&format!("127.0.0.{}", 10 + attempt));
        if attempt % 2 == 0 {
            let (status, _, body) = sign_in(&app, &client, "ana", "wrong-password").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        } else {
            let status = basic_get(&app, &client, "ana", "wrong-password").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
    }
    let fresh = client_from("127.0.0.40");
    let (status, retry_after, body) = sign_in(&app, &fresh, "ana", SHOPPER_PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["code"], "rate_limited");
    assert!(retry_after.is_some_and(|seconds| (1..=60).contains(&seconds)));
    assert_eq!(
        basic_get(&app, &fresh, "ana", SHOPPER_PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another username, from the same address, is not held back.
    let (status, _, body) = sign_in(&app, &fresh, "bob", SHOPPER_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        basic_get(&app, &fresh, "bob", SHOPPER_PASSWORD).await,
        StatusCode::OK
    );
}

#[actix_web::test]
async fn one_address_is_throttled_across_many_usernames() {
    let app = spawn_app().await;
    app.create_shopper("ana", None, &[]).await;
    let noisy = client_from("127.0.0.50");
    for attempt in 0..10 {
        let (status, _, body) = sign_in(&app, &noisy, &format!("guess{attempt}"), "x-y-z-w").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    // The allowance refills one failure every 6 s; on a loaded machine the
    // ten hashes above can take that long, so a few more may be let through
    // before the address is refused (never more than the refill allows).
    let mut extra = 0;
    loop {
        let (status, _, body) = sign_in(&app, &noisy, &format!("more{extra}"), "x-y-z-w").await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        extra += 1;
        assert!(
            extra <= 5,
            "still not throttled after {} failures",
            10 + extra
        );
    }
    let (status, retry_after, body) = sign_in(&app, &noisy, "ana", SHOPPER_PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(retry_after.is_some());
    assert_eq!(
        basic_get(&app, &noisy, "ana", SHOPPER_PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The same username from another address signs in.
    let quiet = client_from("127.0.0.51");
    let (status, _, body) = sign_in(&app, &quiet, "ana", SHOPPER_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[actix_web::test]
async fn a_zero_login_failure_limit_turns_the_throttle_off() {
    let app = spawn_app_with(|config| config.login_failures_per_minute = 0).await;
    let client = client_from("127.0.0.60");
    for _ in 0..12 {
        let (status, _, _) = sign_in(&app, &client, ADMIN_USERNAME, "wrong-password").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _, _) = sign_in(&app, &client, ADMIN_USERNAME, ADMIN_PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
}

/// Builds and runs a second service on `app`'s database whose admin is `admin`.
async fn restart_with_admin(app: &TestApp, admin: &str, password: &str) -> (String, ServerHandle) {
    let data_dir = tempfile::tempdir().unwrap();
    let vars = std::collections::HashMap::from([
        ("DATABASE_URL", app.database_url()),
        ("DATABASE_POOL_SIZE", "2".to_owned()),
        ("BIND", "127.0.0.1:0".to_owned()),
        ("HTTP_WORKERS", "1".to_owned()),
        ("ADMIN_USERNAME", admin.to_owned()),
        ("ADMIN_PASSWORD", password.to_owned()),
        ("DATA_DIR", data_dir.path().display().to_string()),
    ]);
    let config = Config::from_lookup(|name| vars.get(name).cloned()).unwrap();
    let application = Application::build(config).await.unwrap();
    let address = format!("http://127.0.0.1:{}", application.port());
    let handle = application.handle();
    actix_web::rt::spawn(async move {
        let _kept = data_dir;
        application.run_until_stopped().await
    });
    (address, handle)
}

/// The status of an admin-only GET at `address`.
async fn admin_list_status(address: &str, auth: &Auth) -> StatusCode {
    let request = reqwest::Client::new().get(format!("{address}/api/users/user-segments/"));
    let request = match auth {
        Auth::Token(token) => request.bearer_auth(token),
        Auth::Basic(user, password) => request.basic_auth(user, Some(password)),
        other => panic!("unexpected {other:?}"),
    };
    request.send().await.unwrap().status()
}

#[actix_web::test]
async fn restarting_with_another_admin_username_demotes_the_former_admin() {
    let app = spawn_app().await;
    let former_basic = Auth::Basic(ADMIN_USERNAME.into(), ADMIN_PASSWORD.into());
    let (address, handle) = restart_with_admin(&app, "boss", "boss-password-1").await;
    let boss = Auth::Basic("boss".into(), "boss-password-1".into());
    assert_eq!(admin_list_status(&address, &boss).await, StatusCode::OK);
    assert_eq!(
        admin_list_status(&address, &app.admin).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        admin_list_status(&address, &former_basic).await,
        StatusCode::FORBIDDEN
    );
    handle.stop(true).await;
    // Back to the first admin, whose password is unchanged: boss is demoted.
    let (address, handle) = restart_with_admin(&app, ADMIN_USERNAME, ADMIN_PASSWORD).await;
    assert_eq!(
        admin_list_status(&address, &app.admin).await,
        StatusCode::OK
    );
    assert_eq!(
        admin_list_status(&address, &boss).await,
        StatusCode::FORBIDDEN
    );
    handle.stop(true).await;
}
