//! The promo reservation path under database faults, through the
//! [`DbProxy`](crate::helpers::DbProxy): a commit whose answer is lost or
//! comes too late, on reserve, complete, cancel and expiry, and links reset
//! mid-storm. The contract (API.md "Errors"): `unavailable` only when nothing
//! was written; otherwise the real outcome, or `outcome_unknown` within the
//! request deadline; the unit never goes to anyone else while in doubt; the
//! outcome shows in the caller's own list within seconds. After each fault
//! [`audit`] checks the invariants straight on the database.

mod audit;
mod storm;

use std::cell::RefCell;
use std::time::Duration;

use promo_engine::cli::fault_proxy::CommitFault;
use promo_engine::db::DbPool;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_through_with, wait_until, Answer, DbProxy, Shopper, TestApp};
use audit::{audit, Findings, Ledger};

/// A hold long enough to outlast any fault in these tests.
const LONG_HOLD: Duration = Duration::from_secs(60);
/// Longer than the service's 10 s request deadline.
const PAST_THE_DEADLINE: Duration = Duration::from_secs(12);
/// "Within a few seconds of the database answering again" (API.md).
const FEW_SECONDS: Duration = Duration::from_secs(5);

/// A service behind a proxy, one running promo, shoppers at its store, and a
/// pool of the test's own that bypasses the proxy.
pub struct Scene {
    pub app: TestApp,
    pub proxy: DbProxy,
    pub direct: DbPool,
    pub promo_id: i64,
    pub shoppers: Vec<Shopper>,
}

/// `quantity` units, `shoppers` shoppers, holds lasting `hold`.
pub async fn scene(quantity: u32, shoppers: usize, hold: Duration) -> Scene {
    let proxy = DbProxy::start().await;
    let app = spawn_app_through_with(&proxy, |config| config.reservation_hold = hold).await;
    let direct = promo_engine::db::create_pool(&app.database_url(), 2).expect("direct pool");
    let market = app.create_market_at(0.0, 0.0).await;
    let promo = app.create_running_promo(&market, quantity, json!({})).await;
    let shoppers = app
        .create_shoppers_quickly("fault", shoppers, (0.0, 0.0), &[market.segment_id])
        .await;
    Scene {
        promo_id: promo["id"].as_i64().expect("promo id"),
        app,
        proxy,
        direct,
        shoppers,
    }
}

impl Scene {
    async fn reserve(&self, shopper: &Shopper, ledger: &mut Ledger) -> Answer {
        let answer = self.app.reserve(shopper, self.promo_id).await;
        ledger.reserve(shopper, &answer);
        answer
    }

    /// `complete` or `cancel` on the reservation of a 201 body.
    async fn release(&self, shopper: &Shopper, held: &Value, verb: &str) -> Answer {
        let path = format!("/api/promotions/promo-reservations/{}/{verb}/", held["id"]);
        self.app.post(&path, &shopper.auth, json!({})).await
    }

    /// A healthy 201 for `shopper`.
    async fn hold(&self, shopper: &Shopper, ledger: &mut Ledger) -> Value {
        let answer = self.reserve(shopper, ledger).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
        answer.body
    }

    /// Reserves for `shopper` again and again (10 s at most) until `done`
    /// says so; every answer goes in the ledger and is returned.
    async fn reserve_until(
        &self,
        shopper: &Shopper,
        ledger: &mut Ledger,
        done: impl Fn(&Answer) -> bool,
    ) -> Vec<Answer> {
        let (answers, done) = (RefCell::new(Vec::new()), &done);
        wait_until(Duration::from_secs(10), || async {
            let answer = self.app.reserve(shopper, self.promo_id).await;
            let finished = done(&answer);
            answers.borrow_mut().push(answer);
            finished
        })
        .await;
        let answers = answers.into_inner();
        for answer in &answers {
            ledger.reserve(shopper, answer);
        }
        answers
    }

    /// Whether `shopper`'s own list shows a reservation of this promo as `status`.
    async fn listed_as(&self, shopper: &Shopper, status: &str) -> bool {
        let list = self
            .app
            .get(
                "/api/promotions/promo-reservations/?page_size=100",
                &shopper.auth,
            )
            .await;
        list.body["results"].as_array().is_some_and(|results| {
            results.iter().any(|reservation| {
                reservation["promo"]["id"] == self.promo_id && reservation["status"] == status
            })
        })
    }

    /// Waits (a few seconds) until `shopper`'s list shows `status`.
    async fn shows(&self, shopper: &Shopper, status: &str) -> bool {
        wait_until(FEW_SECONDS, || self.listed_as(shopper, status)).await
    }

