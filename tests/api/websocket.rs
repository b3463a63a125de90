//! `/ws/`: authentication, frames, and pushed notifications, with a real
//! WebSocket client.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

use crate::helpers::{spawn_app, Auth, Shopper, TestApp};

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) fn ws_url(app: &TestApp, token: &str) -> String {
    format!(
        "{}/ws/?token={token}",
        app.address.replacen("http", "ws", 1)
    )
}

fn token_of(shopper: &Shopper) -> String {
    match &shopper.auth {
        Auth::Token(token) => token.clone(),
        other => panic!("token expected, got {other:?}"),
    }
}

async fn connect(app: &TestApp, shopper: &Shopper) -> Socket {
    let (mut socket, _) = connect_async(ws_url(app, &token_of(shopper)))
        .await
        .expect("upgrade");
    let hello = next_json(&mut socket).await;
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["user_id"], shopper.user_id);
    socket
}

/// The next JSON text frame, within 5 s.
pub(crate) async fn next_json(socket: &mut Socket) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("a frame within 5 s")
            .expect("the socket is open")
            .expect("a valid frame");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).expect("JSON");
        }
    }
}

/// The next frame of type `kind`, skipping others, within 5 s.
pub(crate) async fn next_of(socket: &mut Socket, kind: &str) -> Value {
    loop {
        let frame = next_json(socket).await;
        if frame["type"] == kind {
            return frame;
        }
    }
}

pub(crate) async fn send(socket: &mut Socket, frame: Value) {
    socket
        .send(Message::Text(frame.to_string()))
        .await
        .expect("sent");
}

#[actix_web::test]
async fn a_missing_or_bad_token_is_refused_before_the_upgrade() {
    let app = spawn_app().await;
    for url in [
        format!("{}/ws/", app.address.replacen("http", "ws", 1)),
        ws_url(&app, &"0".repeat(64)),
    ] {
        match connect_async(url).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), StatusCode::UNAUTHORIZED)
            }
            other => panic!(
                "expected 401, got {:?}",
                other.map(|(_, response)| response.status())
            ),
        }
    }
}

