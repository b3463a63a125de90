//! `/api/users/clients-profiles/` and `me/`.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

#[actix_web::test]
async fn the_admin_creates_a_profile_with_account_segments_and_location() {
    let app = spawn_app().await;
    let new_users = app.create_segment("New users").await;
    let frequent = app.create_segment("Frequent buyers").await;
    let answer = app
        .post(
            "/api/users/clients-profiles/",
            &app.admin,
            json!({"username": "ana", "password": "ana-password", "email": " Ana@Example.com ",
                   "latitude": 19.43, "longitude": -99.13, "segment_ids": [frequent, new_users]}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    let profile = &answer.body;
    assert_eq!(profile["user"]["username"], "ana");
    assert_eq!(profile["user"]["email"], "Ana@example.com");
    assert_eq!(profile["latitude"], 19.43);
    assert_eq!(profile["last_notification_date"], json!(null));
    let segment_ids: Vec<i64> = profile["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    assert_eq!(segment_ids, vec![new_users, frequent]);
    assert!(profile.get("password").is_none());
    // The stored password is an argon2 hash.
    let client = app.pool.get().await.unwrap();
    let hash: String = client
        .query_one(
            "SELECT password_hash FROM users WHERE username = 'ana'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    // The new shopper can log in.
    app.login("ana", "ana-password").await;
}

#[actix_web::test]
async fn a_profile_without_email_location_or_segments_is_fine() {
    let app = spawn_app().await;
    let answer = app
        .post(
            "/api/users/clients-profiles/",
            &app.admin,
            json!({"username": "luis", "password": "luis-password"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    assert_eq!(answer.body["latitude"], json!(null));
    assert_eq!(answer.body["segments"], json!([]));
    assert_eq!(answer.body["user"]["email"], "");
}

#[actix_web::test]
async fn invalid_profiles_are_refused_and_nothing_is_written() {
    let app = spawn_app().await;
    let cases = [
        (json!({"username": "ana", "password": "short"}), "password"),
        (
            json!({"username": "an a", "password": "long-enough"}),
            "username",
        ),
        (json!({"password": "long-enough"}), "username"),
        (
            json!({"username": "ana", "password": "long-enough", "email": "not-an-email"}),
            "email",
        ),
        (
            json!({"username": "ana", "password": "long-enough", "latitude": 95, "longitude": 0}),
            "latitude",
        ),
        (
            json!({"username": "ana", "password": "long-enough", "latitude": 10}),
            "longitude",
        ),
        (
            json!({"username": "ana", "password": "long-enough", "segment_ids": [424242]}),
            "segment_ids",
        ),
        (
            json!({"username": "ana", "password": "long-enough", "segment_ids": "1"}),
            "segment_ids",
        ),
        (
            json!({"username": "ana", "password": "long-enough", "last_notification_date": null}),
            "last_notification_date",
        ),
    ];
    for (body, field) in cases {
        let answer = app
            .post("/api/users/clients-profiles/", &app.admin, body.clone())
            .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{body}: {:?}",
            answer.body
        );
        assert!(
            answer.body["fields"][field].is_array(),
            "{body}: {:?}",
            answer.body
        );
    }
    assert_eq!(app.count_rows("users").await, 1, "only the admin");
    assert_eq!(app.count_rows("client_profiles").await, 0);
}

#[actix_web::test]
async fn usernames_are_unique() {
    let app = spawn_app().await;
    app.create_shopper("ana", None, &[]).await;
    let duplicate = app
        .post(
            "/api/users/clients-profiles/",
            &app.admin,
            json!({"username": "ana", "password": "long-enough"}),
        )
        .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    assert_eq!(duplicate.code(), "duplicate");
    let admin_name = app
        .post(
            "/api/users/clients-profiles/",
            &app.admin,
            json!({"username": "admin", "password": "long-enough"}),
        )
        .await;
    assert_eq!(admin_name.status, StatusCode::CONFLICT);
    assert_eq!(app.count_rows("client_profiles").await, 1);
}

#[actix_web::test]
async fn a_shopper_sees_only_their_own_profile() {
    let app = spawn_app().await;
    let ana = app.create_shopper("ana", None, &[]).await;
    let luis = app.create_shopper("luis", None, &[]).await;
    let listed = app.get("/api/users/clients-profiles/", &ana.auth).await;
    assert_eq!(listed.body["count"], 1);
    assert_eq!(listed.body["results"][0]["user"]["username"], "ana");
    let own = app
        .get(
            &format!("/api/users/clients-profiles/{}/", ana.profile_id),
            &ana.auth,
        )
        .await;
    assert_eq!(own.status, StatusCode::OK);
    let other = app
        .get(
            &format!("/api/users/clients-profiles/{}/", luis.profile_id),
            &ana.auth,
        )
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert_eq!(other.code(), "not_found");
    let all = app.get("/api/users/clients-profiles/", &app.admin).await;
    assert_eq!(all.body["count"], 2);
}

#[actix_web::test]
async fn a_shopper_patches_only_their_location_through_me() {
    let app = spawn_app().await;
    let ana = app.create_shopper("ana", None, &[]).await;
    let me = app.get("/api/users/clients-profiles/me/", &ana.auth).await;
    assert_eq!(me.body["id"], ana.profile_id);

    let moved = app
        .patch(
            "/api/users/clients-profiles/me/",
            &ana.auth,
            json!({"latitude": 19.5, "longitude": -99.2}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    assert_eq!(moved.body["latitude"], 19.5);
    // One coordinate alone keeps the other.
    let nudged = app
        .patch(
            "/api/users/clients-profiles/me",
            &ana.auth,
            json!({"longitude": -99.25}),
        )
        .await;
    assert_eq!(nudged.body["latitude"], 19.5);
    assert_eq!(nudged.body["longitude"], -99.25);

    for body in [
        json!({"username": "eve"}),
        json!({"segment_ids": [1]}),
        json!({"latitude": 19.5, "longitude": -99.2, "email": "x@example.com"}),
        json!({"latitude": -91, "longitude": 0}),
        json!({"latitude": null}),
    ] {
        let refused = app
            .patch("/api/users/clients-profiles/me/", &ana.auth, body.clone())
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(refused.code(), "validation_error");
    }
    let unchanged = app.get("/api/users/clients-profiles/me/", &ana.auth).await;
    assert_eq!(unchanged.body["user"]["username"], "ana");
    assert_eq!(unchanged.body["latitude"], 19.5);
    assert_eq!(unchanged.body["longitude"], -99.25);

    let forgotten = app
        .patch(
            "/api/users/clients-profiles/me/",
            &ana.auth,
            json!({"latitude": null, "longitude": null}),
        )
        .await;
    assert_eq!(forgotten.body["latitude"], json!(null));
}

#[actix_web::test]
async fn the_admin_has_no_profile_of_their_own() {
    let app = spawn_app().await;
    let answer = app.get("/api/users/clients-profiles/me/", &app.admin).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn the_admin_replaces_patches_and_deletes_profiles() {
    let app = spawn_app().await;
    let segment = app.create_segment("New users").await;
    let ana = app
        .create_shopper("ana", Some((1.0, 1.0)), &[segment])
        .await;
    let path = format!("/api/users/clients-profiles/{}/", ana.profile_id);

    let patched = app
        .patch(
            &path,
            &app.admin,
            json!({"email": "ana@new.example", "segment_ids": []}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
    assert_eq!(patched.body["user"]["email"], "ana@new.example");
    assert_eq!(patched.body["segments"], json!([]));
    assert_eq!(patched.body["latitude"], 1.0);

    let replaced = app
        .put(&path, &app.admin, json!({"username": "ana2", "latitude": null, "longitude": null, "segment_ids": [segment]}))
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{:?}", replaced.body);
    assert_eq!(replaced.body["user"]["username"], "ana2");
    assert_eq!(replaced.body["latitude"], json!(null));
    assert_eq!(replaced.body["segments"][0]["id"], segment);

    let incomplete = app
        .put(&path, &app.admin, json!({"username": "ana3"}))
        .await;
    assert_eq!(incomplete.status, StatusCode::BAD_REQUEST);

    assert_eq!(
        app.delete(&path, &app.admin).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.count_rows("users").await,
        1,
        "the account went with its profile"
    );
    let gone = app.get("/api/users/clients-profiles/me/", &ana.auth).await;
    assert_eq!(
        gone.status,
        StatusCode::UNAUTHORIZED,
        "a deleted account's token no longer works"
    );
    assert_eq!(
        app.delete(&path, &app.admin).await.status,
        StatusCode::NOT_FOUND
    );
}