    /// Whether the armed commit fault has fired (waiting for it a while).
    async fn fired(&self) -> bool {
        let proxy = &self.proxy;
        wait_until(Duration::from_secs(20), || async {
            proxy.stats().faults_applied >= 1
        })
        .await
    }
}

/// A faulted write's answer: `success`, or `outcome_unknown`; never `unavailable`.
fn committed_or_unknown(answer: &Answer, success: StatusCode) -> bool {
    answer.status == success
        || (answer.status == StatusCode::SERVICE_UNAVAILABLE && answer.code() == "outcome_unknown")
}

/// An answer that does not give away a unit someone else holds or bought.
/// `unavailable` qualifies: while the promo settles an unconfirmed write it
/// refuses new decisions at once, and nothing of them is written.
fn not_given_away(answer: &Answer) -> bool {
    matches!(
        answer.code(),
        "all_units_held" | "sold_out" | "outcome_unknown" | "unavailable"
    )
}

async fn a_reserve_whose_commit_is_faulted_keeps_its_unit(fault: CommitFault) {
    let scene = scene(1, 2, LONG_HOLD).await;
    let (ana, luis) = (&scene.shoppers[0], &scene.shoppers[1]);
    let (mut ledger, mut findings) = (Ledger::default(), Findings::default());
    scene.proxy.on_next_commits(1, fault);
    let first = scene.reserve(ana, &mut ledger).await;
    let describe = format!("{} {:?}", first.status, first.body);
    findings.check(
        committed_or_unknown(&first, StatusCode::CREATED),
        format!("ana's reserve, whose commit landed, was answered {describe}"),
    );
    findings.check(scene.fired().await, "the commit fault never fired");
    scene.proxy.heal();
    let second = scene.reserve(luis, &mut ledger).await;
    findings.check(
        not_given_away(&second),
        format!("luis got ana's unit: {} {:?}", second.status, second.body),
    );
    findings.check(
        scene.shows(ana, "held").await,
        "ana's committed hold never showed in her list",
    );
    audit(&scene, &ledger, &mut findings).await;
    findings.assert_none();
}

#[actix_web::test]
async fn a_reserve_whose_commit_reply_is_lost_is_never_unavailable_nor_given_away() {
    a_reserve_whose_commit_is_faulted_keeps_its_unit(CommitFault::LoseReply).await;
}

#[actix_web::test]
async fn a_reserve_whose_commit_lands_after_the_deadline_is_never_given_away() {
    a_reserve_whose_commit_is_faulted_keeps_its_unit(CommitFault::Delay(PAST_THE_DEADLINE)).await;
}

#[actix_web::test]
async fn a_sale_whose_commit_reply_is_lost_is_never_undone() {
    let scene = scene(1, 2, LONG_HOLD).await;
    let (ana, luis) = (&scene.shoppers[0], &scene.shoppers[1]);
    let (mut ledger, mut findings) = (Ledger::default(), Findings::default());
    let held = scene.hold(ana, &mut ledger).await;
    scene.proxy.on_next_commits(1, CommitFault::LoseReply);
    let sale = scene.release(ana, &held, "complete").await;
    let id = held["reservation_id"].as_str().unwrap_or_default();
    ledger.complete(ana, id, &sale);
    findings.check(
        committed_or_unknown(&sale, StatusCode::OK),
        format!(
            "a committed sale was answered {} {:?}",
            sale.status, sale.body
        ),
    );
    findings.check(scene.fired().await, "the commit fault never fired");
    scene.proxy.heal();
    findings.check(
        scene.shows(ana, "completed").await,
        "the committed sale never showed in ana's list",
    );
    let tries = scene
        .reserve_until(luis, &mut ledger, |answer| {
            answer.code() == "sold_out" || answer.status == StatusCode::CREATED
        })
        .await;
    let last = tries.last().expect("luis tried");
    findings.check(
        last.code() == "sold_out",
        format!(
            "the sold unit was offered again or never shown sold out: {} {:?}",
            last.status, last.body
        ),
    );
    audit(&scene, &ledger, &mut findings).await;
    findings.assert_none();
}

/// The one unit freed (by a cancel or expiry) comes back, to the first of
/// the two takers who asks, and no second unit comes free for the other.
async fn a_freed_unit_goes_to_one_shopper(
    scene: &Scene,
    [first, second]: [&Shopper; 2],
    ledger: &mut Ledger,
    findings: &mut Findings,
) {
    let tries = scene
        .reserve_until(first, ledger, |answer| answer.status == StatusCode::CREATED)
        .await;
    let taken = tries.last().expect("the first taker tried");
    findings.check(
        taken.status == StatusCode::CREATED,
        format!(
            "the freed unit never came back: {} {:?}",
            taken.status, taken.body
        ),
    );
    let other = scene.reserve(second, ledger).await;
    findings.check(
        not_given_away(&other),
        format!(
            "the unit was freed twice: the second taker got {} {:?}",
            other.status, other.body
        ),
    );
}

