//! `Idempotency-Key` on the five state-changing POSTs: a retry replays the
//! first answer (status, `Retry-After`, body) and has no further effect, per
//! caller and for 24 hours; a reused key with another body is 422; invalid
//! keys are 400; refused requests leave no key behind.

use std::time::Duration;

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    spawn_app, spawn_app_through, wait_until, Answer, Auth, DbProxy, Shopper, TestApp,
};
use crate::mail::read_mail_files;
use promo_engine::http::idempotency::KEY_LIFETIME;

const RESERVATIONS: &str = "/api/promotions/promo-reservations/";

/// POSTs `body` with an `Idempotency-Key` header (raw bytes, to send bad ones too).
pub async fn post_keyed(app: &TestApp, path: &str, auth: &Auth, key: &[u8], body: Value) -> Answer {
    let key = reqwest::header::HeaderValue::from_bytes(key).expect("a header value");
    let mut request = app
        .http
        .post(format!("{}{path}", app.address))
        .header("idempotency-key", key)
        .json(&body);
    request = match auth {
        Auth::None => request,
        Auth::Token(token) => request.bearer_auth(token),
        Auth::Basic(username, password) => request.basic_auth(username, Some(password)),
        Auth::Header(value) => request.header("authorization", value),
    };
    let response = request.send().await.expect("request sent");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body read");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

async fn reserve_keyed(app: &TestApp, shopper: &Shopper, key: &str, promo_id: i64) -> Answer {
    let body = json!({"promo_id": promo_id});
    post_keyed(app, RESERVATIONS, &shopper.auth, key.as_bytes(), body).await
}

fn replayed(answer: &Answer) -> bool {
    answer
        .headers
        .get("idempotent-replayed")
        .is_some_and(|value| value == "true")
}

fn retry_after(answer: &Answer) -> Option<String> {
    let value = answer.headers.get("retry-after")?;
    Some(value.to_str().ok()?.to_owned())
}

async fn holds_of(app: &TestApp, shopper: &Shopper) -> i64 {
    let client = app.pool.get().await.expect("connection");
    let row = client
        .query_one(
            "SELECT count(*) FROM promo_reservations WHERE user_id = $1",
            &[&shopper.user_id],
        )
        .await
        .expect("count");
    row.get(0)
}

/// A running promo of `quantity` units and `names` shoppers who may reserve it.
async fn promo_with_shoppers(app: &TestApp, quantity: u32, names: &[&str]) -> (i64, Vec<Shopper>) {
    let market = app.create_market_at(19.4326, -99.1332).await;
    let promo = app.create_running_promo(&market, quantity, json!({})).await;
    let mut shoppers = Vec::new();
    for name in names {
        let location = Some((19.433, -99.133));
        shoppers.push(
            app.create_shopper(name, location, &[market.segment_id])
                .await,
        );
    }
    (promo["id"].as_i64().expect("promo id"), shoppers)
}

#[actix_web::test]
async fn a_reserve_retried_with_the_same_key_gets_the_first_answer_and_holds_once() {
    let app = spawn_app().await;
    let (promo_id, shoppers) = promo_with_shoppers(&app, 3, &["ana"]).await;
    let ana = &shoppers[0];

    let first = reserve_keyed(&app, ana, "order-1", promo_id).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    assert!(!replayed(&first));
    let again = reserve_keyed(&app, ana, "order-1", promo_id).await;
    assert_eq!(again.status, StatusCode::CREATED, "{:?}", again.body);
    assert!(replayed(&again));
    assert_eq!(again.body, first.body);
    assert_eq!(holds_of(&app, ana).await, 1);
    // Without the key the same request runs again and is refused.
    assert_eq!(app.reserve(ana, promo_id).await.code(), "already_reserved");
}

#[actix_web::test]
async fn the_same_key_for_a_different_request_is_refused_as_reused() {
    let app = spawn_app().await;
    let (promo_id, shoppers) = promo_with_shoppers(&app, 3, &["ana"]).await;
    let ana = &shoppers[0];
    let first = reserve_keyed(&app, ana, "order-1", promo_id).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);

    let other_body = reserve_keyed(&app, ana, "order-1", promo_id + 1000).await;
    assert_eq!(other_body.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(other_body.code(), "idempotency_key_reused");
    assert_eq!(holds_of(&app, ana).await, 1);
    let reservation_path = format!("{RESERVATIONS}{}/", first.body["id"]);
    let reservation = app.get(&reservation_path, &ana.auth).await;
    assert_eq!(reservation.body["status"], "held");
}

#[actix_web::test]
async fn a_key_is_scoped_to_its_path() {
    let app = spawn_app().await;
    let (promo_id, shoppers) = promo_with_shoppers(&app, 3, &["ana"]).await;
    let ana = &shoppers[0];
    let first = reserve_keyed(&app, ana, "order-1", promo_id).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    // The same key on another endpoint is another request, and runs.
    let cancel_path = format!("{RESERVATIONS}{}/cancel/", first.body["id"]);
    let cancelled = post_keyed(&app, &cancel_path, &ana.auth, b"order-1", json!({})).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
    assert!(!replayed(&cancelled));
    // And the reserve's own answer is still replayed on its path.
    let again = reserve_keyed(&app, ana, "order-1", promo_id).await;
    assert_eq!(again.body, first.body);
    assert!(replayed(&again));
}

#[actix_web::test]
async fn one_key_from_two_shoppers_is_two_requests() {
    let app = spawn_app().await;
    let (promo_id, shoppers) = promo_with_shoppers(&app, 3, &["ana", "luis"]).await;
    let ana = reserve_keyed(&app, &shoppers[0], "same-key", promo_id).await;
    let luis = reserve_keyed(&app, &shoppers[1], "same-key", promo_id).await;
    assert_eq!(
        (ana.status, luis.status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert!(!replayed(&luis));
    assert_ne!(ana.body["reservation_id"], luis.body["reservation_id"]);
    let luis_again = reserve_keyed(&app, &shoppers[1], "same-key", promo_id).await;
    assert!(replayed(&luis_again));
    assert_eq!(luis_again.body, luis.body);
}

#[actix_web::test]
async fn a_key_older_than_a_day_runs_its_request_anew() {
    let app = spawn_app().await;
    let (promo_id, shoppers) = promo_with_shoppers(&app, 3, &["ana"]).await;
    let ana = &shoppers[0];
    let first = reserve_keyed(&app, ana, "order-1", promo_id).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let cancel_path = format!("{RESERVATIONS}{}/cancel/", first.body["id"]);
    let cancelled = app.post(&cancel_path, &ana.auth, json!({})).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
    let within_a_day = reserve_keyed(&app, ana, "order-1", promo_id).await;
    assert!(replayed(&within_a_day));
    assert_eq!(within_a_day.body, first.body);

    let client = app.pool.get().await.expect("connection");
    client
        .execute(
            "UPDATE idempotency_keys SET created_at = now() - interval '24 hours 1 minute'",
            &[],
        )
        .await
        .expect("key aged");
    let later = reserve_keyed(&app, ana, "order-1", promo_id).await;
    assert_eq!(later.status, StatusCode::CREATED, "{:?}", later.body);
    assert!(!replayed(&later));
    assert_ne!(later.body["reservation_id"], first.body["reservation_id"]);
    assert_eq!(holds_of(&app, ana).await, 2);
}

#[actix_web::test]
async fn ten_identical_requests_at_once_with_one_key_hold_one_unit() {
    let app = spawn_app().await;
    let (promo_id, shoppers) = promo_with_shoppers(&app, 5, &["ana"]).await;
    let ana = &shoppers[0];
    let answers = join_all((0..10).map(|_| reserve_keyed(&app, ana, "burst", promo_id))).await;
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
        assert_eq!(answer.body, answers[0].body);
    }
    assert_eq!(answers.iter().filter(|answer| !replayed(answer)).count(), 1);
    assert_eq!(holds_of(&app, ana).await, 1);
}

#[actix_web::test]
async fn completing_and_cancelling_with_a_key_replay_their_answers() {
    let app = spawn_app().await;
    let (promo_id, shoppers) = promo_with_shoppers(&app, 3, &["ana", "luis"]).await;
    let (ana, luis) = (&shoppers[0], &shoppers[1]);
    let bought = app.reserve(ana, promo_id).await.body;
    let dropped = app.reserve(luis, promo_id).await.body;

    let complete_path = format!("{RESERVATIONS}{}/complete/", bought["id"]);
    let completed = post_keyed(&app, &complete_path, &ana.auth, b"buy", json!({})).await;
    assert_eq!(completed.status, StatusCode::OK, "{:?}", completed.body);
    let again = post_keyed(&app, &complete_path, &ana.auth, b"buy", json!({})).await;
    assert!(replayed(&again));
    assert_eq!(
        (again.status, &again.body),
        (completed.status, &completed.body)
    );

    let cancel_path = format!("{RESERVATIONS}{}/cancel/", dropped["id"]);
    let cancelled = post_keyed(&app, &cancel_path, &luis.auth, b"drop", json!({})).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
    let again = post_keyed(&app, &cancel_path, &luis.auth, b"drop", json!({})).await;
    assert!(replayed(&again));
    assert_eq!(
        (again.status, &again.body),
        (cancelled.status, &cancelled.body)
    );
    let promo_path = format!("/api/promotions/flash-promos/{promo_id}/");
    let promo = app.get(&promo_path, &app.admin).await.body;
    assert_eq!(
        (promo["sold"].clone(), promo["held"].clone()),
        (json!(1), json!(0))
    );
}

#[actix_web::test]
async fn a_refusal_is_replayed_with_its_retry_after() {
    let app = spawn_app().await;
    let (promo_id, shoppers) = promo_with_shoppers(&app, 1, &["ana", "luis"]).await;
    let (ana, luis) = (&shoppers[0], &shoppers[1]);
    let held = app.reserve(ana, promo_id).await;
    assert_eq!(held.status, StatusCode::CREATED, "{:?}", held.body);

    let refused = reserve_keyed(&app, luis, "wait", promo_id).await;
    assert_eq!(refused.code(), "all_units_held", "{:?}", refused.body);
    let seconds = retry_after(&refused);
    assert!(seconds.is_some());
    let cancel_path = format!("{RESERVATIONS}{}/cancel/", held.body["id"]);
    assert_eq!(
        app.post(&cancel_path, &ana.auth, json!({})).await.status,
        StatusCode::OK
    );

    // The unit is free now, but the key's answer stands.
    let again = reserve_keyed(&app, luis, "wait", promo_id).await;
    assert!(replayed(&again));
    assert_eq!((again.status, &again.body), (refused.status, &refused.body));
    assert_eq!(retry_after(&again), seconds);
    assert_eq!(holds_of(&app, luis).await, 0);
    let fresh = reserve_keyed(&app, luis, "wait-2", promo_id).await;
    assert_eq!(fresh.status, StatusCode::CREATED, "{:?}", fresh.body);
}

async fn create_campaign(app: &TestApp) -> i64 {
    let body = json!({
        "name": "Valentine stay", "admin_email": "marketing@example.com",
        "email_subject": "Confirm your entry", "email_template": "Confirm: {{verify_url}}",
    });
    let answer = app.post("/api/raffles/campaigns/", &app.admin, body).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    answer.body["id"].as_i64().expect("campaign id")
}

/// Follows the verification link of the one email sent to `email`.
async fn verify(app: &TestApp, email: &str) {
    let link = || {
        read_mail_files(&app.mail_dir)
            .into_iter()
            .find(|mail| mail.to == email)
            .and_then(|mail| mail.verify_link())
    };
    let sent = wait_until(Duration::from_secs(20), || async { link().is_some() }).await;
    assert!(sent, "no verification email to {email}");
    let link = link().expect("a link");
    let path = link
        .find("/api/")
        .map_or(link.as_str(), |start| &link[start..]);
    let followed = app.get(path, &Auth::None).await;
    assert_eq!(followed.status, StatusCode::OK, "{:?}", followed.body);
}

#[actix_web::test]
async fn subscribing_and_finishing_with_a_key_replay_their_answers() {
    let app = spawn_app().await;
    let campaign_id = create_campaign(&app).await;
    let subscribe_path = format!("/api/raffles/campaigns/{campaign_id}/add_subscriber/");
    let entry = json!({"email": "ana@example.com", "data": {"name": "Ana"}});
    let first = post_keyed(&app, &subscribe_path, &Auth::None, b"enter", entry.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let again = post_keyed(&app, &subscribe_path, &Auth::None, b"enter", entry.clone()).await;
    assert!(replayed(&again));
    assert_eq!((again.status, &again.body), (first.status, &first.body));
    assert_eq!(app.count_rows("subscribers").await, 1);

    let finish_path = format!("/api/raffles/campaigns/{campaign_id}/finish_campaign/");
    let early = post_keyed(&app, &finish_path, &app.admin, b"draw", json!({})).await;
    assert_eq!(early.code(), "no_verified_subscribers", "{:?}", early.body);
    verify(&app, "ana@example.com").await;
    let replay = post_keyed(&app, &finish_path, &app.admin, b"draw", json!({})).await;
    assert!(replayed(&replay));
    assert_eq!((replay.status, &replay.body), (early.status, &early.body));
    let drawn = post_keyed(&app, &finish_path, &app.admin, b"draw-2", json!({})).await;
    assert_eq!(drawn.status, StatusCode::OK, "{:?}", drawn.body);
    let repeat = post_keyed(&app, &finish_path, &app.admin, b"draw-2", json!({})).await;
    assert!(replayed(&repeat));
    assert_eq!(repeat.body, drawn.body);
}

#[actix_web::test]
async fn invalid_keys_are_refused_and_run_nothing() {
    let app = spawn_app().await;
    let (promo_id, shoppers) = promo_with_shoppers(&app, 3, &["ana"]).await;
    let ana = &shoppers[0];
    let too_long = vec![b'k'; 201];
    for key in [&b""[..], &too_long, b"caf\xc3\xa9", b"tab\tin"] {
        let body = json!({"promo_id": promo_id});
        let answer = post_keyed(&app, RESERVATIONS, &ana.auth, key, body).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{key:?}: {:?}",
            answer.body
        );
        assert_eq!(answer.code(), "validation_error");
        assert!(
            answer.body["fields"]["Idempotency-Key"].is_array(),
            "{:?}",
            answer.body
        );
    }
    assert_eq!(holds_of(&app, ana).await, 0);
    assert_eq!(app.count_rows("idempotency_keys").await, 0);
    let longest = vec![b'k'; 200];
    let body = json!({"promo_id": promo_id});
    let accepted = post_keyed(&app, RESERVATIONS, &ana.auth, &longest, body).await;
    assert_eq!(accepted.status, StatusCode::CREATED, "{:?}", accepted.body);
}

#[actix_web::test]
async fn a_refused_request_with_a_key_leaves_nothing_behind() {
    let app = spawn_app().await;
    let (promo_id, shoppers) = promo_with_shoppers(&app, 3, &["ana"]).await;
    let ana = &shoppers[0];
    let body = json!({"promo_id": promo_id});
    let anonymous = post_keyed(&app, RESERVATIONS, &Auth::None, b"k", body.clone()).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let invalid = post_keyed(
        &app,
        RESERVATIONS,
        &ana.auth,
        b"k",
        json!({"promo_id": "x"}),
    )
    .await;
    assert_eq!(invalid.code(), "validation_error", "{:?}", invalid.body);
    assert_eq!(app.count_rows("idempotency_keys").await, 0);
    assert_eq!(holds_of(&app, ana).await, 0);

    let corrected = post_keyed(&app, RESERVATIONS, &ana.auth, b"k", body.clone()).await;
    assert_eq!(
        corrected.status,
        StatusCode::CREATED,
        "{:?}",
        corrected.body
    );
    assert!(!replayed(&corrected));
    let retried = post_keyed(&app, RESERVATIONS, &ana.auth, b"k", body).await;
    assert!(replayed(&retried));
    assert_eq!(retried.body, corrected.body);
}

async fn execute(app: &TestApp, sql: &str) -> u64 {
    let client = app.pool.get().await.expect("connection");
    client.execute(sql, &[]).await.expect("statement")
}

#[actix_web::test]
async fn a_pending_key_is_waited_for_and_taken_over_once_its_process_is_gone() {
    let app = spawn_app().await;
    let (promo_id, shoppers) = promo_with_shoppers(&app, 3, &["ana"]).await;
    let ana = &shoppers[0];
    let first = reserve_keyed(&app, ana, "order-1", promo_id).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let cancel_path = format!("{RESERVATIONS}{}/cancel/", first.body["id"]);
    assert_eq!(
        app.post(&cancel_path, &ana.auth, json!({})).await.status,
        StatusCode::OK
    );
    // As if the first attempt were still running: the request is not run twice.
    let pending = "UPDATE idempotency_keys SET state = 'pending', status = NULL, body = NULL";
    assert_eq!(execute(&app, pending).await, 1);
    let waited = reserve_keyed(&app, ana, "order-1", promo_id).await;
    assert_eq!(waited.code(), "outcome_unknown", "{:?}", waited.body);
    assert!(retry_after(&waited).is_some());
    assert_eq!(holds_of(&app, ana).await, 1);

    // A claim this old belongs to a process that died: the retry runs it.
    let aged = "UPDATE idempotency_keys SET created_at = now() - interval '3 minutes'";
    execute(&app, aged).await;
    let taken_over = reserve_keyed(&app, ana, "order-1", promo_id).await;
    assert_eq!(
        taken_over.status,
        StatusCode::CREATED,
        "{:?}",
        taken_over.body
    );
    assert!(!replayed(&taken_over));
    assert_ne!(
        taken_over.body["reservation_id"],
        first.body["reservation_id"]
    );
    assert_eq!(holds_of(&app, ana).await, 2);
}

#[actix_web::test]
async fn a_key_that_cannot_be_looked_up_is_unavailable_and_runs_nothing() {
    let proxy = DbProxy::start().await;
    let app = spawn_app_through(&proxy).await;
    let (promo_id, shoppers) = promo_with_shoppers(&app, 3, &["ana"]).await;
    let ana = &shoppers[0];
    // Remembers the shopper's token, so the request gets past authentication.
    assert_eq!(
        app.get(RESERVATIONS, &ana.auth).await.status,
        StatusCode::OK
    );

    proxy.cut();
    let refused = reserve_keyed(&app, ana, "order-1", promo_id).await;
    proxy.restore();
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.code(), "unavailable", "{:?}", refused.body);
    let reachable = wait_until(Duration::from_secs(10), || async {
        app.pool.get().await.is_ok()
    })
    .await;
    assert!(reachable, "the database did not come back");
    assert_eq!(holds_of(&app, ana).await, 0);
    assert_eq!(app.count_rows("idempotency_keys").await, 0);
    let retried = reserve_keyed(&app, ana, "order-1", promo_id).await;
    assert_eq!(retried.status, StatusCode::CREATED, "{:?}", retried.body);
    assert!(!replayed(&retried));
}

#[actix_web::test]
async fn pruning_deletes_only_keys_older_than_a_day() {
    let app = spawn_app().await;
    let (promo_id, shoppers) = promo_with_shoppers(&app, 3, &["ana", "luis"]).await;
    let old = reserve_keyed(&app, &shoppers[0], "old", promo_id).await;
    let new = reserve_keyed(&app, &shoppers[1], "new", promo_id).await;
    assert_eq!(
        (old.status, new.status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    let age = "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' \
               WHERE idempotency_key = 'old'";
    assert_eq!(execute(&app, age).await, 1);

    let pruned = promo_engine::db::idempotency::prune_keys(&app.pool, KEY_LIFETIME).await;
    assert_eq!(pruned.expect("pruned"), 1);
    let client = app.pool.get().await.expect("connection");
    let left: Vec<String> = client
        .query("SELECT idempotency_key FROM idempotency_keys", &[])
        .await
        .expect("keys")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(left, ["new"]);
}
