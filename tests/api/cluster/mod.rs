//! Cluster mode through three real processes on one database and one NATS
//! server (`helpers::ClusterOf3`): every guarantee of API.md holds across
//! them ("Several instances"). One file per concern:
//!
//! - `race`: many shoppers over the three instances racing for few units;
//! - `events`: notifications, locations and passwords reaching the other
//!   instances;
//! - `frames`: `promo.stock` and `reservation.held` for sessions on every
//!   instance;
//! - `takeover`: kill -9 of a promo's owner in the middle of a storm;
//! - `stale_owner`: an owner paused past its lease is fenced off and steps
//!   down;
//! - `startup`: readiness, and three instances starting at once;
//! - `nats_restart`: readiness and healing across a NATS restart.
//!
//! The helpers below are what those files share: a market and shoppers
//! every instance knows, a promo reservable through every instance, and
//! requests that survive a killed instance (a transport error is an
//! answer too), and WebSocket sessions.

mod events;
mod frames;
mod nats_restart;
mod race;
mod stale_owner;
mod startup;
mod takeover;

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{
    wait_until, Answer, Auth, ClusterOf3, ClusterOptions, Market, Shopper, TestApp,
};
use crate::websocket::{ws_url, Socket};

/// Where the market and its shoppers are.
const ORIGIN: (f64, f64) = (0.0, 0.0);

/// Options for the tests of deciding (races, takeovers) rather than of
/// spreading news: every registry resyncs each second, so every instance
/// knows a new promo within about a second whether or not promo events
/// cross instances (`events` tests those, with the default resync).
fn deciding_options(hold_seconds: u64) -> ClusterOptions {
    ClusterOptions {
        hold_seconds,
        env: vec![("REGISTRY_RESYNC_SECONDS", "1".to_owned())],
        ..ClusterOptions::default()
    }
}

/// A market at `ORIGIN` made through a, and `count` shoppers of its segment
/// placed there through every instance.
async fn market_and_shoppers(
    cluster: &ClusterOf3,
    prefix: &str,
    count: usize,
) -> (Market, Vec<Shopper>) {
    let market = cluster.a().create_market_at(ORIGIN.0, ORIGIN.1).await;
    let shoppers = cluster
        .create_shoppers_everywhere(prefix, count, ORIGIN, &[market.segment_id])
        .await;
    (market, shoppers)
}

/// A promo of `quantity` units created through a, returned once it can be
/// reserved through every instance.
async fn reservable_promo(cluster: &ClusterOf3, market: &Market, quantity: u32) -> i64 {
    let probe = cluster
        .create_shoppers_everywhere("probe", 1, ORIGIN, &[])
        .await
        .remove(0);
    let promo = cluster
        .a()
        .create_running_promo(market, quantity, json!({}))
        .await;
    let promo_id = promo["id"].as_i64().expect("promo id");
    if let Err(missing) = cluster.wait_until_reservable(promo_id, &probe).await {
        panic!("promo {promo_id} never became reservable through every instance: {missing}");
    }
    promo_id
}

/// `POST promo-reservations/` through `app`; a transport error when the
/// instance is gone.
async fn reserve_through(
    app: &TestApp,
    shopper: &Shopper,
    promo_id: i64,
) -> Result<Answer, reqwest::Error> {
    let path = "/api/promotions/promo-reservations/";
    let body = json!({"promo_id": promo_id});
    app.try_call(Method::POST, path, &shopper.auth, Some(body))
        .await
}

/// `POST promo-reservations/{id}/<verb>/` through `app`.
async fn release_through(
    app: &TestApp,
    shopper: &Shopper,
    reservation: &Answer,
    verb: &str,
) -> Result<Answer, reqwest::Error> {
    let path = format!(
        "/api/promotions/promo-reservations/{}/{verb}/",
        reservation.body["id"]
    );
    app.try_call(Method::POST, &path, &shopper.auth, Some(json!({})))
        .await
}

/// Repeats `call` until it is decided (answered, and not a 503: the owner
/// was changing or the outcome unknown), within `deadline`: the last answer.
async fn until_decided<F, Fut>(deadline: Duration, mut call: F) -> Option<Answer>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Answer, reqwest::Error>>,
{
    let last = std::cell::RefCell::new(None);
    wait_until(deadline, || {
        let answering = call();
        async {
            let answer = answering.await.ok();
            let decided = answer
                .as_ref()
                .is_some_and(|answer| answer.status != StatusCode::SERVICE_UNAVAILABLE);
            *last.borrow_mut() = answer;
            decided
        }
    })
    .await;
    last.into_inner()
}

/// The `reservation_id` of a 201.
fn reservation_uuid(answer: &Answer) -> uuid::Uuid {
    answer.body["reservation_id"]
        .as_str()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| panic!("no reservation_id in {:?}", answer.body))
}

/// A WebSocket session of `shopper` on `app`, past its `hello`.
async fn connect(app: &TestApp, shopper: &Shopper) -> Socket {
    let Auth::Token(token) = &shopper.auth else {
        panic!("a token shopper expected");
    };
    let (mut socket, _) = connect_async(ws_url(app, token)).await.expect("upgrade");
    let hello = next_frame(
        &mut socket,
        "hello",
        Instant::now() + Duration::from_secs(5),
    )
    .await;
    assert_eq!(hello.expect("a hello frame")["user_id"], shopper.user_id);
    socket
}

/// The next frame of type `kind` (others skipped) before `deadline`.
async fn next_frame(socket: &mut Socket, kind: &str, deadline: Instant) -> Option<Value> {
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .ok()?;
        let message = message.expect("the socket is open").expect("a valid frame");
        if let Message::Text(text) = message {
            let frame: Value = serde_json::from_str(&text).expect("JSON");
            if frame["type"] == kind {
                return Some(frame);
            }
        }
    }
}
