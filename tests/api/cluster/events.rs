//! What one instance learns reaches the others (API.md: "a change made
//! through one instance takes effect on every instance within 1 s";
//! notifications reach the right sessions on every instance): a promo's
//! start notification for shoppers connected anywhere, a location, a
//! password.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::{connect, market_and_shoppers, next_frame, ORIGIN};
use crate::helpers::{
    lists_running, wait_until, Auth, ClusterOf3, Shopper, TestApp, SHOPPER_PASSWORD,
};

/// How far from the market a shopper is out of every promo's radius.
const FAR: (f64, f64) = (10.0, 10.0);

#[actix_web::test]
async fn a_promo_created_through_a_notifies_shoppers_on_every_instance_once_within_2_s() {
    let cluster = ClusterOf3::start().await;
    let (market, shoppers) = market_and_shoppers(&cluster, "watcher", 3).await;
    let mut sockets = Vec::new();
    for (instance, shopper) in cluster.instances.iter().zip(&shoppers) {
        sockets.push(connect(&instance.app, shopper).await);
    }

    let created = Instant::now();
    let promo = cluster
        .a()
        .create_running_promo(&market, 5, json!({}))
        .await;
    for (instance, socket) in cluster.instances.iter().zip(&mut sockets) {
        let frame = next_frame(
            socket,
            "promo.notification",
            created + Duration::from_secs(2),
        )
        .await
        .unwrap_or_else(|| panic!("no notification on {} within 2 s", instance.name));
        assert_eq!(frame["promo"]["id"], promo["id"], "{frame}");
    }
    // Once: no second notification follows.
    let quiet_until = Instant::now() + Duration::from_secs(2);
    for (instance, socket) in cluster.instances.iter().zip(&mut sockets) {
        let again = next_frame(socket, "promo.notification", quiet_until).await;
        assert!(
            again.is_none(),
            "a second notification on {}: {again:?}",
            instance.name
        );
    }
    for shopper in &shoppers {
        let inbox = "/api/users/notifications/";
        let delivered_once = wait_until(Duration::from_secs(2), || async {
            let listed = cluster.a().get(inbox, &shopper.auth).await.body;
            listed["count"] == 1 && listed["results"][0]["delivered"] == true
        })
        .await;
        assert!(
            delivered_once,
            "{} has not one delivered notification",
            shopper.username
        );
    }
}

/// The promo ids `GET eligible/` lists for `shopper` on `app`.
async fn eligible_ids(app: &TestApp, shopper: &Shopper) -> Vec<Value> {
    let answer = app
        .get("/api/promotions/flash-promos/eligible/", &shopper.auth)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let results = answer.body["results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    results.iter().map(|promo| promo["id"].clone()).collect()
}

#[actix_web::test]
async fn a_location_change_through_b_changes_eligible_on_a_and_c_within_1_s() {
    let cluster = ClusterOf3::start().await;
    let market = cluster.a().create_market_at(ORIGIN.0, ORIGIN.1).await;
    let promo = cluster
        .a()
        .create_running_promo(&market, 5, json!({}))
        .await;
    let shopper = cluster
        .a()
        .create_shoppers_quickly("mover", 1, FAR, &[market.segment_id])
        .await
        .remove(0);
    let listed_everywhere = |wanted: bool| {
        let (shopper, promo_id) = (&shopper, promo["id"].clone());
        let cluster = &cluster;
        async move {
            for app in [cluster.a(), cluster.c()] {
                if eligible_ids(app, shopper).await.contains(&promo_id) != wanted {
                    return false;
                }
            }
            true
        }
    };
    assert!(listed_everywhere(false).await, "eligible from afar");

    cluster.b().move_shopper(&shopper, ORIGIN.0, ORIGIN.1).await;
    let arrived = wait_until(Duration::from_secs(1), || listed_everywhere(true)).await;
    assert!(
        arrived,
        "a and c do not list the promo within 1 s of the move on b"
    );

    cluster.b().move_shopper(&shopper, FAR.0, FAR.1).await;
    let left = wait_until(Duration::from_secs(1), || listed_everywhere(false)).await;
    assert!(
        left,
        "a and c still list the promo 1 s after the move away on b"
    );
}

#[actix_web::test]
async fn a_password_change_through_a_refuses_the_old_password_on_c_within_1_s() {
    let cluster = ClusterOf3::start().await;
    let shopper = cluster.a().create_shopper("ana", Some(ORIGIN), &[]).await;
    let me = "/api/users/clients-profiles/me/";
    let old = Auth::Basic("ana".into(), SHOPPER_PASSWORD.into());
    for app in [cluster.b(), cluster.c()] {
        // Verified, so remembered there for a while.
        assert_eq!(app.get(me, &old).await.status, StatusCode::OK);
    }

    let profile = format!("/api/users/clients-profiles/{}/", shopper.profile_id);
    let changed = cluster
        .a()
        .patch(
            &profile,
            &cluster.a().admin,
            json!({"password": "a-brand-new-one"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.body);
    let refused = wait_until(Duration::from_secs(1), || async {
        for app in [cluster.b(), cluster.c()] {
            if app.get(me, &old).await.status != StatusCode::UNAUTHORIZED {
                return false;
            }
        }
        true
    })
    .await;
    assert!(
        refused,
        "b or c still accepts the old password 1 s after the change on a"
    );

    let new = Auth::Basic("ana".into(), "a-brand-new-one".into());
    assert_eq!(cluster.c().get(me, &new).await.status, StatusCode::OK);
    let sign_in = json!({"username": "ana", "password": SHOPPER_PASSWORD});
    let token = cluster
        .c()
        .post("/api/auth/token/", &Auth::None, sign_in)
        .await;
    assert_eq!(token.status, StatusCode::UNAUTHORIZED, "{:?}", token.body);
}

#[actix_web::test]
async fn a_promo_created_then_deactivated_through_a_shows_on_b_and_c_within_1_s() {
    let cluster = ClusterOf3::start().await;
    let market = cluster.a().create_market_at(ORIGIN.0, ORIGIN.1).await;
    let promo = cluster
        .a()
        .create_running_promo(&market, 5, json!({}))
        .await;
    let promo_id = promo["id"].as_i64().expect("promo id");
    let cluster = &cluster;
    let listed_on_b_and_c = |wanted: bool| async move {
        lists_running(cluster.b(), promo_id).await == wanted
            && lists_running(cluster.c(), promo_id).await == wanted
    };
    let listed = wait_until(Duration::from_secs(1), || listed_on_b_and_c(true)).await;
    assert!(
        listed,
        "b and c do not list a promo running 1 s after its creation on a"
    );

    let path = format!("/api/promotions/flash-promos/{promo_id}/");
    let admin = &cluster.a().admin;
    let changed = cluster
        .a()
        .patch(&path, admin, json!({"is_active": false}))
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.body);
    let unlisted = wait_until(Duration::from_secs(1), || listed_on_b_and_c(false)).await;
    assert!(
        unlisted,
        "b and c still list the promo running 1 s after it was deactivated on a"
    );
}
