//! kill -9 of a promo's owner in the middle of a reservation storm through
//! all three instances: a survivor takes the promo over within 5 s of the
//! kill (API.md), with its holds; no unit is held twice; every hold
//! acknowledged with a 201 is still held; and afterwards the storm's
//! shoppers left without a hold reserve through the survivors until every
//! unit is held.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::StatusCode;

use super::{
    deciding_options, market_and_shoppers, release_through, reservable_promo, reservation_uuid,
    reserve_through, until_decided,
};
use crate::helpers::{wait_until, Answer, ClusterInstance, ClusterOf3, Lease, Shopper};

const STORM: usize = 60;
const QUANTITY: u32 = 40;
/// Sequential reservers, spread over the instances round-robin.
const WORKERS: usize = 6;
/// The owner is killed when this many storm calls are answered.
const KILL_AFTER: usize = 15;
/// Long enough that no hold expires during the test.
const HOLD_SECONDS: u64 = 600;
/// API.md: a killed instance's promos are taken over within 5 s.
const TAKEOVER_DEADLINE: Duration = Duration::from_secs(5);

/// What the storm saw: each shopper's answer, `None` when the connection
/// failed (the instance was killed with the call in flight or before it).
type Answers = Vec<(usize, Option<Answer>)>;

/// The storm: `WORKERS` reservers, each through one instance, each calling
/// for its share of `shoppers` one after the other; the call that makes
/// `KILL_AFTER` answers kills `owner` with the others in flight.
async fn storm(
    cluster: &ClusterOf3,
    shoppers: &[Shopper],
    promo_id: i64,
    owner: &str,
    killed_at: &OnceLock<Instant>,
) -> Answers {
    let answered = AtomicUsize::new(0);
    let workers = (0..WORKERS).map(|worker| {
        let app = &cluster.instances[worker % cluster.instances.len()].app;
        let answered = &answered;
        async move {
            let mut answers = Vec::new();
            for index in (worker..shoppers.len()).step_by(WORKERS) {
                let answer = reserve_through(app, &shoppers[index], promo_id).await.ok();
                answers.push((index, answer));
                if answered.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER {
                    cluster.signal(owner, libc::SIGKILL);
                    let _ = killed_at.set(Instant::now());
                }
            }
            answers
        }
    });
    join_all(workers).await.into_iter().flatten().collect()
}

/// Once the kill has happened: the first live lease of another instance,
/// and how long after the kill it was seen (`None`: not within the deadline).
async fn watch_takeover(
    cluster: &ClusterOf3,
    promo_id: i64,
    owner: &str,
    killed_at: &OnceLock<Instant>,
) -> Option<(Lease, Duration)> {
    let killed = wait_until(Duration::from_secs(30), || async {
        killed_at.get().is_some()
    })
    .await;
    let killed_at = *killed_at.get().filter(|_| killed)?;
    let left = TAKEOVER_DEADLINE.saturating_sub(killed_at.elapsed());
    let lease = cluster
        .wait_for_lease(promo_id, left, |lease| lease.owner != owner)
        .await?;
    Some((lease, killed_at.elapsed()))
}

/// A storm answer the contract allows while an owner dies: a hold, a
/// conflict, or "try again" (never a 5xx other than 503).
fn assert_allowed(answer: &Answer) {
    let allowed = [
        StatusCode::CREATED,
        StatusCode::CONFLICT,
        StatusCode::SERVICE_UNAVAILABLE,
    ];
    assert!(
        allowed.contains(&answer.status),
        "{} {:?}",
        answer.status,
        answer.body
    );
}

#[actix_web::test]
async fn killing_the_owner_mid_storm_loses_no_hold_and_a_survivor_takes_over_within_5_s() {
    let cluster = ClusterOf3::start_with(deciding_options(HOLD_SECONDS)).await;
    let (market, shoppers) = market_and_shoppers(&cluster, "stormer", STORM + 2).await;
    let (storming, fresh) = shoppers.split_at(STORM);
    let promo_id = reservable_promo(&cluster, &market, QUANTITY).await;
    let before = cluster.lease_of(promo_id).await.expect("a lease");

    let killed_at = OnceLock::new();
    let (answers, takeover) = futures_util::join!(
        storm(&cluster, storming, promo_id, &before.owner, &killed_at),
        watch_takeover(&cluster, promo_id, &before.owner, &killed_at),
    );
    let (after, took) = takeover.expect("no other instance took the promo over within 5 s");
    assert!(after.epoch > before.epoch, "{before:?} then {after:?}");
    assert!(
        took <= TAKEOVER_DEADLINE,
        "taken over by {} after {took:?}",
        after.owner
    );

    let mut holds: Vec<(usize, Answer)> = Vec::new();
    for (index, answer) in answers {
        let Some(answer) = answer else { continue };
        assert_allowed(&answer);
        if answer.status == StatusCode::CREATED {
            holds.push((index, answer));
        }
    }
    let retried = retry_through_survivors(&cluster, storming, &holds, promo_id, &before).await;
    holds.extend(retried);
    assert_invariants(&cluster, promo_id, &holds).await;
    let survivors = cluster.others(&before.owner);
    reserve_after_the_takeover(&survivors, storming, fresh, &holds, promo_id).await;
    assert_invariants(&cluster, promo_id, &[]).await;
}

