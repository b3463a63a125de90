//! Email delivery over a real SMTP conversation: the whole flow, a mail
//! server that is down and comes back, a crash of the service, a refusal.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::smtp_to;
use crate::helpers::{spawn_app_with, spawn_process_app_with_env, wait_until, ServiceProcess};
use crate::mail::{unused_port, SmtpSink};

#[actix_web::test]
async fn the_whole_flow_sends_every_email_over_smtp() {
    let sink = SmtpSink::start();
    let app = spawn_app_with(|config| {
        smtp_to(sink.url())(config);
        config.public_base_url = "https://raffles.example/promo".parse().expect("url");
    })
    .await;
    let campaign_id = app.create_campaign("Estancia de San Valentín ♥").await;

    let entered = app.subscribe(campaign_id, "  Ana.Lopez@Example.COM ").await;
    assert_eq!(entered.status, StatusCode::CREATED, "{:?}", entered.body);
    assert_eq!(entered.body["email"], "ana.lopez@example.com");
    assert_eq!(entered.body["verified"], false);

    let mail = sink.wait_for("ana.lopez@example.com", 1).await.remove(0);
    assert_eq!(mail.subject, "Confirm your entry");
    assert!(
        mail.text.starts_with("Hi! Confirm your entry: http"),
        "the campaign template: {}",
        mail.text
    );
    let link = mail.verify_link().expect("the link is in the text part");
    let base = "https://raffles.example/promo/api/raffles/verify_subscriber/?code=";
    assert!(
        link.starts_with(base),
        "{link} is built from PUBLIC_BASE_URL"
    );
    let code = link.trim_start_matches(base);
    assert!(code.len() >= 32, "at least 128 bits of code");
    let html = mail.html.expect("an HTML part");
    assert!(html.contains(&format!("href=\"{link}\"")), "{html}");

    // The link names the public address; follow it on the test's port.
    let local_link = format!("{}/api/raffles/verify_subscriber/?code={code}", app.address);
    let (status, body) = app.follow(&local_link, "application/json").await;
    assert_eq!(status, StatusCode::OK);
    let body: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(body, json!({"verified": true, "campaign_id": campaign_id}));
    let (again, _) = app.follow(&local_link, "application/json").await;
    assert_eq!(
        again,
        StatusCode::OK,
        "following the link twice is harmless"
    );

    let campaign = app.campaign(campaign_id).await;
    assert_eq!(campaign["subscriber_count"], 1);
    assert_eq!(campaign["verified_count"], 1);
    assert_eq!(campaign["winner"], Value::Null);

    let finished = app.finish(campaign_id).await;
    assert_eq!(finished.status, StatusCode::OK, "{:?}", finished.body);
    assert_eq!(finished.body["winner"]["email"], "ana.lopez@example.com");
    assert_eq!(finished.body["winner"]["data"], json!({"source": "test"}));
    assert_eq!(finished.body["campaign"]["status"], "finished");
    assert!(finished.body["campaign"]["finished_at"].is_string());

    let won = sink.wait_for("ana.lopez@example.com", 2).await;
    let winner_mail = won
        .iter()
        .find(|mail| mail.subject.contains("won"))
        .expect("winner email");
    // Non-ASCII names survive the trip, in the encoded subject and the body.
    assert_eq!(winner_mail.subject, "You won: Estancia de San Valentín ♥");
    assert!(winner_mail.text.contains("Estancia de San Valentín ♥"));
    let admin_mail = sink.wait_for("marketing@example.com", 1).await.remove(0);
    assert!(admin_mail.text.contains("ana.lopez@example.com"));
    assert!(admin_mail.text.contains("1 verified entry"));

    let repeated = app
        .get(
            &format!("/api/raffles/campaigns/{campaign_id}/finish_campaign/"),
            &app.admin,
        )
        .await;
    assert_eq!(repeated.status, StatusCode::OK);
    assert_eq!(repeated.body["winner"], finished.body["winner"]);
    let late = app.subscribe(campaign_id, "late@example.com").await;
    assert_eq!(late.status, StatusCode::CONFLICT);
    assert_eq!(late.code(), "campaign_closed");
    assert_eq!(
        app.count_rows("email_outbox").await,
        3,
        "no second draw's emails"
    );
}

