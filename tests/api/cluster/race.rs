//! Many shoppers spread over the three instances race through REST for a
//! promo of three units: the owner decides every call (the others forward
//! to it), so exactly three are held, the rest get the contract's refusal,
//! and every instance then shows the same stock.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::future::join_all;
use reqwest::StatusCode;

use super::{deciding_options, market_and_shoppers, reservable_promo, reservation_uuid};
use crate::helpers::{metric_value, wait_until, Answer, ClusterOf3};

const SHOPPERS: usize = 200;
const QUANTITY: u32 = 3;

#[actix_web::test]
async fn two_hundred_shoppers_over_three_instances_hold_exactly_the_three_units() {
    let cluster = ClusterOf3::start_with(deciding_options(60)).await;
    let (market, shoppers) = market_and_shoppers(&cluster, "racer", SHOPPERS).await;
    let promo_id = reservable_promo(&cluster, &market, QUANTITY).await;

    let answers: Vec<Answer> = join_all(shoppers.iter().enumerate().map(|(index, shopper)| {
        let app = &cluster.instances[index % cluster.instances.len()].app;
        app.reserve(shopper, promo_id)
    }))
    .await;

    let mut held_by = HashSet::new();
    for (shopper, answer) in shoppers.iter().zip(&answers) {
        if answer.status == StatusCode::CREATED {
            assert_eq!(answer.body["status"], "held", "{:?}", answer.body);
            held_by.insert((reservation_uuid(answer), shopper.user_id));
            continue;
        }
        assert_eq!(answer.status, StatusCode::CONFLICT, "{:?}", answer.body);
        assert_eq!(answer.code(), "all_units_held", "{:?}", answer.body);
        assert!(
            answer.body["retry_after"].as_u64().is_some_and(|s| s >= 1),
            "{:?}",
            answer.body
        );
        assert!(answer.headers.contains_key("retry-after"));
    }
    assert_eq!(held_by.len(), QUANTITY as usize, "201s: {held_by:?}");
    let rows: HashSet<(uuid::Uuid, i64)> = cluster.held_rows(promo_id).await.into_iter().collect();
    assert_eq!(rows, held_by, "the held rows are the acknowledged holds");

    for instance in &cluster.instances {
        assert!(
            wait_until(Duration::from_secs(2), || shows_all_held(
                &instance.app,
                promo_id
            ))
            .await,
            "instance {} does not show the three units held",
            instance.name
        );
    }
    let owned = wait_until(Duration::from_secs(3), || async {
        let mut total = 0.0;
        for instance in &cluster.instances {
            let gauge = "promo_engine_owned_promos";
            total += metric_value(&instance.app, gauge).await.unwrap_or(0.0);
        }
        total == 1.0
    })
    .await;
    assert!(
        owned,
        "one instance, and one only, counts the promo as owned"
    );
}

/// The instance's `GET flash-promos/{id}/` shows every unit held.
async fn shows_all_held(app: &crate::helpers::TestApp, promo_id: i64) -> bool {
    let path = format!("/api/promotions/flash-promos/{promo_id}/");
    let promo = app.get(&path, &app.admin).await.body;
    promo["held"] == QUANTITY && promo["available"] == 0 && promo["status"] == "running"
}
