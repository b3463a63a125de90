//! Races on one promo's write path: same-instant repeats of a release agree,
//! one decision the database refuses fails alone, and a stale held row never
//! blocks its shopper.

use std::time::Duration;

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, wait_until, Answer, Shopper, TestApp};

async fn release(app: &TestApp, shopper: &Shopper, reservation: &Value, verb: &str) -> Answer {
    let path = format!(
        "/api/promotions/promo-reservations/{}/{verb}/",
        reservation["id"]
    );
    app.post(&path, &shopper.auth, json!({})).await
}

/// A promo of three units and ana holding one of them.
async fn one_hold() -> (TestApp, Shopper, Value) {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    let promo = app.create_running_promo(&market, 3, json!({})).await;
    let ana = app
        .create_shopper("ana", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    let reservation = app.reserve(&ana, promo["id"].as_i64().unwrap()).await.body;
    (app, ana, reservation)
}

#[actix_web::test]
async fn same_instant_completes_of_one_hold_all_get_the_same_200() {
    let (app, ana, reservation) = one_hold().await;

    let answers = join_all((0..10).map(|_| release(&app, &ana, &reservation, "complete"))).await;
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        assert_eq!(answer.body["status"], "completed");
        assert_eq!(answer.body["reservation"]["id"], reservation["id"]);
    }
    let client = app.pool.get().await.unwrap();
    let sold: i32 = client
        .query_one("SELECT sold FROM flash_promos", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sold, 1, "one hold was sold more than once");
}

#[actix_web::test]
async fn same_instant_cancels_and_completes_of_one_hold_agree_on_one_outcome() {
    let (app, ana, reservation) = one_hold().await;

    let verbs = ["cancel", "complete"].repeat(5);
    let answers = join_all(
        verbs
            .iter()
            .map(|verb| release(&app, &ana, &reservation, verb)),
    )
    .await;
    // Whichever got there first decided; every answer follows from it.
    let cancelled = answers
        .iter()
        .zip(&verbs)
        .any(|(answer, verb)| *verb == "cancel" && answer.status == StatusCode::OK);
    for (answer, verb) in answers.iter().zip(&verbs) {
        let expected = match (cancelled, *verb) {
            (true, "cancel") | (false, "complete") => "",
            (true, _) => "reservation_cancelled",
            (false, _) => "already_completed",
        };
        if expected.is_empty() {
            assert_eq!(answer.status, StatusCode::OK, "{verb}: {:?}", answer.body);
        } else {
            assert_eq!(answer.code(), expected, "{verb}: {:?}", answer.body);
        }
    }
}

#[actix_web::test]
async fn a_decision_the_database_refuses_fails_alone_and_not_its_whole_batch() {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    let promo = app.create_running_promo(&market, 3, json!({})).await;
    let promo_id = promo["id"].as_i64().unwrap();
    let mut shoppers = Vec::new();
    for name in ["ana", "luis", "eva"] {
        shoppers.push(
            app.create_shopper(name, Some((0.0, 0.0)), &[market.segment_id])
                .await,
        );
    }
    let (ana, luis, eva) = (&shoppers[0], &shoppers[1], &shoppers[2]);
    let ana_hold = app.reserve(ana, promo_id).await.body;
    let luis_hold = app.reserve(luis, promo_id).await.body;

    // Behind the promo actor's back, the database keeps one unit only, and its
    // row stays locked so the next batch (ana's sale) waits for it.
    let mut locker = app.pool.get().await.unwrap();
    let lock = locker.transaction().await.unwrap();
    lock.execute(
        "UPDATE flash_promos SET quantity = 1 WHERE id = $1",
        &[&promo_id],
    )
    .await
    .unwrap();
    let lock_waited_on = || async {
        let client = app.pool.get().await.unwrap();
        let waiters: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE wait_event_type = 'Lock' AND datname = current_database()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        waiters > 0
    };
    let then_the_rest = async {
        let waiting = wait_until(Duration::from_secs(10), lock_waited_on).await;
        assert!(waiting, "ana's sale never reached the database");
        // Queued behind it, decided in memory, written together in one batch:
        // a sale the database will refuse (sold would exceed 1) and a new hold.
        let release_lock = async {
            // A grace for both requests to reach the actor; were it too short
            // they would only be written apart, and the test pass trivially.
            tokio::time::sleep(Duration::from_millis(300)).await;
            lock.commit().await.unwrap();
        };
        let (refused, held, ()) = futures_util::join!(
            release(&app, luis, &luis_hold, "complete"),
            app.reserve(eva, promo_id),
            release_lock
        );
        (refused, held)
    };
    let (first, (refused, held)) =
        futures_util::join!(release(&app, ana, &ana_hold, "complete"), then_the_rest);
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert_eq!(held.status, StatusCode::CREATED, "{:?}", held.body);
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        refused.body
    );
    // Nothing of the refused sale was written: luis still holds his unit.
    let client = app.pool.get().await.unwrap();
    let luis_status: String = client
        .query_one(
            "SELECT status FROM promo_reservations WHERE reservation_id = $1",
            &[&luis_hold["reservation_id"]
                .as_str()
                .unwrap()
                .parse::<uuid::Uuid>()
                .unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(luis_status, "held");
}

#[actix_web::test]
async fn a_stale_held_row_the_actor_does_not_know_gives_way_to_the_shoppers_new_hold() {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    let promo = app.create_running_promo(&market, 3, json!({})).await;
    let promo_id = promo["id"].as_i64().unwrap();
    let ana = app
        .create_shopper("ana", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    // Behind the actor's back (as a write that landed after its actor had
    // loaded the stock would leave it): a live-looking hold of ana's.
    let stale = uuid::Uuid::new_v4();
    let client = app.pool.get().await.unwrap();
    client
        .execute(
            "INSERT INTO promo_reservations (reservation_id, promo_id, user_id, expires_at) \
             VALUES ($1, $2, $3, now() + interval '1 minute')",
            &[&stale, &promo_id, &ana.user_id],
        )
        .await
        .unwrap();

    let held = app.reserve(&ana, promo_id).await;

    assert_eq!(held.status, StatusCode::CREATED, "{:?}", held.body);
    let statuses: Vec<String> = client
        .query(
            "SELECT status FROM promo_reservations WHERE promo_id = $1 AND user_id = $2 \
             ORDER BY reservation_id = $3 DESC",
            &[&promo_id, &ana.user_id, &stale],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(statuses, ["expired", "held"]);
}
