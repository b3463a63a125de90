//! The campaign lifecycle: draft → open → finished, cancel, the 409s of
//! moves a status does not allow, the lifecycle fields' rules, and the
//! opening and closing times honoured within a second (also across a restart).

use std::cell::Cell;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    spawn_app, spawn_process_app, wait_until, Auth, ServiceProcess, TestApp, ADMIN_PASSWORD,
    ADMIN_USERNAME,
};

/// How late an opening or closing time may be honoured.
const WITHIN: chrono::Duration = chrono::Duration::milliseconds(1000);

fn at(seconds_from_now: i64) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::seconds(seconds_from_now)
}

#[actix_web::test]
async fn a_draft_takes_no_entries_until_it_is_opened_and_then_draws() {
    let app = spawn_app().await;
    let draft = app
        .create_campaign_with("Spring draft", json!({"status": "draft"}))
        .await;
    let campaign_id = draft["id"].as_i64().expect("id");
    assert_eq!(draft["status"], "draft");
    assert_eq!(draft["seed_commitment"], Value::Null);
    assert_eq!(draft["winners"], json!([]));
    assert_eq!(draft["winners_count"], 1);
    assert_eq!(app.draw(campaign_id).await.status, StatusCode::NOT_FOUND);
    let early = app.subscribe(campaign_id, "early@example.com").await;
    assert_eq!(early.status, StatusCode::CONFLICT);
    assert_eq!(early.code(), "campaign_closed");
    assert_eq!(app.finish(campaign_id).await.code(), "campaign_closed");

    let opened = app.campaign_action(campaign_id, "open").await;
    assert_eq!(opened.status, StatusCode::OK, "{:?}", opened.body);
    assert_eq!(opened.body["status"], "open");
    assert_eq!(
        opened.body["seed_commitment"].as_str().map(str::len),
        Some(64)
    );
    assert!(opened.body["opens_at"].is_string(), "when it opened");
    let again = app.campaign_action(campaign_id, "open").await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.code(), "campaign_closed");

    app.subscribe_verified(campaign_id, "ana@example.com").await;
    let finished = app.finish(campaign_id).await;
    assert_eq!(finished.status, StatusCode::OK, "{:?}", finished.body);
    assert_eq!(finished.body["campaign"]["status"], "finished");
    for action in ["open", "cancel"] {
        let refused = app.campaign_action(campaign_id, action).await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "{action}");
        assert_eq!(refused.code(), "campaign_closed");
    }
    let unknown = app.campaign_action(campaign_id + 99, "open").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let public = app
        .post(
            &format!("/api/raffles/campaigns/{campaign_id}/cancel/"),
            &Auth::None,
            json!({}),
        )
        .await;
    assert_eq!(public.status, StatusCode::UNAUTHORIZED, "admin only");
}

#[actix_web::test]
async fn a_cancelled_campaign_refuses_entries_draws_nothing_and_emails_no_entrant() {
    let app = spawn_app().await;
    let campaign_id = app.create_campaign("Called off").await;
    app.subscribe_verified(campaign_id, "ana@example.com").await;
    app.subscribe(campaign_id, "bo@example.com").await;
    let mails_before = app.count_rows("email_outbox").await;

    let cancelled = app.campaign_action(campaign_id, "cancel").await;
    assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(cancelled.body["winners"], json!([]));
    let repeated = app.campaign_action(campaign_id, "cancel").await;
    assert_eq!(
        repeated.status,
        StatusCode::OK,
        "cancelling twice is harmless"
    );
    let late = app.subscribe(campaign_id, "late@example.com").await;
    assert_eq!(late.status, StatusCode::CONFLICT);
    assert_eq!(late.code(), "campaign_closed");
    let finish = app.finish(campaign_id).await;
    assert_eq!(finish.status, StatusCode::CONFLICT);
    assert_eq!(finish.code(), "campaign_closed");
    assert_eq!(
        app.campaign_action(campaign_id, "open").await.code(),
        "campaign_closed"
    );

    let draw = app.draw(campaign_id).await;
    assert_eq!(draw.status, StatusCode::OK);
    assert!(draw.body["seed_commitment"].is_string());
    assert!(
        draw.body.get("seed").is_none(),
        "no seed without a draw: {}",
        draw.body
    );
    assert!(draw.body.get("winners").is_none());
    assert_eq!(
        app.count_rows("email_outbox").await,
        mails_before,
        "no email to anyone"
    );
    let campaign = app.campaign(campaign_id).await;
    assert_eq!(campaign["winner"], Value::Null);
    assert_eq!(campaign["finished_at"], Value::Null);

    let draft = app
        .create_campaign_with("Never opened", json!({"status": "draft"}))
        .await;
    let draft_id = draft["id"].as_i64().expect("id");
    let cancelled = app.campaign_action(draft_id, "cancel").await;
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(
        app.draw(draft_id).await.status,
        StatusCode::NOT_FOUND,
        "never opened"
    );
}

