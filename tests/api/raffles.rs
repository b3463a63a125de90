//! Raffle campaigns: CRUD, entries (normalisation, duplicates, validation,
//! the rate limit), the confirmation link, the draw (concurrency, fairness)
//! and delivery of every email over a real SMTP conversation, including while
//! the mail server is down and across a crash of the service.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::connect_async;

use crate::helpers::{
    spawn_app, spawn_app_with, spawn_process_app_with_env, wait_until, Answer, Auth,
    ServiceProcess, TestApp,
};
use crate::mail::{read_mail_files, unused_port, Mail, SmtpSink};
use crate::websocket::{next_json, next_of, send, ws_url};
use promo_engine::config::MailTransport;

const TEMPLATE: &str = "Hi! Confirm your entry: {{verify_url}}";

impl TestApp {
    async fn create_campaign(&self, name: &str) -> i64 {
        let answer = self
            .post(
                "/api/raffles/campaigns/",
                &self.admin,
                json!({
                    "name": name,
                    "description": "A weekend for two",
                    "admin_email": "marketing@example.com",
                    "email_subject": "Confirm your entry",
                    "email_template": TEMPLATE,
                }),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
        answer.body["id"].as_i64().expect("campaign id")
    }

    async fn subscribe(&self, campaign_id: i64, email: &str) -> Answer {
        self.post(
            &format!("/api/raffles/campaigns/{campaign_id}/add_subscriber/"),
            &Auth::None,
            json!({"email": email, "data": {"source": "test"}}),
        )
        .await
    }

    async fn campaign(&self, campaign_id: i64) -> Value {
        let answer = self
            .get(
                &format!("/api/raffles/campaigns/{campaign_id}/"),
                &self.admin,
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        answer.body
    }

    async fn finish(&self, campaign_id: i64) -> Answer {
        self.post(
            &format!("/api/raffles/campaigns/{campaign_id}/finish_campaign/"),
            &self.admin,
            json!({}),
        )
        .await
    }

    /// The `.eml` files written so far, once `count` of them are addressed to `recipient`.
    async fn mail_files_to(&self, recipient: &str, count: usize) -> Vec<Mail> {
        let addressed = || -> Vec<Mail> {
            read_mail_files(&self.mail_dir)
                .into_iter()
                .filter(|mail| mail.to == recipient)
                .collect()
        };
        let arrived = wait_until(Duration::from_secs(20), || async {
            addressed().len() >= count
        })
        .await;
        assert!(
            arrived,
            "{count} email file(s) to {recipient} were not written"
        );
        addressed()
    }

    /// Enters `email` in the campaign and follows the link of its confirmation email.
    async fn subscribe_verified(&self, campaign_id: i64, email: &str) -> i64 {
        let answer = self.subscribe(campaign_id, email).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
        let mail = self.mail_files_to(email, 1).await.remove(0);
        let link = self.local_link(&mail.verify_link().expect("a verification link"));
        let followed = self.http.get(&link).send().await.expect("link followed");
        assert_eq!(followed.status(), StatusCode::OK);
        answer.body["id"].as_i64().expect("subscriber id")
    }

    /// A link from an email (built on `PUBLIC_BASE_URL`), pointed at this test's service.
    fn local_link(&self, link: &str) -> String {
        let path = link.find("/api/").map_or(link, |start| &link[start..]);
        format!("{}{path}", self.address)
    }

    async fn follow(&self, link: &str, accept: &str) -> (StatusCode, String) {
        let response = self
            .http
            .get(link)
            .header("accept", accept)
            .send()
            .await
            .expect("link followed");
        let status = response.status();
        (status, response.text().await.expect("body"))
    }
}

fn smtp_to(sink_url: String) -> impl FnOnce(&mut promo_engine::config::Config) {
    move |config| {
        config.mail_transport = MailTransport::Smtp;
        config.smtp_url = sink_url;
    }
}

#[actix_web::test]
async fn the_whole_flow_sends_every_email_over_smtp() {
    let sink = SmtpSink::start();
    let app = spawn_app_with(|config| {
        smtp_to(sink.url())(config);
        config.public_base_url = "https://raffles.example/promo".parse().expect("url");
    })
    .await;
    let campaign_id = app.create_campaign("Valentine stay").await;

    let entered = app.subscribe(campaign_id, "  Ana.Lopez@Example.COM ").await;
    assert_eq!(entered.status, StatusCode::CREATED, "{:?}", entered.body);
    assert_eq!(entered.body["email"], "ana.lopez@example.com");
    assert_eq!(entered.body["verified"], false);

    let mail = sink.wait_for("ana.lopez@example.com", 1).await.remove(0);
    assert_eq!(mail.subject, "Confirm your entry");
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
    assert!(winner_mail.text.contains("Valentine stay"));
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
async fn finishing_without_a_verified_subscriber_leaves_the_campaign_open() {
    let app = spawn_app().await;
    let campaign_id = app.create_campaign("Quiet raffle").await;
    let answer = app.finish(campaign_id).await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert_eq!(answer.code(), "no_verified_subscribers");
    let unconfirmed = app.subscribe(campaign_id, "unconfirmed@example.com").await;
    assert_eq!(unconfirmed.status, StatusCode::CREATED);
    let answer = app.finish(campaign_id).await;
    assert_eq!(answer.code(), "no_verified_subscribers");
    let campaign = app.campaign(campaign_id).await;
    assert_eq!(campaign["status"], "open");
    assert_eq!(
        app.subscribe(campaign_id, "still-open@example.com")
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.finish(campaign_id + 99).await.status,
        StatusCode::NOT_FOUND
    );
}

#[actix_web::test]
async fn concurrent_finishes_draw_exactly_one_winner() {
    let app = spawn_app().await;
    let campaign_id = app.create_campaign("Busy raffle").await;
    for n in 0..5 {
        app.subscribe_verified(campaign_id, &format!("player{n}@example.com"))
            .await;
    }
    let path = format!("/api/raffles/campaigns/{campaign_id}/finish_campaign/");
    let calls = (0..12).map(|i| {
        let path = path.clone();
        let app = &app;
        async move {
            if i % 2 == 0 {
                app.get(&path, &app.admin).await
            } else {
                app.post(&path, &app.admin, json!({})).await
            }
        }
    });
    let answers = futures_util::future::join_all(calls).await;
    assert!(answers.iter().all(|a| a.status == StatusCode::OK));
    let winner = &answers[0].body["winner"];
    assert!(answers.iter().all(|a| &a.body["winner"] == winner));
    let client = app.pool.get().await.expect("connection");
    let won: i64 = client
        .query_one(
            "SELECT count(*) FROM email_outbox WHERE subject LIKE 'You won%'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(won, 1, "one winner's email, however many calls");
    let admin_mails = app.mail_files_to("marketing@example.com", 1).await;
    assert!(admin_mails[0].text.contains("5 verified entries"));
}

#[actix_web::test]
async fn the_draw_is_uniform_over_the_verified_subscribers() {
    const CAMPAIGNS: usize = 300;
    const ENTRANTS: usize = 3;
    let app = spawn_app().await;
    // Fixtures straight into the database: the draw, not the sign-up, is under test.
    let client = app.pool.get().await.expect("connection");
    let campaign_ids: Vec<i64> = client
        .query(
            "INSERT INTO campaigns (name, admin_email, email_subject, email_template) \
             SELECT 'Draw ' || n, 'boss@example.com', 'Confirm', 'Go: {{verify_url}}' \
             FROM generate_series(1, $1::int) n RETURNING id",
            &[&(CAMPAIGNS as i32)],
        )
        .await
        .expect("campaigns")
        .iter()
        .map(|row| row.get(0))
        .collect();
    client
        .execute(
            "INSERT INTO subscribers (campaign_id, email, verified, verification_code_hash) \
             SELECT c, 'p' || k || '@example.com', true, \
                    sha256((c || '/' || k)::text::bytea) \
             FROM unnest($1::bigint[]) c, generate_series(0, $2::int - 1) k \
             ORDER BY c, k",
            &[&campaign_ids, &(ENTRANTS as i32)],
        )
        .await
        .expect("subscribers");
    // An unverified entrant never wins.
    client
        .execute(
            "INSERT INTO subscribers (campaign_id, email, verified, verification_code_hash) \
             SELECT c, 'unverified@example.com', false, sha256(c::text::bytea) \
             FROM unnest($1::bigint[]) c",
            &[&campaign_ids],
        )
        .await
        .expect("unverified subscribers");

    let mut wins = [0usize; ENTRANTS];
    for campaign_id in &campaign_ids {
        let answer = app.finish(*campaign_id).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        let email = answer.body["winner"]["email"]
            .as_str()
            .expect("winner email");
        let position: usize = email
            .trim_start_matches('p')
            .trim_end_matches("@example.com")
            .parse()
            .unwrap_or_else(|_| panic!("{email} is not a verified entrant"));
        wins[position] += 1;
    }
    // Chi-square with 2 degrees of freedom: P(statistic > 27.6) = 1e-6 for a
    // fair draw, so this never fails by chance; a draw that always or never
    // picks one position fails it by far.
    let expected = CAMPAIGNS as f64 / ENTRANTS as f64;
    let chi_square: f64 = wins
        .iter()
        .map(|&observed| (observed as f64 - expected).powi(2) / expected)
        .sum();
    assert!(
        chi_square < 27.6,
        "wins per position {wins:?}: chi-square {chi_square}"
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
    let _restarted = ServiceProcess::start_with_env(&app.database_url(), 60, &[], &env).await;
    let mail = sink.wait_for("eve@example.com", 1).await.remove(0);
    assert!(mail.verify_link().is_some());
    assert!(
        mail.message_id.starts_with("<outbox-"),
        "{}",
        mail.message_id
    );
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
