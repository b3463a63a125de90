//! NATS going away and coming back: `/readyz`
//! follows NATS (API.md: 200 when PostgreSQL and NATS answer, 503
//! otherwise), the instances reconnect by themselves, and a change made
//! while NATS was down reaches the others through the periodic resync.
//! These tests run their own `nats-server`, killed and restarted on its port.

use std::time::Duration;

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

use super::{market_and_shoppers, reserve_through, until_decided};
use crate::helpers::{
    is_ready, lists_running, readiness_of, wait_until, ClusterOf3, ClusterOptions, NatsServer,
};

/// `REGISTRY_RESYNC_SECONDS` for these tests.
const RESYNC_SECONDS: u64 = 2;

async fn cluster_on(nats: &NatsServer) -> ClusterOf3 {
    ClusterOf3::start_with(ClusterOptions {
        nats_url: Some(nats.url()),
        env: vec![("REGISTRY_RESYNC_SECONDS", RESYNC_SECONDS.to_string())],
        ..ClusterOptions::default()
    })
    .await
}

/// Every instance's `/readyz` answers `status`.
async fn all_answer(cluster: &ClusterOf3, status: StatusCode) -> bool {
    let answers = join_all(cluster.instances.iter().map(|i| readiness_of(&i.app))).await;
    answers.iter().all(|answer| *answer == Some(status))
}

#[actix_web::test]
async fn readyz_is_503_while_nats_is_down_and_200_once_it_is_back() {
    let mut nats = NatsServer::start().await;
    let cluster = cluster_on(&nats).await;
    nats.kill();
    let unready = wait_until(Duration::from_secs(5), || {
        all_answer(&cluster, StatusCode::SERVICE_UNAVAILABLE)
    })
    .await;
    assert!(unready, "an instance stays ready with NATS down");
    nats.restart().await;
    let ready = wait_until(Duration::from_secs(10), || {
        all_answer(&cluster, StatusCode::OK)
    })
    .await;
    assert!(ready, "an instance is not ready 10 s after NATS came back");
}

#[actix_web::test]
async fn after_a_nats_restart_the_instances_reconnect_and_what_changed_meanwhile_is_everywhere() {
    let mut nats = NatsServer::start().await;
    let cluster = cluster_on(&nats).await;
    let (market, shoppers) = market_and_shoppers(&cluster, "patient", 3).await;

    nats.kill();
    let promo = cluster
        .a()
        .create_running_promo(&market, 5, json!({}))
        .await;
    let promo_id = promo["id"].as_i64().expect("promo id");
    let resync = Duration::from_secs(2 * RESYNC_SECONDS + 1);
    let everywhere = wait_until(resync, || async {
        lists_running(cluster.b(), promo_id).await && lists_running(cluster.c(), promo_id).await
    })
    .await;
    assert!(
        everywhere,
        "b or c does not list a promo created on a while NATS was down"
    );

    nats.restart().await;
    let ready = wait_until(Duration::from_secs(10), || async {
        join_all(cluster.instances.iter().map(|i| is_ready(&i.app)))
            .await
            .into_iter()
            .all(|ready| ready)
    })
    .await;
    assert!(ready, "an instance is not ready 10 s after NATS came back");
    // Two of the three are not the owner: their calls cross NATS again.
    for (instance, shopper) in cluster.instances.iter().zip(&shoppers) {
        let held = until_decided(Duration::from_secs(10), || {
            reserve_through(&instance.app, shopper, promo_id)
        })
        .await
        .unwrap_or_else(|| panic!("no answer through {}", instance.name));
        assert_eq!(
            held.status,
            StatusCode::CREATED,
            "{}: {:?}",
            instance.name,
            held.body
        );
    }
}