#[actix_web::test]
async fn lifecycle_fields_are_checked_and_frozen_once_the_campaign_is_settled() {
    let app = spawn_app().await;
    let refused = app
        .try_create_campaign(
            "Bad window",
            json!({"status": "draft", "opens_at": at(60), "closes_at": at(30), "winners_count": 0}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    for field in ["closes_at", "winners_count"] {
        assert!(
            refused.body["fields"][field].is_array(),
            "{field}: {:?}",
            refused.body
        );
    }
    let open_later = app
        .try_create_campaign("Open later", json!({"opens_at": at(60)}))
        .await;
    assert!(
        open_later.body["fields"]["opens_at"].is_array(),
        "only a draft opens later"
    );

    let campaign = app
        .create_campaign_with("Three prizes", json!({"winners_count": 3}))
        .await;
    let path = format!("/api/raffles/campaigns/{}/", campaign["id"]);
    assert_eq!(campaign["winners_count"], 3);
    let status = app
        .patch(&path, &app.admin, json!({"status": "finished"}))
        .await;
    assert_eq!(
        status.status,
        StatusCode::BAD_REQUEST,
        "status moves by action only"
    );
    let opens = app
        .patch(&path, &app.admin, json!({"opens_at": at(60)}))
        .await;
    assert_eq!(
        opens.status,
        StatusCode::CONFLICT,
        "an open campaign has opened"
    );
    let before = app
        .patch(
            &path,
            &app.admin,
            json!({"closes_at": "2000-01-01T00:00:00Z"}),
        )
        .await;
    assert!(
        before.body["fields"]["closes_at"].is_array(),
        "{:?}",
        before.body
    );
    let more = app
        .patch(&path, &app.admin, json!({"winners_count": 5}))
        .await;
    assert_eq!(more.status, StatusCode::OK);
    assert_eq!(more.body["winners_count"], 5);

    let campaign_id = campaign["id"].as_i64().expect("id");
    app.subscribe_verified(campaign_id, "ana@example.com").await;
    assert_eq!(app.finish(campaign_id).await.status, StatusCode::OK);
    let frozen = app
        .patch(&path, &app.admin, json!({"winners_count": 2}))
        .await;
    assert_eq!(frozen.status, StatusCode::CONFLICT);
    assert_eq!(frozen.code(), "campaign_closed");
    let renamed = app
        .patch(&path, &app.admin, json!({"name": "Renamed"}))
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "text fields stay editable");
}

/// Polls the campaign (on the service at `address`) until it has `status`;
/// answers when that was first seen.
async fn seen_when(app: &TestApp, address: &str, campaign_id: i64, status: &str) -> DateTime<Utc> {
    let path = format!("{address}/api/raffles/campaigns/{campaign_id}/");
    let seen = Cell::new(None);
    let reached = wait_until(Duration::from_secs(30), || async {
        let answer: Value = app
            .http
            .get(&path)
            .basic_auth(ADMIN_USERNAME, Some(ADMIN_PASSWORD))
            .send()
            .await
            .expect("answer")
            .json()
            .await
            .expect("JSON");
        seen.set(Some(Utc::now()));
        answer["status"] == status
    })
    .await;
    assert!(reached, "campaign {campaign_id} never became {status}");
    seen.get().expect("seen")
}

#[actix_web::test]
async fn a_draft_opens_by_itself_at_opens_at_within_a_second() {
    let app = spawn_app().await;
    let opens_at = at(3);
    let draft = app
        .create_campaign_with(
            "Midnight sale",
            json!({"status": "draft", "opens_at": opens_at}),
        )
        .await;
    let campaign_id = draft["id"].as_i64().expect("id");
    assert_eq!(draft["status"], "draft");
    let opened = seen_when(&app, &app.address, campaign_id, "open").await;
    assert!(
        opened >= opens_at - chrono::Duration::milliseconds(100),
        "early: {opened}"
    );
    assert!(
        opened <= opens_at + WITHIN,
        "opened at {opened}, due {opens_at}"
    );
    let entry = app.subscribe(campaign_id, "first@example.com").await;
    assert_eq!(entry.status, StatusCode::CREATED, "{:?}", entry.body);
    assert!(app.draw(campaign_id).await.body["seed_commitment"].is_string());
}

#[actix_web::test]
async fn an_open_campaign_stops_taking_entries_at_closes_at_within_a_second() {
    let app = spawn_app().await;
    let closes_at = at(3);
    let campaign = app
        .create_campaign_with("Short window", json!({"closes_at": closes_at}))
        .await;
    let campaign_id = campaign["id"].as_i64().expect("id");
    app.subscribe_verified(campaign_id, "ana@example.com").await;
    let n = Cell::new(0);
    let refused_at = Cell::new(None);
    let closed = wait_until(Duration::from_secs(20), || async {
        n.set(n.get() + 1);
        let answer = app
            .subscribe(campaign_id, &format!("player{}@example.com", n.get()))
            .await;
        if answer.status == StatusCode::CREATED {
            return false;
        }
        assert_eq!(answer.code(), "campaign_closed", "{:?}", answer.body);
        refused_at.set(Some(Utc::now()));
        true
    })
    .await;
    assert!(closed, "entries were never refused");
    let refused_at = refused_at.get().expect("refused");
    assert!(refused_at >= closes_at, "refused early: {refused_at}");
    assert!(
        refused_at <= closes_at + WITHIN,
        "refused at {refused_at}, due {closes_at}"
    );
    assert_eq!(
        app.campaign(campaign_id).await["status"],
        "open",
        "the draw is still to do"
    );
    // Closed for good: moving the closing time would reopen it.
    let path = format!("/api/raffles/campaigns/{campaign_id}/");
    let extended = app
        .patch(&path, &app.admin, json!({"closes_at": at(60)}))
        .await;
    assert_eq!(extended.status, StatusCode::CONFLICT, "{:?}", extended.body);
    assert_eq!(extended.code(), "campaign_closed");
    let again = app.subscribe(campaign_id, "extended@example.com").await;
    assert_eq!(again.code(), "campaign_closed", "{:?}", again.body);
    let finished = app.finish(campaign_id).await;
    assert_eq!(finished.status, StatusCode::OK, "{:?}", finished.body);
    assert_eq!(finished.body["winner"]["email"], "ana@example.com");
}

#[actix_web::test]
async fn a_scheduled_opening_is_kept_across_a_restart() {
    let (app, mut process) = spawn_process_app(60).await;
    let opens_at = at(8);
    let draft = app
        .create_campaign_with(
            "After the restart",
            json!({"status": "draft", "opens_at": opens_at}),
        )
        .await;
    let campaign_id = draft["id"].as_i64().expect("id");
    process.kill();
    let restarted = ServiceProcess::start(&app.database_url(), 60).await;
    let up = Utc::now();
    let opened = seen_when(&app, &restarted.address, campaign_id, "open").await;
    assert!(
        opened >= opens_at - chrono::Duration::milliseconds(100),
        "early: {opened}"
    );
    let due = opens_at.max(up);
    assert!(opened <= due + WITHIN, "opened at {opened}, due {due}");
}
