//! Cluster mode's events between two in-process instances on one database
//! and one NATS server (`spawn_cluster_pair`): a change made through one
//! instance takes effect on the other within 1 s, and frames reach a user's
//! sessions on whichever instance they are connected.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{spawn_cluster_pair, wait_until, Auth, Shopper, TestApp, SHOPPER_PASSWORD};
use crate::websocket::{next_of, send, ws_url, Socket};

const LATITUDE: f64 = 19.4326;
const LONGITUDE: f64 = -99.1332;
/// How soon API.md says a change made through one instance counts on all.
const CHANGE_DEADLINE: Duration = Duration::from_secs(1);
/// How soon a promo's start must reach shoppers connected elsewhere.
const NOTIFICATION_DEADLINE: Duration = Duration::from_secs(2);

/// A WebSocket session of `shopper` on `app`, past its `hello`.
async fn connect(app: &TestApp, shopper: &Shopper) -> Socket {
    let Auth::Token(token) = &shopper.auth else {
        panic!("a token expected");
    };
    let (mut socket, _) = connect_async(ws_url(app, token)).await.expect("upgrade");
    let hello = next_of(&mut socket, "hello").await;
    assert_eq!(hello["user_id"], shopper.user_id);
    socket
}

/// The frames of type `kind` that arrive within `window`.
async fn frames_within(socket: &mut Socket, kind: &str, window: Duration) -> Vec<Value> {
    let until = tokio::time::Instant::now() + window;
    let mut frames = Vec::new();
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(until, socket.next()).await {
        if let Message::Text(text) = message {
            let frame: Value = serde_json::from_str(&text).expect("JSON");
            if frame["type"] == kind {
                frames.push(frame);
            }
        }
    }
    frames
}

async fn eligible_ids(app: &TestApp, shopper: &Shopper) -> Vec<i64> {
    let answer = app
        .get("/api/promotions/flash-promos/eligible/", &shopper.auth)
        .await;
    ids(&answer.body)
}

async fn running(app: &TestApp) -> Vec<Value> {
    let answer = app
        .get(
            "/api/promotions/flash-promos/running/?page_size=100",
            &app.admin,
        )
        .await;
    answer.body["results"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A running promo of three units created through `app`, and a shopper
/// standing at its store in its segment.
async fn promo_and_eligible_shopper(app: &TestApp) -> (Value, Shopper) {
    let market = app.create_market_at(LATITUDE, LONGITUDE).await;
    let promo = app.create_running_promo(&market, 3, json!({})).await;
    let shopper = app
        .create_shopper("ana", Some((LATITUDE, LONGITUDE)), &[market.segment_id])
        .await;
    (promo, shopper)
}

fn ids(listing: &Value) -> Vec<i64> {
    listing["results"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item["id"].as_i64())
                .collect()
        })
        .unwrap_or_default()
}

#[actix_web::test]
async fn a_promo_started_through_one_instance_notifies_a_shopper_connected_to_the_other_once() {
    let (a, b) = spawn_cluster_pair().await;
    let market = a.create_market_at(LATITUDE, LONGITUDE).await;
    let shopper = a
        .create_shopper("ana", Some((LATITUDE, LONGITUDE)), &[market.segment_id])
        .await;
    let mut socket = connect(&b, &shopper).await;

    let started = tokio::time::Instant::now();
    let promo = a.create_running_promo(&market, 3, json!({})).await;
    let frame = tokio::time::timeout(
        NOTIFICATION_DEADLINE,
        next_of(&mut socket, "promo.notification"),
    )
    .await
    .expect("the notification within 2 s");
    assert_eq!(frame["promo"]["id"], promo["id"]);
    assert!(started.elapsed() <= NOTIFICATION_DEADLINE);
    let again = frames_within(&mut socket, "promo.notification", Duration::from_secs(1)).await;
    assert!(again.is_empty(), "told twice: {again:?}");
    // The instance that pushed it marked it delivered.
    let delivered = wait_until(Duration::from_secs(2), || async {
        a.get("/api/users/notifications/", &shopper.auth).await.body["results"][0]["delivered"]
            == true
    })
    .await;
    assert!(delivered, "the pushed notification is not marked delivered");
}

