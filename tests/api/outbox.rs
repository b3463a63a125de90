//! `/api/outbox/`: listing the emails the mailer gave up on, and queueing
//! them again so the mailer delivers them.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_app, wait_until, Auth, TestApp};
use crate::mail::read_mail_files;

/// Writes an email the mailer gave up on after `attempts` refusals.
async fn abandoned_email(app: &TestApp, recipient: &str) -> i64 {
    let client = app.pool.get().await.unwrap();
    client
        .query_one(
            "INSERT INTO email_outbox (recipient, subject, body_text, attempts, last_error, abandoned_at) \
             VALUES ($1, 'You won', 'Congratulations', 20, '550 mailbox unavailable', now()) \
             RETURNING id",
            &[&recipient],
        )
        .await
        .unwrap()
        .get(0)
}

async fn sent(app: &TestApp, id: i64) -> bool {
    let client = app.pool.get().await.unwrap();
    client
        .query_one(
            "SELECT sent_at IS NOT NULL FROM email_outbox WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0)
}

#[actix_web::test]
async fn abandoned_emails_are_listed_and_a_requeued_one_is_delivered() {
    let app = spawn_app().await;
    let first = abandoned_email(&app, "ana@example.com").await;
    let second = abandoned_email(&app, "bob@example.com").await;

    let listed = app.get("/api/outbox/abandoned/", &app.admin).await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    assert_eq!(listed.body["count"], 2);
    let item = &listed.body["results"][0];
    assert_eq!(item["last_error"], "550 mailbox unavailable");
    assert_eq!(item["attempts"], 20);
    assert!(item.get("body_text").is_none(), "bodies are not listed");

    let answer = app
        .post("/api/outbox/requeue/", &app.admin, json!({"ids": [second]}))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.body, json!({"requeued": 1, "ids": [second]}));
    let delivered = wait_until(Duration::from_secs(10), || sent(&app, second)).await;
    assert!(delivered, "the requeued email was delivered");
    let mails = read_mail_files(&app.mail_dir);
    assert!(mails.iter().any(|mail| mail.to.contains("bob@example.com")));
    assert!(!sent(&app, first).await, "the other one stays abandoned");

    // A delivered email is never queued again; the rest are, with no ids.
    let answer = app
        .post("/api/outbox/requeue/", &app.admin, json!({}))
        .await;
    assert_eq!(answer.body, json!({"requeued": 1, "ids": [first]}));
    assert!(wait_until(Duration::from_secs(10), || sent(&app, first)).await);
    let listed = app.get("/api/outbox/abandoned/", &app.admin).await;
    assert_eq!(listed.body["count"], 0);
}

#[actix_web::test]
async fn only_the_admin_may_see_or_requeue_the_outbox() {
    let app = spawn_app().await;
    let id = abandoned_email(&app, "ana@example.com").await;
    let shopper = app.create_shopper("ana", None, &[]).await;
    for auth in [&Auth::None, &shopper.auth] {
        let listed = app.get("/api/outbox/abandoned/", auth).await;
        assert!(
            [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&listed.status),
            "{:?}",
            listed.body
        );
        let answer = app
            .post("/api/outbox/requeue/", auth, json!({"ids": [id]}))
            .await;
        assert!([StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&answer.status));
    }
    let answer = app
        .post("/api/outbox/requeue/", &app.admin, json!({"ids": "all"}))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.body["fields"]["ids"].is_array());
    assert!(!sent(&app, id).await, "nothing was changed");
    let listed = app.get("/api/outbox/abandoned/", &app.admin).await;
    assert_eq!(listed.body["count"], 1);
}
