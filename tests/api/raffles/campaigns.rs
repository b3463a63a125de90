//! Campaign CRUD and who may use it, the confirmation link (HTML and JSON),
//! and the live counts pushed to admin sessions.

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::connect_async;

use crate::helpers::{spawn_app, Auth};
use crate::websocket::{next_json, next_of, send, ws_url};

#[actix_web::test]
async fn campaign_crud_validates_and_counts() {
    let app = spawn_app().await;
    let bad = app
        .post(
            "/api/raffles/campaigns/",
            &app.admin,
            json!({
                "name": "",
                "admin_email": "nobody",
                "email_subject": "Hi\r\nBcc: all@example.com",
                "email_template": "No link here",
                "status": "finished",
            }),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let fields = &bad.body["fields"];
    for field in [
        "name",
        "admin_email",
        "email_subject",
        "email_template",
        "status",
    ] {
        assert!(fields[field].is_array(), "{field} is reported: {fields}");
    }
    assert_eq!(app.count_rows("campaigns").await, 0);

    let campaign_id = app.create_campaign("Winter raffle").await;
    let created = app.campaign(campaign_id).await;
    assert_eq!(created["status"], "open");
    assert_eq!(created["description"], "A weekend for two");
    assert_eq!(created["subscriber_count"], 0);
    assert!(created["created_at"].is_string());
    assert_eq!(created["finished_at"], Value::Null);

    let path = format!("/api/raffles/campaigns/{campaign_id}/");
    let patched = app
        .patch(
            &path,
            &app.admin,
            json!({"email_subject": "Please confirm"}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!(patched.body["email_subject"], "Please confirm");
    assert_eq!(patched.body["name"], "Winter raffle");
    let incomplete = app
        .put(&path, &app.admin, json!({"name": "Only a name"}))
        .await;
    assert_eq!(incomplete.status, StatusCode::BAD_REQUEST);

    // New entries use the edited subject.
    app.subscribe(campaign_id, "hana@example.com").await;
    app.subscribe(campaign_id, "ivan@example.com").await;
    let mail = app.mail_files_to("hana@example.com", 1).await.remove(0);
    assert_eq!(mail.subject, "Please confirm");

    let listed = app.get("/api/raffles/campaigns/", &app.admin).await;
    assert_eq!(listed.body["count"], 1);
    assert_eq!(listed.body["results"][0]["subscriber_count"], 2);

    let subscribers = app
        .get(&format!("{path}subscribers/?page_size=1"), &app.admin)
        .await;
    assert_eq!(subscribers.status, StatusCode::OK);
    assert_eq!(subscribers.body["count"], 2);
    let first = &subscribers.body["results"][0];
    assert_eq!(first["email"], "hana@example.com");
    assert_eq!(first["verified"], false);
    assert!(first["created_at"].is_string());
    assert!(subscribers.body["next"].is_string());
    let missing = app
        .get("/api/raffles/campaigns/999/subscribers/", &app.admin)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    assert_eq!(
        app.delete(&path, &app.admin).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&path, &app.admin).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.count_rows("subscribers").await, 0);
    let after = app.subscribe(campaign_id, "late@example.com").await;
    assert_eq!(after.status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn campaigns_are_the_admins_and_entries_are_public() {
    let app = spawn_app().await;
    let campaign_id = app.create_campaign("Admin only").await;
    let shopper = app.create_shopper("gus", Some((19.43, -99.13)), &[]).await;
    let paths = [
        "/api/raffles/campaigns/".to_string(),
        format!("/api/raffles/campaigns/{campaign_id}/"),
        format!("/api/raffles/campaigns/{campaign_id}/subscribers/"),
        format!("/api/raffles/campaigns/{campaign_id}/finish_campaign/"),
    ];
    for path in &paths {
        assert_eq!(
            app.get(path, &shopper.auth).await.status,
            StatusCode::FORBIDDEN,
            "{path}"
        );
        assert_eq!(
            app.get(path, &Auth::None).await.status,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
    let create = app
        .post(
            "/api/raffles/campaigns/",
            &shopper.auth,
            json!({"name": "Mine"}),
        )
        .await;
    assert_eq!(create.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.subscribe(campaign_id, "gus@example.com").await.status,
        StatusCode::CREATED
    );
    assert_eq!(app.count_rows("campaigns").await, 1);
}

#[actix_web::test]
async fn shoppers_cannot_change_or_draw_a_campaign() {
    let app = spawn_app().await;
    let campaign_id = app.create_campaign("Guarded raffle").await;
    let shopper = app.create_shopper("nina", Some((19.43, -99.13)), &[]).await;
    let path = format!("/api/raffles/campaigns/{campaign_id}/");
    let body = json!({"name": "Mine now"});
    assert_eq!(
        app.put(&path, &shopper.auth, body.clone()).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.patch(&path, &shopper.auth, body).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.delete(&path, &shopper.auth).await.status,
        StatusCode::FORBIDDEN
    );
    let finish = format!("{path}finish_campaign/");
    assert_eq!(
        app.post(&finish, &shopper.auth, json!({})).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.campaign(campaign_id).await["name"], "Guarded raffle");
}

#[actix_web::test]
async fn a_campaign_written_by_another_instance_takes_entries() {
    let app = spawn_app().await;
    let client = app.pool.get().await.expect("connection");
    let campaign_id: i64 = client
        .query_one(
            "INSERT INTO campaigns (name, admin_email, email_subject, email_template) \
             VALUES ('Elsewhere', 'boss@example.com', 'Confirm', 'Go: {{verify_url}}') RETURNING id",
            &[],
        )
        .await
        .expect("campaign")
        .get(0);
    let answer = app.subscribe(campaign_id, "lea@example.com").await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    let again = app.subscribe(campaign_id, "LEA@example.com").await;
    assert_eq!(again.code(), "already_subscribed");
}

#[actix_web::test]
async fn admin_sessions_see_the_live_counts() {
    let app = spawn_app().await;
    let campaign_id = app.create_campaign("Live raffle").await;
    let Auth::Token(token) = &app.admin else {
        panic!("the admin logs in with a token");
    };
    let (mut admin, _) = connect_async(ws_url(&app, token)).await.expect("upgrade");
    assert_eq!(next_json(&mut admin).await["type"], "hello");
    let shopper = app.create_shopper("jo", Some((19.43, -99.13)), &[]).await;
    let Auth::Token(shopper_token) = &shopper.auth else {
        panic!("token");
    };
    let (mut shopper_socket, _) = connect_async(ws_url(&app, shopper_token))
        .await
        .expect("upgrade");
    assert_eq!(next_json(&mut shopper_socket).await["type"], "hello");

    app.subscribe(campaign_id, "kim@example.com").await;
    let stats = next_of(&mut admin, "raffle.stats").await;
    assert_eq!(
        stats,
        json!({"type": "raffle.stats", "campaign_id": campaign_id,
               "subscriber_count": 1, "verified_count": 0})
    );
    let mail = app.mail_files_to("kim@example.com", 1).await.remove(0);
    let code = mail.verify_link().expect("link");
    let code = code.split("code=").nth(1).expect("code");
    app.follow(
        &format!("{}/api/raffles/verify_subscriber/?code={code}", app.address),
        "*/*",
    )
    .await;
    let stats = next_of(&mut admin, "raffle.stats").await;
    assert_eq!(stats["verified_count"], 1);

    // A shopper's session gets no campaign counts: its next frame answers its ping.
    send(
        &mut shopper_socket,
        json!({"type": "ping", "request_id": 1}),
    )
    .await;
    assert_eq!(next_json(&mut shopper_socket).await["type"], "pong");
}

#[actix_web::test]
async fn the_link_answers_a_page_to_browsers_and_json_to_others() {
    let app = spawn_app().await;
    let campaign_id = app.create_campaign("Links <& more>").await;
    app.subscribe(campaign_id, "finn@example.com").await;
    let mail = app.mail_files_to("finn@example.com", 1).await.remove(0);
    let link = mail.verify_link().expect("link");
    let code = link.split("code=").nth(1).expect("code");
    let local = format!("{}/api/raffles/verify_subscriber/?code={code}", app.address);

    let (status, page) = app
        .follow(&local, "text/html,application/xhtml+xml;q=0.9")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<!DOCTYPE html>"));
    assert!(
        page.contains("Links &lt;&amp; more&gt;"),
        "the name is escaped: {page}"
    );
    assert_eq!(app.campaign(campaign_id).await["verified_count"], 1);

    let (status, body) = app.follow(&local, "*/*").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("JSON")["verified"],
        true
    );
    assert_eq!(
        app.campaign(campaign_id).await["verified_count"],
        1,
        "counted once"
    );

    let wrong = format!("{}/api/raffles/verify_subscriber/?code=0000", app.address);
    let (status, body) = app.follow(&wrong, "application/json").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("JSON")["code"],
        "not_found"
    );
    let (status, page) = app.follow(&wrong, "text/html").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("not valid"));
    let missing = format!("{}/api/raffles/verify_subscriber/", app.address);
    assert_eq!(app.follow(&missing, "*/*").await.0, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn verifying_after_the_draw_confirms_the_address_but_changes_no_winner() {
    let app = spawn_app().await;
    let campaign_id = app.create_campaign("Late raffle").await;
    app.subscribe_verified(campaign_id, "first@example.com")
        .await;
    app.subscribe(campaign_id, "late@example.com").await;
    let finished = app.finish(campaign_id).await;
    assert_eq!(finished.body["winner"]["email"], "first@example.com");
    let mail = app.mail_files_to("late@example.com", 1).await.remove(0);
    let link = app.local_link(&mail.verify_link().expect("link"));
    let (status, page) = app.follow(&link, "text/html").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("already taken place"), "{page}");
    let campaign = app.campaign(campaign_id).await;
    assert_eq!(
        campaign["verified_count"], 2,
        "the count is of confirmed addresses"
    );
    assert_eq!(campaign["winner"]["email"], "first@example.com");

    // Deleting a finished campaign takes its subscribers and their links.
    let path = format!("/api/raffles/campaigns/{campaign_id}/");
    assert_eq!(
        app.delete(&path, &app.admin).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.follow(&link, "*/*").await.0, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn an_admin_email_the_mail_transport_cannot_send_to_is_refused() {
    let app = spawn_app().await;
    let body = json!({
        "name": "Spring raffle",
        "admin_email": "\"market ing\"@example.com",
        "email_subject": "Confirm your entry",
        "email_template": "Hi! Confirm your entry: {{verify_url}}",
    });
    let refused = app.post("/api/raffles/campaigns/", &app.admin, body).await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{:?}",
        refused.body
    );
    assert!(refused.body["fields"]["admin_email"].is_array());
    assert_eq!(app.count_rows("campaigns").await, 0);
    let campaign_id = app.create_campaign("Spring raffle").await;
    let patched = app
        .patch(
            &format!("/api/raffles/campaigns/{campaign_id}/"),
            &app.admin,
            json!({"admin_email": "\"a b\"@example.com"}),
        )
        .await;
    assert_eq!(
        patched.status,
        StatusCode::BAD_REQUEST,
        "{:?}",
        patched.body
    );
    assert_eq!(
        app.campaign(campaign_id).await["admin_email"],
        "marketing@example.com"
    );
}
