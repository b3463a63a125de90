//! Entries: normalisation and duplicates, validation, the `data` limit, the
//! rate limit, many entries at once, and a database that drops out.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with, Auth};
use crate::mail::read_mail_files;

#[actix_web::test]
async fn one_address_enters_once_whatever_its_case_or_spacing() {
    let app = spawn_app().await;
    let campaign_id = app.create_campaign("Spring raffle").await;
    assert_eq!(
        app.subscribe(campaign_id, "bob@example.com").await.status,
        StatusCode::CREATED
    );
    for variant in ["BOB@example.com", " Bob@Example.Com\t", "\nbob@EXAMPLE.COM"] {
        let answer = app.subscribe(campaign_id, variant).await;
        assert_eq!(answer.status, StatusCode::CONFLICT, "{variant:?}");
        assert_eq!(answer.code(), "already_subscribed");
    }
    // Racing requests with one address: exactly one gets in.
    let racers = (0..20).map(|i| {
        let email = if i % 2 == 0 {
            "Carla@example.com"
        } else {
            " carla@EXAMPLE.com "
        };
        app.subscribe(campaign_id, email)
    });
    let answers = futures_util::future::join_all(racers).await;
    let created = answers
        .iter()
        .filter(|a| a.status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1);
    assert!(answers
        .iter()
        .all(|a| a.status == StatusCode::CREATED || a.code() == "already_subscribed"));
    assert_eq!(app.count_rows("subscribers").await, 2);
    assert_eq!(app.campaign(campaign_id).await["subscriber_count"], 2);

    // The same address may enter another campaign.
    let other = app.create_campaign("Summer raffle").await;
    assert_eq!(
        app.subscribe(other, "BOB@example.com").await.status,
        StatusCode::CREATED
    );

    // The database refuses a duplicate even when written around the service.
    let client = app.pool.get().await.expect("connection");
    let sneaked = client
        .execute(
            "INSERT INTO subscribers (campaign_id, email, verification_code_hash) \
             VALUES ($1, 'Bob@Example.com', '\\x00')",
            &[&campaign_id],
        )
        .await;
    let refused = sneaked.expect_err("the unique index on lower(email) holds");
    let refused = refused.as_db_error().expect("a server error");
    assert_eq!(
        refused.code(),
        &tokio_postgres::error::SqlState::UNIQUE_VIOLATION
    );
    assert_eq!(refused.constraint(), Some("subscribers_campaign_email_key"));
}

#[actix_web::test]
async fn invalid_entries_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let campaign_id = app.create_campaign("Autumn raffle").await;
    let path = format!("/api/raffles/campaigns/{campaign_id}/add_subscriber/");
    let bad_bodies = [
        json!({"email": ""}),
        json!({"email": "not-an-address"}),
        json!({"email": "ana@"}),
        json!({"email": "@example.com"}),
        json!({"email": "Ana <ana@example.com>"}),
        json!({"email": "ana@exa mple.com"}),
        json!({"email": 42}),
        json!({"data": {"name": "Ana"}}),
        json!({"email": "ana@example.com", "data": ["not", "an", "object"]}),
        json!({"email": "ana@example.com", "data": {"blob": "x".repeat(4100)}}),
        json!({"email": "ana@example.com", "verified": true}),
    ];
    for body in bad_bodies {
        let answer = app.post(&path, &Auth::None, body.clone()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer.code(), "validation_error", "{body}");
        assert!(answer.body["fields"].is_object(), "{body}");
    }
    let not_json = app
        .call_raw(
            reqwest::Method::POST,
            &path,
            &Auth::None,
            "application/json",
            b"{email".to_vec(),
        )
        .await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.count_rows("subscribers").await, 0);
    assert_eq!(app.count_rows("email_outbox").await, 0);

    let unknown = app.subscribe(campaign_id + 1000, "ana@example.com").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn data_up_to_4_kib_is_kept_and_nul_characters_are_refused() {
    let app = spawn_app().await;
    let campaign_id = app.create_campaign("Data raffle").await;
    let path = format!("/api/raffles/campaigns/{campaign_id}/add_subscriber/");
    // {"blob":"…"} serialises to 11 bytes around the text.
    let fits = json!({"email": "max@example.com", "data": {"blob": "x".repeat(4096 - 11)}});
    let answer = app.post(&path, &Auth::None, fits).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    let over = json!({"email": "over@example.com", "data": {"blob": "x".repeat(4096 - 10)}});
    assert_eq!(
        app.post(&path, &Auth::None, over).await.status,
        StatusCode::BAD_REQUEST
    );

    let nul = json!({"email": "nul@example.com", "data": {"notes": [{"k": "a\u{0}b"}]}});
    let answer = app.post(&path, &Auth::None, nul).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer.body["fields"]["data"].is_array(),
        "{:?}",
        answer.body
    );
    let nul_name = json!({"name": "Tech\u{0}Shop", "latitude": 1.0, "longitude": 1.0});
    let answer = app.post("/api/market/stores/", &app.admin, nul_name).await;
    assert_eq!(
        answer.status,
        StatusCode::BAD_REQUEST,
        "every endpoint refuses NUL"
    );
    assert_eq!(app.count_rows("subscribers").await, 1);
    assert_eq!(app.count_rows("email_outbox").await, 1);
}

