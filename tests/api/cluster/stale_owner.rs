//! An owner paused (SIGSTOP) past its lease: another instance takes the
//! promo over with a higher epoch and fills it; once resumed, the former
//! owner's reserves sent while it was stopped cannot hold a unit (its
//! writes carry the old epoch, which the database refuses, or it forwards
//! them to the new owner, who has none left); it steps down (its
//! `promo_engine_owned_promos` drops to 0) and later calls through it are
//! forwarded to the new owner and succeed.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::future::join_all;
use reqwest::StatusCode;

use super::{
    deciding_options, market_and_shoppers, release_through, reservable_promo, reservation_uuid,
};
use super::{reserve_through, until_decided};
use crate::helpers::{metric_value, wait_until, Answer, ClusterOf3, Lease, Shopper, TestApp};

/// Three units: one held through the owner before the pause, two through
/// the new owner after the takeover; then none is left for a stale write.
const QUANTITY: u32 = 3;
const OWNED: &str = "promo_engine_owned_promos";
const FORWARDED: &str = "promo_engine_forwarded_total{outcome=\"answered\"}";

/// Reserves through `app` until decided; panics unless it is a 201.
async fn held_through(app: &TestApp, shopper: &Shopper, promo_id: i64) -> Answer {
    let answer = until_decided(Duration::from_secs(10), || {
        reserve_through(app, shopper, promo_id)
    })
    .await
    .unwrap_or_else(|| panic!("no answer for {}", shopper.username));
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    answer
}

async fn owned_count(app: &TestApp) -> f64 {
    metric_value(app, OWNED).await.unwrap_or(0.0)
}

#[actix_web::test]
async fn an_owner_paused_past_its_lease_is_fenced_off_and_steps_down() {
    let cluster = ClusterOf3::start_with(deciding_options(600)).await;
    let (market, shoppers) = market_and_shoppers(&cluster, "paused", 6).await;
    let promo_id = reservable_promo(&cluster, &market, QUANTITY).await;
    let before = cluster.lease_of(promo_id).await.expect("a lease");
    let old_owner = &cluster.instance(&before.owner).app;
    let first = held_through(old_owner, &shoppers[0], promo_id).await;
    let owns_it = || async { owned_count(old_owner).await == 1.0 };
    assert!(wait_until(Duration::from_secs(3), owns_it).await);

    let (stale, after, later) = pause_past_the_lease(&cluster, &before, &shoppers, promo_id).await;
    assert!(after.epoch > before.epoch, "{before:?} then {after:?}");
    for answer in stale {
        let answer = answer.expect("the resumed owner answers");
        let status = answer.status;
        assert_ne!(
            status,
            StatusCode::CREATED,
            "a stale hold: {:?}",
            answer.body
        );
        assert!(!status.is_server_error() || status == StatusCode::SERVICE_UNAVAILABLE);
    }
    let rows: HashSet<(uuid::Uuid, i64)> = cluster.held_rows(promo_id).await.into_iter().collect();
    let acked: HashSet<(uuid::Uuid, i64)> = [(&first, 0), (&later[0], 3), (&later[1], 4)]
        .into_iter()
        .map(|(answer, index)| (reservation_uuid(answer), shoppers[index].user_id))
        .collect();
    assert_eq!(
        rows, acked,
        "the held rows are exactly the acknowledged holds"
    );

    let stepped_down = wait_until(Duration::from_secs(5), || async {
        owned_count(old_owner).await == 0.0
    })
    .await;
    assert!(
        stepped_down,
        "the former owner {} still counts the promo",
        before.owner
    );
    let holds = [&first, &later[0]];
    assert_forwarded_through(&cluster, old_owner, &shoppers, holds, promo_id).await;
}

/// Stops the owner of `before`, sends it two reserves (shoppers 1 and 2:
/// they wait in its socket), waits for another instance to take the lease,
/// has the new owner hold the last two units (shoppers 3 and 4), then
/// resumes the former owner: the stale answers, the new lease, the holds.
async fn pause_past_the_lease(
    cluster: &ClusterOf3,
    before: &Lease,
    shoppers: &[Shopper],
    promo_id: i64,
) -> (Vec<Result<Answer, reqwest::Error>>, Lease, [Answer; 2]) {
    let old_owner = &cluster.instance(&before.owner).app;
    cluster.signal(&before.owner, libc::SIGSTOP);
    let stale = join_all(
        shoppers[1..3]
            .iter()
            .map(|shopper| reserve_through(old_owner, shopper, promo_id)),
    );
    let takeover = async {
        let other_owner = |lease: &Lease| lease.owner != before.owner;
        let lease = cluster
            .wait_for_lease(promo_id, Duration::from_secs(10), other_owner)
            .await;
        // Resumed whatever happens, so that the stale calls end.
        let after = lease.ok_or("no takeover while the owner was stopped");
        let later = match &after {
            Ok(after) => {
                let new_owner = &cluster.instance(&after.owner).app;
                Some([
                    held_through(new_owner, &shoppers[3], promo_id).await,
                    held_through(new_owner, &shoppers[4], promo_id).await,
                ])
            }
            Err(_) => None,
        };
        cluster.signal(&before.owner, libc::SIGCONT);
        (after, later)
    };
    let (stale, (after, later)) = futures_util::join!(stale, takeover);
    let after = after.unwrap_or_else(|missing| panic!("{missing}"));
    (stale, after, later.expect("the new owner's holds"))
}

/// Calls through the former owner now go to the new one: a cancel frees a
/// unit, a reserve takes it, a complete sells the first hold.
async fn assert_forwarded_through(
    cluster: &ClusterOf3,
    old_owner: &TestApp,
    shoppers: &[Shopper],
    holds: [&Answer; 2],
    promo_id: i64,
) {
    let [first, fourth] = holds;
    let forwarded_before = metric_value(old_owner, FORWARDED).await.unwrap_or(0.0);
    let cancel = until_decided(Duration::from_secs(10), || {
        release_through(old_owner, &shoppers[3], fourth, "cancel")
    })
    .await
    .expect("the cancel is answered");
    assert_eq!(cancel.status, StatusCode::OK, "{:?}", cancel.body);
    held_through(old_owner, &shoppers[5], promo_id).await;
    let complete = until_decided(Duration::from_secs(10), || {
        release_through(old_owner, &shoppers[0], first, "complete")
    })
    .await
    .expect("the complete is answered");
    assert_eq!(complete.status, StatusCode::OK, "{:?}", complete.body);
    let first_status = cluster.status_of(reservation_uuid(first)).await;
    assert_eq!(first_status.as_deref(), Some("completed"));
    assert_eq!(cluster.units_taken(promo_id).await, i64::from(QUANTITY));
    let forwarded_after = metric_value(old_owner, FORWARDED).await.unwrap_or(0.0);
    assert!(
        forwarded_after >= forwarded_before + 3.0,
        "forwarded {forwarded_before} then {forwarded_after}"
    );
}