#[actix_web::test]
async fn mail_is_retried_while_the_smtp_server_is_down_and_arrives_later() {
    let port = unused_port();
    let app = spawn_app_with(smtp_to(format!("smtp://127.0.0.1:{port}"))).await;
    let campaign_id = app.create_campaign("Patient raffle").await;
    let answer = app.subscribe(campaign_id, "dora@example.com").await;
    assert_eq!(
        answer.status,
        StatusCode::CREATED,
        "accepted while mail is down"
    );

    let client = app.pool.get().await.expect("connection");
    let failed_once = wait_until(Duration::from_secs(20), || async {
        let row = client
            .query_one(
                "SELECT attempts, last_error, sent_at IS NULL FROM email_outbox",
                &[],
            )
            .await
            .expect("outbox row");
        row.get::<_, i32>(0) >= 1 && row.get::<_, Option<String>>(1).is_some() && row.get(2)
    })
    .await;
    assert!(failed_once, "the first attempt fails and is recorded");

    let sink = SmtpSink::start_on_port(port);
    let mail = sink.wait_for("dora@example.com", 1).await.remove(0);
    assert!(mail.verify_link().is_some());
    let sent = wait_until(Duration::from_secs(10), || async {
        let row = client
            .query_one(
                "SELECT sent_at IS NOT NULL, body_text FROM email_outbox",
                &[],
            )
            .await
            .expect("outbox row");
        row.get::<_, bool>(0) && row.get::<_, String>(1).is_empty()
    })
    .await;
    assert!(
        sent,
        "the row is marked sent and its body (with the code) dropped"
    );
}

#[actix_web::test]
async fn accepted_mail_survives_a_crash_of_the_service() {
    let port = unused_port();
    let smtp_url = format!("smtp://127.0.0.1:{port}");
    let env = [("MAIL_TRANSPORT", "smtp"), ("SMTP_URL", smtp_url.as_str())];
    let (app, mut process) = spawn_process_app_with_env(60, &[], &env).await;
    let campaign_id = app.create_campaign("Crash raffle").await;
    let answer = app.subscribe(campaign_id, "eve@example.com").await;
    assert_eq!(answer.status, StatusCode::CREATED);
    // Crash once the failed attempt is recorded (a crash in the middle of an
    // attempt leaves the row leased for two minutes, then it goes the same way).
    let client = app.pool.get().await.expect("connection");
    let failed_once = wait_until(Duration::from_secs(20), || async {
        let row = client
            .query_one("SELECT last_error IS NOT NULL FROM email_outbox", &[])
            .await
            .expect("outbox row");
        row.get::<_, bool>(0)
    })
    .await;
    assert!(
        failed_once,
        "the first attempt fails while the server is down"
    );
    process.kill();

    let sink = SmtpSink::start_on_port(port);
    let data_dir = app
        .mail_dir
        .parent()
        .expect("data dir")
        .to_string_lossy()
        .into_owned();
    let env = [
        ("MAIL_TRANSPORT", "smtp"),
        ("SMTP_URL", smtp_url.as_str()),
        ("DATA_DIR", data_dir.as_str()),
    ];
    let restarted = ServiceProcess::start_with_env(&app.database_url(), 60, &[], &env).await;
    let mail = sink.wait_for("eve@example.com", 1).await.remove(0);
    // The restarted service reloaded who entered: a duplicate is still refused.
    let again = app
        .http
        .post(format!(
            "{}/api/raffles/campaigns/{campaign_id}/add_subscriber/",
            restarted.address
        ))
        .json(&serde_json::json!({"email": " EVE@example.com"}))
        .send()
        .await
        .expect("answer");
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert!(mail.verify_link().is_some());
    assert!(
        mail.message_id.starts_with("<outbox-"),
        "{}",
        mail.message_id
    );
}

#[actix_web::test]
async fn a_refused_recipient_is_retried_without_holding_up_the_others() {
    let sink = SmtpSink::refusing("bounce");
    let app = spawn_app_with(smtp_to(sink.url())).await;
    let campaign_id = app.create_campaign("Bouncy raffle").await;
    app.subscribe(campaign_id, "bounce@example.com").await;
    app.subscribe(campaign_id, "fine@example.com").await;
    sink.wait_for("fine@example.com", 1).await;
    let client = app.pool.get().await.expect("connection");
    let retried = wait_until(Duration::from_secs(20), || async {
        let row = client
            .query_one(
                "SELECT attempts, last_error, abandoned_at IS NULL, sent_at IS NULL \
                 FROM email_outbox WHERE recipient = 'bounce@example.com'",
                &[],
            )
            .await
            .expect("outbox row");
        let error: Option<String> = row.get(1);
        row.get::<_, i32>(0) >= 2
            && error.is_some_and(|error| error.contains("550"))
            && row.get::<_, bool>(2)
            && row.get::<_, bool>(3)
    })
    .await;
    assert!(
        retried,
        "a 5xx is retried (a relay may be misconfigured), not dropped at once"
    );
}
