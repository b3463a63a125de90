//! Frames a promo's owner causes reach sessions on every instance: a hold
//! through a moves `promo.stock` for eligible shoppers connected to a, b
//! and c, and the holder's own session on another instance gets
//! `reservation.held` (API.md: "whichever channel caused them").

use std::time::Duration;

use reqwest::StatusCode;
use tokio::time::Instant;

use super::{connect, deciding_options, market_and_shoppers, next_frame, reservable_promo};
use crate::helpers::ClusterOf3;

/// How soon a frame must reach a session elsewhere.
const FRAME_DEADLINE: Duration = Duration::from_secs(2);

#[actix_web::test]
async fn a_hold_through_a_moves_promo_stock_for_sessions_on_every_instance() {
    let cluster = ClusterOf3::start_with(deciding_options(60)).await;
    let (market, shoppers) = market_and_shoppers(&cluster, "viewer", 4).await;
    let promo_id = reservable_promo(&cluster, &market, 5).await;
    let mut watchers = Vec::new();
    for (instance, shopper) in cluster.instances.iter().zip(&shoppers) {
        watchers.push((instance.name, connect(&instance.app, shopper).await));
    }

    let held = cluster.a().reserve(&shoppers[3], promo_id).await;
    assert_eq!(held.status, StatusCode::CREATED, "{:?}", held.body);
    let deadline = Instant::now() + FRAME_DEADLINE;
    for (name, socket) in &mut watchers {
        let moved = loop {
            let Some(frame) = next_frame(socket, "promo.stock", deadline).await else {
                panic!("no promo.stock with the hold on {name} within 2 s");
            };
            if frame["promo_id"] == promo_id && frame["held"] == 1 {
                break frame;
            }
        };
        assert_eq!(moved["available"], 4, "{moved}");
    }
}

#[actix_web::test]
async fn a_hold_through_a_is_pushed_to_the_holders_sessions_on_b_and_c() {
    let cluster = ClusterOf3::start_with(deciding_options(60)).await;
    let (market, shoppers) = market_and_shoppers(&cluster, "holder", 1).await;
    let promo_id = reservable_promo(&cluster, &market, 5).await;
    let holder = &shoppers[0];
    let mut sessions = [
        ("b", connect(cluster.b(), holder).await),
        ("c", connect(cluster.c(), holder).await),
    ];

    let held = cluster.a().reserve(holder, promo_id).await;
    assert_eq!(held.status, StatusCode::CREATED, "{:?}", held.body);
    let deadline = Instant::now() + FRAME_DEADLINE;
    for (name, socket) in &mut sessions {
        let frame = next_frame(socket, "reservation.held", deadline)
            .await
            .unwrap_or_else(|| panic!("no reservation.held on {name} within 2 s"));
        assert_eq!(frame["reservation"]["id"], held.body["id"], "{frame}");
    }
}