#[actix_web::test]
async fn sign_ups_are_rate_limited_per_client_address() {
    let app = spawn_app_with(|config| config.rate_limit_subscribe_per_minute = 3).await;
    let campaign_id = app.create_campaign("Limited raffle").await;
    for n in 0..3 {
        let answer = app
            .subscribe(campaign_id, &format!("user{n}@example.com"))
            .await;
        assert_eq!(answer.status, StatusCode::CREATED);
    }
    let limited = app.subscribe(campaign_id, "user3@example.com").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.code(), "rate_limited");
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .expect("header")
        .parse()
        .expect("whole seconds");
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    assert_eq!(limited.body["retry_after"], retry_after);
    assert_eq!(
        app.count_rows("subscribers").await,
        3,
        "the limited request wrote nothing"
    );
}

#[actix_web::test]
async fn entries_arriving_together_get_distinct_codes_and_one_email_each() {
    let app = spawn_app().await;
    let campaign_id = app.create_campaign("Crowded raffle").await;
    let entries = (0..50).map(|n| {
        let app = &app;
        async move {
            app.subscribe(campaign_id, &format!("crowd{n}@example.com"))
                .await
        }
    });
    let answers = futures_util::future::join_all(entries).await;
    assert!(answers.iter().all(|a| a.status == StatusCode::CREATED));
    let mut links = HashMap::new();
    for n in 0..50 {
        let recipient = format!("crowd{n}@example.com");
        let mail = app.mail_files_to(&recipient, 1).await.remove(0);
        links.insert(mail.verify_link().expect("link"), recipient);
    }
    assert_eq!(links.len(), 50, "every code is different");
    assert_eq!(
        app.count_rows("email_outbox").await,
        50,
        "one email per entry"
    );
    assert_eq!(read_mail_files(&app.mail_dir).len(), 50);
    assert_eq!(app.campaign(campaign_id).await["subscriber_count"], 50);
}

#[actix_web::test]
async fn an_entry_that_cannot_be_written_is_answered_503_and_may_be_sent_again() {
    let proxy = crate::helpers::DbProxy::start().await;
    let app = crate::helpers::spawn_app_through(&proxy).await;
    let campaign_id = app.create_campaign("Shaky raffle").await;
    // The actor has loaded its campaign once the first entry is answered.
    assert_eq!(
        app.subscribe(campaign_id, "first@example.com").await.status,
        StatusCode::CREATED
    );

    proxy.cut();
    let refused = app.subscribe(campaign_id, "olga@example.com").await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.code(), "unavailable");
    proxy.restore();

    let retried = app.subscribe(campaign_id, "olga@example.com").await;
    assert_eq!(retried.status, StatusCode::CREATED, "{:?}", retried.body);
    assert_eq!(app.count_rows("subscribers").await, 2);
    assert_eq!(app.count_rows("email_outbox").await, 2);
}

#[actix_web::test]
async fn an_address_the_mail_transport_cannot_send_to_is_refused() {
    let app = spawn_app().await;
    let campaign_id = app.create_campaign("Autumn raffle").await;
    // Valid by RFC 5322 (a quoted local part) but not sendable by the mailer.
    for email in [r#""a b"@example.com"#, r#""ana"@example.com"#] {
        let answer = app.subscribe(campaign_id, email).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{email}: {:?}",
            answer.body
        );
        assert_eq!(answer.code(), "validation_error");
        assert!(
            answer.body["fields"]["email"].is_array(),
            "{:?}",
            answer.body
        );
    }
    assert_eq!(app.count_rows("subscribers").await, 0);
    assert_eq!(app.count_rows("email_outbox").await, 0);
    let plain = app.subscribe(campaign_id, "a.b+raffle@example.com").await;
    assert_eq!(plain.status, StatusCode::CREATED, "{:?}", plain.body);
}