#[actix_web::test]
async fn pings_are_answered_and_bad_frames_get_an_error_without_closing() {
    let app = spawn_app().await;
    let shopper = app.create_shopper("ana", None, &[]).await;
    let mut socket = connect(&app, &shopper).await;
    send(&mut socket, json!({"type": "ping", "request_id": "p1"})).await;
    assert_eq!(
        next_json(&mut socket).await,
        json!({"type": "pong", "request_id": "p1"})
    );

    socket.send(Message::Text("not json".into())).await.unwrap();
    assert_eq!(next_json(&mut socket).await["code"], "bad_frame");
    send(&mut socket, json!({"type": "dance", "request_id": 7})).await;
    let error = next_json(&mut socket).await;
    assert_eq!(
        (error["type"].clone(), error["request_id"].clone()),
        (json!("error"), json!(7))
    );
    socket.send(Message::Binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(next_json(&mut socket).await["code"], "bad_frame");
    send(
        &mut socket,
        json!({"type": "location", "latitude": 95, "longitude": 0}),
    )
    .await;
    assert_eq!(next_json(&mut socket).await["code"], "validation_error");

    send(&mut socket, json!({"type": "ping"})).await;
    assert_eq!(
        next_json(&mut socket).await,
        json!({"type": "pong"}),
        "still open"
    );
}

#[actix_web::test]
async fn a_location_frame_moves_the_shopper_like_patch_me() {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    app.create_running_promo(&market, 1, json!({})).await;
    let shopper = app
        .create_shopper("ana", Some((1.0, 1.0)), &[market.segment_id])
        .await;
    let mut socket = connect(&app, &shopper).await;
    send(
        &mut socket,
        json!({"type": "location", "latitude": 0.001, "longitude": 0.0}),
    )
    .await;
    // Entering the radius is notified on this very socket.
    next_of(&mut socket, "promo.notification").await;
    let profile = app
        .get("/api/users/clients-profiles/me/", &shopper.auth)
        .await;
    assert_eq!(profile.body["latitude"], 0.001);
    assert_eq!(
        app.get("/api/promotions/flash-promos/eligible/", &shopper.auth)
            .await
            .body["count"],
        1
    );
}

#[actix_web::test]
async fn a_promo_start_is_pushed_to_connected_shoppers_and_kept_for_offline_ones() {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    let online = app
        .create_shopper("online", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    let offline = app
        .create_shopper("offline", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    let mut first = connect(&app, &online).await;
    let mut second = connect(&app, &online).await;

    let promo = app.create_running_promo(&market, 1, json!({})).await;
    for socket in [&mut first, &mut second] {
        let frame = next_of(socket, "promo.notification").await;
        assert_eq!(frame["promo"]["id"], promo["id"]);
        assert!(frame["distance_km"].as_f64().unwrap() < 0.01);
        assert!(frame["notification_id"].is_i64());
    }
    // Marked delivered right after the push (the frame may arrive first).
    let marked = crate::helpers::wait_until(Duration::from_secs(5), || async {
        app.get("/api/users/notifications/", &online.auth)
            .await
            .body["results"][0]["delivered"]
            == true
    })
    .await;
    assert!(marked, "a pushed notification is marked delivered");
    let missed = app.get("/api/users/notifications/", &offline.auth).await;
    assert_eq!(missed.body["results"][0]["delivered"], false);

    let mut late = connect(&app, &offline).await;
    // The missed notification arrives on connect.
    let frame = next_of(&mut late, "promo.notification").await;
    assert_eq!(frame["promo"]["id"], promo["id"]);
    let delivered = crate::helpers::wait_until(Duration::from_secs(5), || async {
        app.get("/api/users/notifications/", &offline.auth)
            .await
            .body["results"][0]["delivered"]
            == true
    })
    .await;
    assert!(delivered);
}

#[actix_web::test]
async fn a_reserve_frame_is_answered_with_the_hold_or_an_error() {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    let promo = app.create_running_promo(&market, 1, json!({})).await;
    let shopper = app
        .create_shopper("ana", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    let mut socket = connect(&app, &shopper).await;
    let mut other_session = connect(&app, &shopper).await;
    send(
        &mut socket,
        json!({"type": "reserve", "promo_id": promo["id"], "request_id": "r1"}),
    )
    .await;
    let held = next_of(&mut socket, "reservation.held").await;
    assert_eq!(held["request_id"], "r1");
    assert_eq!(held["reservation"]["status"], "held");
    assert!(held["reservation"]["id"].as_i64().unwrap() > 0);
    // The user's other session hears of it too, without the request id.
    let elsewhere = next_of(&mut other_session, "reservation.held").await;
    assert_eq!(
        elsewhere["reservation"]["reservation_id"],
        held["reservation"]["reservation_id"]
    );
    assert!(elsewhere.get("request_id").is_none());
    send(
        &mut socket,
        json!({"type": "reserve", "promo_id": promo["id"], "request_id": "r2"}),
    )
    .await;
    let again = next_of(&mut socket, "error").await;
    assert_eq!(
        (again["code"].clone(), again["request_id"].clone()),
        (json!("already_reserved"), json!("r2"))
    );
    send(
        &mut socket,
        json!({"type": "reserve", "promo_id": 424242, "request_id": 3}),
    )
    .await;
    assert_eq!(next_of(&mut socket, "error").await["code"], "not_found");
}

#[actix_web::test]
async fn watchers_get_stock_frames_and_holders_get_reservation_events() {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    let promo = app.create_running_promo(&market, 2, json!({})).await;
    let promo_id = promo["id"].as_i64().unwrap();
    let holder = app
        .create_shopper("holder", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    let watcher = app
        .create_shopper("watcher", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    let mut holder_socket = connect(&app, &holder).await;
    let mut watcher_socket = connect(&app, &watcher).await;

    let reserved = app.reserve(&holder, promo_id).await;
    assert_eq!(reserved.status, StatusCode::CREATED);
    let held = next_of(&mut holder_socket, "reservation.held").await;
    assert_eq!(held["reservation"]["id"], reserved.body["id"]);
    let stock = next_of(&mut watcher_socket, "promo.stock").await;
    assert_eq!(stock["promo_id"], promo_id);
    assert_eq!(
        (
            stock["available"].clone(),
            stock["held"].clone(),
            stock["sold"].clone()
        ),
        (json!(1), json!(1), json!(0))
    );
    assert_eq!(stock["status"], "running");

    // The 2 s test hold runs out: the holder is told by the actor's timer.
    let expired = next_of(&mut holder_socket, "reservation.expired").await;
    assert_eq!(expired["reservation"]["status"], "expired");
    let stock = next_of(&mut watcher_socket, "promo.stock").await;
    assert_eq!(stock["held"], 0);

    let second = app.reserve(&holder, promo_id).await;
    let completed = app
        .post(
            &format!(
                "/api/promotions/promo-reservations/{}/complete/",
                second.body["id"]
            ),
            &holder.auth,
            json!({}),
        )
        .await;
    assert_eq!(completed.status, StatusCode::OK);
    let frame = next_of(&mut holder_socket, "reservation.completed").await;
    assert_eq!(frame["reservation"]["completed"], true);
    let sold = loop {
        let stock = next_of(&mut watcher_socket, "promo.stock").await;
        if stock["sold"] == 1 {
            break stock;
        }
    };
    assert_eq!(sold["available"], 1);
}

#[actix_web::test]
async fn deleting_a_running_promo_tells_its_watchers_and_holders() {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    let promo = app.create_running_promo(&market, 2, json!({})).await;
    let promo_id = promo["id"].as_i64().unwrap();
    let holder = app
        .create_shopper("holder", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    let mut socket = connect(&app, &holder).await;
    assert_eq!(
        app.reserve(&holder, promo_id).await.status,
        StatusCode::CREATED
    );
    next_of(&mut socket, "reservation.held").await;
    let deleted = app
        .delete(
            &format!("/api/promotions/flash-promos/{promo_id}/"),
            &app.admin,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let ended = next_of(&mut socket, "promo.ended").await;
    assert_eq!(
        (ended["promo_id"].clone(), ended["reason"].clone()),
        (json!(promo_id), json!("deleted"))
    );
}

#[actix_web::test]
async fn deactivating_a_running_promo_tells_watchers_and_cancels_holds() {
    let app =
        crate::helpers::spawn_app_with(|config| config.reservation_hold = Duration::from_secs(60))
            .await;
    let market = app.create_market_at(0.0, 0.0).await;
    let promo = app.create_running_promo(&market, 2, json!({})).await;
    let promo_id = promo["id"].as_i64().unwrap();
    let holder = app
        .create_shopper("holder", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    let mut socket = connect(&app, &holder).await;
    assert_eq!(
        app.reserve(&holder, promo_id).await.status,
        StatusCode::CREATED
    );
    next_of(&mut socket, "reservation.held").await;
    let off = app
        .patch(
            &format!("/api/promotions/flash-promos/{promo_id}/"),
            &app.admin,
            json!({"is_active": false}),
        )
        .await;
    assert_eq!(off.status, StatusCode::OK);
    let cancelled = next_of(&mut socket, "reservation.cancelled").await;
    assert_eq!(cancelled["reservation"]["status"], "cancelled");
}

#[actix_web::test]
async fn a_silent_client_is_closed_after_thirty_seconds() {
    let app = spawn_app().await;
    let shopper = app.create_shopper("quiet", None, &[]).await;
    let mut socket = connect(&app, &shopper).await;
    // Stay silent: no reads (so no automatic pongs) and no frames.
    tokio::time::sleep(Duration::from_secs(41)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let closed = loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => break true,
            Ok(Some(Ok(_))) => continue,
            Err(_) => break false,
        }
    };
    assert!(closed, "the server kept a silent session open");
}

#[actix_web::test]
async fn the_token_may_come_in_the_authorization_header() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = spawn_app().await;
    let shopper = app.create_shopper("ana", None, &[]).await;
    let url = format!("{}/ws/", app.address.replacen("http", "ws", 1));
    let mut request = url.into_client_request().unwrap();
    let value = format!("Bearer {}", token_of(&shopper));
    request
        .headers_mut()
        .insert("authorization", value.parse().unwrap());
    let (mut socket, _) = connect_async(request).await.expect("upgrade");
    let hello = next_json(&mut socket).await;
    assert_eq!(hello["user_id"], shopper.user_id);
}

#[actix_web::test]
async fn selling_the_last_unit_sends_the_final_stock_then_the_end() {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    let promo = app.create_running_promo(&market, 1, json!({})).await;
    let promo_id = promo["id"].as_i64().unwrap();
    let buyer = app
        .create_shopper("buyer", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    let watcher = app
        .create_shopper("watcher", Some((0.0, 0.0)), &[market.segment_id])
        .await;
    let mut socket = connect(&app, &watcher).await;
    let held = app.reserve(&buyer, promo_id).await;
    let bought = app
        .post(
            &format!(
                "/api/promotions/promo-reservations/{}/complete/",
                held.body["id"]
            ),
            &buyer.auth,
            json!({}),
        )
        .await;
    assert_eq!(bought.status, StatusCode::OK);
    let last = loop {
        let frame = next_json(&mut socket).await;
        if frame["type"] == "promo.ended" {
            panic!("the end came before the final counts");
        }
        if frame["type"] == "promo.stock" && frame["status"] == "sold_out" {
            break frame;
        }
    };
    assert_eq!(
        (last["sold"].clone(), last["available"].clone()),
        (json!(1), json!(0))
    );
    let ended = next_of(&mut socket, "promo.ended").await;
    assert_eq!(ended["reason"], "sold_out");
}

#[actix_web::test]
async fn a_session_runs_at_most_eight_requests_at_once_and_refuses_the_rest_at_once() {
    let app = spawn_app().await;
    let shopper = app.create_shopper("ana", None, &[]).await;
    let mut socket = connect(&app, &shopper).await;
    // Every pool connection held: an executed reserve (of an unknown promo,
    // which asks the database) cannot finish until they are given back.
    let mut held = Vec::new();
    for _ in 0..app.pool.status().max_size {
        held.push(app.pool.get().await.expect("a pool connection"));
    }
    for request_id in 0..200 {
        let frame = json!({"type": "reserve", "promo_id": 424242, "request_id": request_id});
        socket
            .feed(Message::Text(frame.to_string()))
            .await
            .expect("queued");
    }
    socket.flush().await.expect("sent");
    let mut refused = std::collections::BTreeSet::new();
    while refused.len() < 192 {
        let frame = next_of(&mut socket, "error").await;
        assert_eq!(frame["code"], "too_many_requests", "{frame}");
        assert!(frame["detail"].is_string());
        refused.insert(frame["request_id"].as_i64().expect("request_id"));
    }
    drop(held);
    let mut executed = std::collections::BTreeSet::new();
    while refused.len() + executed.len() < 200 {
        let frame = next_of(&mut socket, "error").await;
        let request_id = frame["request_id"].as_i64().expect("request_id");
        if frame["code"] == "too_many_requests" {
            refused.insert(request_id);
        } else {
            assert_eq!(frame["code"], "not_found", "{frame}");
            executed.insert(request_id);
        }
    }
    assert_eq!(executed.len(), 8, "executed: {executed:?}");
    assert!(refused.is_disjoint(&executed));
    send(&mut socket, json!({"type": "ping", "request_id": "after"})).await;
    assert_eq!(next_of(&mut socket, "pong").await["request_id"], "after");
    // Capacity is back: the next request runs.
    send(
        &mut socket,
        json!({"type": "reserve", "promo_id": 424242, "request_id": "last"}),
    )
    .await;
    let answer = next_of(&mut socket, "error").await;
    assert_eq!(
        (answer["code"].clone(), answer["request_id"].clone()),
        (json!("not_found"), json!("last"))
    );
}

#[actix_web::test]
async fn a_refusal_reads_the_same_on_both_edges() {
    let app = spawn_app().await;
    let market = app.create_market_at(0.0, 0.0).await;
    let promo = app.create_running_promo(&market, 1, json!({})).await;
    let paused = {
        let other = app.create_product(market.store_id, "Cable", "99.00").await;
        app.create_running_promo(
            &market,
            1,
            json!({"product_id": other["id"], "promo_price": "9.00", "is_active": false}),
        )
        .await
    };
    let elsewhere = app.create_segment("Frequent buyers").await;
    let cases = [
        (
            "far",
            Some((1.0, 1.0)),
            market.segment_id,
            &promo,
            "too_far",
        ),
        ("lost", None, market.segment_id, &promo, "location_unknown"),
        (
            "other",
            Some((0.0, 0.0)),
            elsewhere,
            &promo,
            "not_in_segment",
        ),
        (
            "late",
            Some((0.0, 0.0)),
            market.segment_id,
            &paused,
            "promo_not_running",
        ),
    ];
    for (name, location, segment, promo, code) in cases {
        let shopper = app.create_shopper(name, location, &[segment]).await;
        let rest = app.reserve(&shopper, promo["id"].as_i64().unwrap()).await;
        let mut socket = connect(&app, &shopper).await;
        send(
            &mut socket,
            json!({"type": "reserve", "promo_id": promo["id"], "request_id": name}),
        )
        .await;
        let frame = next_of(&mut socket, "error").await;
        assert_eq!(rest.code(), code, "{name}: {:?}", rest.body);
        assert_eq!(frame["code"], code, "{name}: {frame}");
        assert_eq!(frame["detail"], rest.body["detail"], "{name}");
        assert_eq!(frame["request_id"], name);
    }
}