/// Every storm shopper without a 201 reserves again through the survivors
/// until decided: a refusal, or a hold (returned, with the shopper's index).
async fn retry_through_survivors(
    cluster: &ClusterOf3,
    storming: &[Shopper],
    holds: &[(usize, Answer)],
    promo_id: i64,
    before: &Lease,
) -> Vec<(usize, Answer)> {
    let survivors = cluster.others(&before.owner);
    let held: HashSet<usize> = holds.iter().map(|(index, _)| *index).collect();
    let unheld = (0..storming.len()).filter(|index| !held.contains(index));
    let retries = unheld.enumerate().map(|(turn, index)| {
        let app = &survivors[turn % survivors.len()].app;
        let shopper = &storming[index];
        async move {
            let answer = until_decided(Duration::from_secs(10), || {
                reserve_through(app, shopper, promo_id)
            })
            .await
            .filter(|answer| answer.status != StatusCode::SERVICE_UNAVAILABLE)
            .unwrap_or_else(|| panic!("{} was never answered", shopper.username));
            (index, answer)
        }
    });
    let mut created = Vec::new();
    for (index, answer) in join_all(retries).await {
        if answer.status == StatusCode::CREATED {
            created.push((index, answer));
            continue;
        }
        let refusals = ["all_units_held", "already_reserved"];
        let code = answer.code();
        assert!(
            refusals.contains(&code),
            "{} {:?}",
            answer.status,
            answer.body
        );
    }
    created
}

/// Through each survivor, one acknowledged hold is cancelled and a fresh
/// shopper takes the unit.
async fn reserve_after_the_takeover(
    survivors: &[&ClusterInstance],
    storming: &[Shopper],
    fresh: &[Shopper],
    holds: &[(usize, Answer)],
    promo_id: i64,
) {
    for ((survivor, shopper), (index, hold)) in survivors.iter().zip(fresh).zip(holds) {
        let app = &survivor.app;
        let cancel = until_decided(Duration::from_secs(10), || {
            release_through(app, &storming[*index], hold, "cancel")
        })
        .await
        .expect("the cancel is answered");
        assert_eq!(cancel.status, StatusCode::OK, "{:?}", cancel.body);
        let held = until_decided(Duration::from_secs(10), || {
            reserve_through(app, shopper, promo_id)
        })
        .await
        .expect("the reserve is answered");
        let name = survivor.name;
        assert_eq!(
            held.status,
            StatusCode::CREATED,
            "through {name}: {:?}",
            held.body
        );
    }
}

/// Nothing held twice, no acknowledged hold lost (`holds`, not yet
/// cancelled), every unit held (more shoppers than units all tried until
/// decided), and the owner knows every hold.
async fn assert_invariants(cluster: &ClusterOf3, promo_id: i64, holds: &[(usize, Answer)]) {
    let rows = cluster.held_rows(promo_id).await;
    let holders: HashSet<i64> = rows.iter().map(|(_, user_id)| *user_id).collect();
    assert_eq!(
        holders.len(),
        rows.len(),
        "a shopper holds two units: {rows:?}"
    );
    assert!(cluster.units_taken(promo_id).await <= i64::from(QUANTITY));
    for reservation_id in holds.iter().map(|(_, answer)| reservation_uuid(answer)) {
        let status = cluster.status_of(reservation_id).await;
        assert_eq!(
            status.as_deref(),
            Some("held"),
            "acknowledged hold {reservation_id}"
        );
    }
    assert_eq!(rows.len(), QUANTITY as usize, "{rows:?}");
    let owner = cluster.lease_of(promo_id).await.expect("a lease").owner;
    let app = &cluster.instance(&owner).app;
    let path = format!("/api/promotions/flash-promos/{promo_id}/");
    let knows_all = wait_until(Duration::from_secs(3), || async {
        let promo = app.get(&path, &app.admin).await.body;
        promo["held"] == QUANTITY && promo["available"] == 0
    })
    .await;
    assert!(knows_all, "the owner {owner} does not show every unit held");
}