#[actix_web::test]
async fn a_cancel_whose_commit_reply_is_lost_releases_the_unit_exactly_once() {
    let scene = scene(1, 3, LONG_HOLD).await;
    let [ana, luis, eva] = [0, 1, 2].map(|index| &scene.shoppers[index]);
    let (mut ledger, mut findings) = (Ledger::default(), Findings::default());
    let held = scene.hold(ana, &mut ledger).await;
    scene.proxy.on_next_commits(1, CommitFault::LoseReply);
    let cancel = scene.release(ana, &held, "cancel").await;
    ledger.other(&cancel);
    findings.check(
        committed_or_unknown(&cancel, StatusCode::OK),
        format!(
            "a committed cancel was answered {} {:?}",
            cancel.status, cancel.body
        ),
    );
    findings.check(scene.fired().await, "the commit fault never fired");
    scene.proxy.heal();
    findings.check(
        scene.shows(ana, "cancelled").await,
        "the committed cancel never showed in ana's list",
    );
    a_freed_unit_goes_to_one_shopper(&scene, [luis, eva], &mut ledger, &mut findings).await;
    audit(&scene, &ledger, &mut findings).await;
    findings.assert_none();
}

#[actix_web::test]
async fn an_expiry_whose_commit_reply_is_lost_frees_the_unit_exactly_once() {
    let scene = scene(1, 3, Duration::from_secs(2)).await;
    let [ana, luis, eva] = [0, 1, 2].map(|index| &scene.shoppers[index]);
    let (mut ledger, mut findings) = (Ledger::default(), Findings::default());
    scene.hold(ana, &mut ledger).await;
    scene.proxy.on_next_commits(1, CommitFault::LoseReply);
    findings.check(scene.fired().await, "the expiry's commit never came");
    scene.proxy.heal();
    findings.check(
        scene.shows(ana, "expired").await,
        "the committed expiry never showed in ana's list",
    );
    a_freed_unit_goes_to_one_shopper(&scene, [luis, eva], &mut ledger, &mut findings).await;
    audit(&scene, &ledger, &mut findings).await;
    findings.assert_none();
}

#[actix_web::test]
async fn a_retry_with_the_same_key_after_outcome_unknown_gets_the_first_answer() {
    let scene = scene(1, 2, LONG_HOLD).await;
    let (ana, luis) = (&scene.shoppers[0], &scene.shoppers[1]);
    let (mut ledger, mut findings) = (Ledger::default(), Findings::default());
    let path = "/api/promotions/promo-reservations/";
    let body = json!({"promo_id": scene.promo_id});
    let post =
        || crate::idempotency::post_keyed(&scene.app, path, &ana.auth, b"ana-1", body.clone());
    scene
        .proxy
        .on_next_commits(1, CommitFault::Delay(PAST_THE_DEADLINE));
    let first = post().await;
    ledger.reserve(ana, &first);
    findings.check(
        first.code() == "outcome_unknown",
        format!(
            "a commit landing after the deadline was answered {} {:?}",
            first.status, first.body
        ),
    );
    scene.proxy.heal();
    // The retry replays what the first request's work learned once settled.
    let retried = std::cell::RefCell::new(None);
    let replayed = wait_until(Duration::from_secs(30), || async {
        let answer = post().await;
        let settled = answer.code() != "outcome_unknown";
        *retried.borrow_mut() = Some(answer);
        settled
    })
    .await;
    findings.check(
        replayed,
        "the key never gave an answer other than outcome_unknown",
    );
    if let Some(answer) = retried.into_inner() {
        ledger.reserve(ana, &answer);
        findings.check(
            answer.status == StatusCode::CREATED,
            format!(
                "the retry got {} {:?}, not the hold",
                answer.status, answer.body
            ),
        );
        let client = scene.direct.get().await.expect("direct connection");
        let held: Vec<String> = client
            .query(
                "SELECT reservation_id::text FROM promo_reservations WHERE status = 'held'",
                &[],
            )
            .await
            .expect("holds")
            .iter()
            .map(|row| row.get(0))
            .collect();
        findings.check(
            held == [answer.body["reservation_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()],
            format!(
                "held rows {held:?} are not the replayed hold {:?}",
                answer.body
            ),
        );
    }
    let other = scene.reserve(luis, &mut ledger).await;
    findings.check(
        not_given_away(&other),
        format!("luis got ana's unit: {} {:?}", other.status, other.body),
    );
    audit(&scene, &ledger, &mut findings).await;
    findings.assert_none();
}