#[actix_web::test]
async fn a_move_through_one_instance_changes_eligible_on_the_other_within_a_second() {
    let (a, b) = spawn_cluster_pair().await;
    let market = a.create_market_at(LATITUDE, LONGITUDE).await;
    let promo = a.create_running_promo(&market, 3, json!({})).await;
    let promo_id = promo["id"].as_i64().expect("promo id");
    let shopper = a
        .create_shopper(
            "ana",
            Some((LATITUDE + 1.0, LONGITUDE)),
            &[market.segment_id],
        )
        .await;
    assert!(eligible_ids(&a, &shopper).await.is_empty());

    // REST, through b.
    b.move_shopper(&shopper, LATITUDE, LONGITUDE).await;
    let moved_in = wait_until(CHANGE_DEADLINE, || async {
        eligible_ids(&a, &shopper).await == vec![promo_id]
    })
    .await;
    assert!(moved_in, "a did not follow the move made through b");

    // WebSocket, through b.
    let mut socket = connect(&b, &shopper).await;
    send(
        &mut socket,
        json!({"type": "location", "latitude": LATITUDE + 1.0, "longitude": LONGITUDE}),
    )
    .await;
    let moved_out = wait_until(CHANGE_DEADLINE + Duration::from_millis(500), || async {
        eligible_ids(&a, &shopper).await.is_empty()
    })
    .await;
    assert!(moved_out, "a did not follow the move sent on b's socket");
}

