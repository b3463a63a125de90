//! Connections reset mid-storm: shoppers reserve, complete and cancel at
//! random (seeded) while the proxy resets every link a few times, each time
//! after a further batch of answers; then the audit.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::Value;

use super::audit::{audit, Findings, Ledger};
use super::{scene, Scene};
use crate::helpers::Shopper;

const SHOPPERS: usize = 30;
const ACTIONS_EACH: usize = 10;
const QUANTITY: u32 = 3;
/// Every link is reset after each this many further answers, this many times.
const ANSWERS_PER_RESET: usize = 40;
const RESETS: usize = 4;

/// One shopper's run: reserve when holding nothing; else complete, cancel or
/// keep the hold (and maybe let it expire).
async fn shop(
    scene: &Scene,
    shopper: &Shopper,
    seed: u64,
    ledger: &RefCell<Ledger>,
    answered: &AtomicUsize,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut held: Option<Value> = None;
    for _ in 0..ACTIONS_EACH {
        match held.take() {
            None => {
                let answer = scene.app.reserve(shopper, scene.promo_id).await;
                ledger.borrow_mut().reserve(shopper, &answer);
                if answer.status == StatusCode::CREATED {
                    held = Some(answer.body);
                }
            }
            Some(hold) => match rng.gen_range(0..10) {
                0..=4 => {
                    let answer = scene.release(shopper, &hold, "complete").await;
                    let id = hold["reservation_id"].as_str().unwrap_or_default();
                    ledger.borrow_mut().complete(shopper, id, &answer);
                }
                5..=7 => {
                    let answer = scene.release(shopper, &hold, "cancel").await;
                    ledger.borrow_mut().other(&answer);
                }
                _ => held = Some(hold),
            },
        }
        reset_when_due(scene, answered.fetch_add(1, Ordering::SeqCst) + 1);
    }
}

/// Resets every link when the `answers`-th answer of the storm completes a
/// further batch of [`ANSWERS_PER_RESET`], [`RESETS`] times: counted, not
/// timed, so a storm that runs fast is faulted all the same.
fn reset_when_due(scene: &Scene, answers: usize) {
    if answers.is_multiple_of(ANSWERS_PER_RESET) && answers / ANSWERS_PER_RESET <= RESETS {
        scene.proxy.reset_all();
    }
}

#[actix_web::test]
async fn every_invariant_holds_when_links_are_reset_mid_storm() {
    let scene = scene(QUANTITY, SHOPPERS, Duration::from_secs(2)).await;
    let (ledger, answered) = (RefCell::new(Ledger::default()), AtomicUsize::new(0));
    {
        let shoppers = scene.shoppers.iter().enumerate();
        join_all(
            shoppers
                .map(|(index, shopper)| shop(&scene, shopper, index as u64, &ledger, &answered)),
        )
        .await;
    }
    let mut findings = Findings::default();
    let resets = scene.proxy.stats().links_reset;
    findings.check(resets >= 1, "no link was reset: the storm proved nothing");
    let ledger = ledger.into_inner();
    println!("links reset: {resets}; answers: {:?}", ledger.tally);
    findings.check(
        ledger.answers(201, "") >= 1,
        "nobody ever got a unit: the storm proved nothing",
    );
    audit(&scene, &ledger, &mut findings).await;
    findings.assert_none();
}