#[actix_web::test]
async fn a_password_changed_through_one_instance_stops_working_on_the_other_within_a_second() {
    let (a, b) = spawn_cluster_pair().await;
    let shopper = a.create_shopper("ana", None, &[]).await;
    let old = Auth::Basic("ana".into(), SHOPPER_PASSWORD.into());
    let me = "/api/users/clients-profiles/me/";
    // b verifies the old password once and remembers it.
    assert_eq!(b.get(me, &old).await.status, StatusCode::OK);

    let changed = a
        .patch(
            &format!("/api/users/clients-profiles/{}/", shopper.profile_id),
            &a.admin,
            json!({"password": "a-new-password-1"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.body);
    let refused = wait_until(CHANGE_DEADLINE, || async {
        b.get(me, &old).await.status == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(refused, "b still takes the old password");
    let new = Auth::Basic("ana".into(), "a-new-password-1".into());
    assert_eq!(b.get(me, &new).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn a_promo_edited_through_one_instance_shows_on_the_others_running_within_a_second() {
    let (a, b) = spawn_cluster_pair().await;
    let market = a.create_market_at(LATITUDE, LONGITUDE).await;
    let promo = a.create_running_promo(&market, 3, json!({})).await;
    let path = format!("/api/promotions/flash-promos/{}/", promo["id"]);
    let listed = wait_until(CHANGE_DEADLINE, || async {
        ids(&json!({"results": running(&b).await})) == vec![promo["id"].as_i64().unwrap_or(0)]
    })
    .await;
    assert!(listed, "b does not run the promo created through a");

    let edited = a
        .patch(&path, &a.admin, json!({"promo_price": "450.00"}))
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{:?}", edited.body);
    let repriced = wait_until(CHANGE_DEADLINE, || async {
        running(&b)
            .await
            .first()
            .is_some_and(|listed| listed["promo_price"] == "450.00")
    })
    .await;
    assert!(repriced, "b's running/ still shows the old price");

    assert_eq!(
        a.delete(&path, &a.admin).await.status,
        StatusCode::NO_CONTENT
    );
    let gone = wait_until(CHANGE_DEADLINE, || async { running(&b).await.is_empty() }).await;
    assert!(gone, "b still runs the deleted promo");
}

#[actix_web::test]
async fn a_hold_taken_through_one_instance_reaches_the_holders_sessions_on_the_other() {
    let (a, b) = spawn_cluster_pair().await;
    let (promo, shopper) = promo_and_eligible_shopper(&a).await;
    let mut on_b = connect(&b, &shopper).await;

    let reserved = a.reserve(&shopper, promo["id"].as_i64().expect("id")).await;
    assert_eq!(reserved.status, StatusCode::CREATED, "{:?}", reserved.body);
    let held = tokio::time::timeout(
        NOTIFICATION_DEADLINE,
        next_of(&mut on_b, "reservation.held"),
    )
    .await
    .expect("reservation.held on b");
    assert_eq!(
        held["reservation"]["reservation_id"],
        reserved.body["reservation_id"]
    );
    assert!(held.get("request_id").is_none());
}

#[actix_web::test]
async fn a_reserve_frame_is_answered_on_its_session_and_told_to_the_users_sessions_elsewhere() {
    let (a, b) = spawn_cluster_pair().await;
    let (promo, shopper) = promo_and_eligible_shopper(&a).await;
    let mut on_a = connect(&a, &shopper).await;
    let mut on_b = connect(&b, &shopper).await;

    send(
        &mut on_b,
        json!({"type": "reserve", "promo_id": promo["id"], "request_id": "r1"}),
    )
    .await;
    let answered = next_of(&mut on_b, "reservation.held").await;
    assert_eq!(answered["request_id"], "r1");
    let told = next_of(&mut on_a, "reservation.held").await;
    assert_eq!(
        told["reservation"]["reservation_id"],
        answered["reservation"]["reservation_id"]
    );
    assert!(told.get("request_id").is_none());
}

#[actix_web::test]
async fn a_campaigns_live_counts_reach_admin_sessions_on_the_other_instance() {
    let (a, b) = spawn_cluster_pair().await;
    let campaign_id = a.create_campaign("Live raffle").await;
    let Auth::Token(token) = &b.admin else {
        panic!("the admin logs in with a token");
    };
    let (mut admin_on_b, _) = connect_async(ws_url(&b, token)).await.expect("upgrade");
    next_of(&mut admin_on_b, "hello").await;

    let entered = a
        .post(
            &format!("/api/raffles/campaigns/{campaign_id}/add_subscriber/"),
            &Auth::None,
            json!({"email": "kim@example.com", "data": {}}),
        )
        .await;
    assert_eq!(entered.status, StatusCode::CREATED, "{:?}", entered.body);
    let counted = tokio::time::timeout(NOTIFICATION_DEADLINE, async {
        loop {
            let stats = next_of(&mut admin_on_b, "raffle.stats").await;
            if stats["campaign_id"] == campaign_id && stats["subscriber_count"] == 1 {
                return stats;
            }
        }
    })
    .await
    .expect("raffle.stats with the entry on b");
    assert_eq!(counted["verified_count"], 0);
}

#[actix_web::test]
async fn a_promo_switched_off_through_one_instance_ends_for_watchers_on_both() {
    let (a, b) = spawn_cluster_pair().await;
    let (promo, shopper) = promo_and_eligible_shopper(&a).await;
    let promo_id = promo["id"].as_i64().expect("id");
    // Both instances run it, one as its owner: a session on each watches it.
    let known = wait_until(CHANGE_DEADLINE, || async {
        ids(&json!({"results": running(&b).await})) == vec![promo_id]
    })
    .await;
    assert!(known, "b does not run the promo created through a");
    let mut on_a = connect(&a, &shopper).await;
    let mut on_b = connect(&b, &shopper).await;

    let path = format!("/api/promotions/flash-promos/{promo_id}/");
    let switched_off = a.patch(&path, &a.admin, json!({"is_active": false})).await;
    assert_eq!(
        switched_off.status,
        StatusCode::OK,
        "{:?}",
        switched_off.body
    );
    for socket in [&mut on_a, &mut on_b] {
        let ended = tokio::time::timeout(CHANGE_DEADLINE, next_of(socket, "promo.ended"))
            .await
            .expect("promo.ended within a second");
        assert_eq!(ended["promo_id"], promo_id);
        assert_eq!(ended["reason"], "deactivated");
    }
}
