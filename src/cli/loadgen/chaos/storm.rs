//! The storm itself: while the proxy resets links and faults commits, each
//! worker's shoppers reserve, complete, cancel or keep their holds at
//! random, and every answer goes into a [`Ledger`] for the audit.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use uuid::Uuid;

use super::super::target::Target;
use super::ChaosArgs;
use crate::cli::fault_proxy::{ChaosConfig, CommitFault, FaultProxy};

/// Every answer the storm got, as the audit needs them.
#[derive(Debug, Default)]
pub(super) struct Ledger {
    /// Reservation ids answered 201.
    pub(super) holds: Vec<Uuid>,
    /// Reservation ids whose complete was answered 200.
    pub(super) sales: Vec<Uuid>,
    /// Reserves and completes answered `outcome_unknown` or lost in transport.
    pub(super) unsure_reserves: usize,
    pub(super) unsure_completes: usize,
    /// "verb status code" → answers.
    pub(super) tally: BTreeMap<String, usize>,
}

impl Ledger {
    fn merge(&mut self, other: Ledger) {
        self.holds.extend(other.holds);
        self.sales.extend(other.sales);
        self.unsure_reserves += other.unsure_reserves;
        self.unsure_completes += other.unsure_completes;
        for (key, count) in other.tally {
            *self.tally.entry(key).or_default() += count;
        }
    }

    /// Notes an answer; whether its outcome is unknown to the caller.
    fn note(&mut self, verb: &str, answer: &Answer) -> bool {
        let key = format!("{verb} {} {}", answer.status, answer.code);
        *self.tally.entry(key).or_default() += 1;
        answer.status == 0 || answer.code == "outcome_unknown"
    }
}

/// One HTTP answer (status 0: transport error).
struct Answer {
    status: u16,
    code: String,
    body: Value,
}

async fn post(target: &Target, token: &str, path: &str, body: Value) -> Answer {
    let sent = target
        .http
        .post(format!("{}{path}", target.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await;
    let Ok(response) = sent else {
        return Answer {
            status: 0,
            code: "transport".into(),
            body: Value::Null,
        };
    };
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or_default();
    let code = body["code"].as_str().unwrap_or("").to_owned();
    Answer { status, code, body }
}

/// Runs the storm for `length`; every answer, in one ledger.
pub(super) async fn storm(
    target: &Target,
    proxy: &FaultProxy,
    args: &ChaosArgs,
    tokens: &[String],
    promos: &[i64],
    length: Duration,
) -> Ledger {
    let config = ChaosConfig {
        reset_per_second: args.reset_per_second,
        ..ChaosConfig::default()
    };
    proxy.chaos(args.seed, config);
    let until = Instant::now() + length;
    let workers = args.concurrency.clamp(1, tokens.len());
    let shoppers = (0..workers).map(|worker| {
        let own: Vec<&String> = tokens.iter().skip(worker).step_by(workers).collect();
        shop(target, own, promos, args.seed ^ (worker as u64 + 1), until)
    });
    let faults = commit_faults(proxy, args, until);
    let (ledgers, ()) = futures_util::join!(join_all(shoppers), faults);
    proxy.calm();
    let mut ledger = Ledger::default();
    for one in ledgers {
        ledger.merge(one);
    }
    ledger
}

/// Arms one random commit fault every `--commit-fault-every` seconds.
async fn commit_faults(proxy: &FaultProxy, args: &ChaosArgs, until: Instant) {
    if args.commit_fault_every == 0 {
        return;
    }
    let mut rng = StdRng::seed_from_u64(args.seed);
    let every = Duration::from_secs(args.commit_fault_every);
    let mut next = Instant::now() + Duration::from_secs(1);
    while next < until {
        tokio::time::sleep_until(next.into()).await;
        next += every;
        let fault = match rng.gen_range(0..4) {
            0 => CommitFault::LoseReply,
            1 => CommitFault::ResetAfter,
            2 => CommitFault::ResetBefore,
            _ => CommitFault::Delay(Duration::from_secs(12)),
        };
        proxy.on_next_commits(1, fault);
    }
}

/// One worker: its own shoppers reserve, complete, cancel or keep, at random.
async fn shop(
    target: &Target,
    own: Vec<&String>,
    promos: &[i64],
    seed: u64,
    until: Instant,
) -> Ledger {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut ledger = Ledger::default();
    let mut held: BTreeMap<(usize, i64), (i64, Uuid)> = BTreeMap::new();
    // Promos this worker saw sold out and holds nothing of: nothing left to do there.
    let mut open: Vec<i64> = promos.to_vec();
    while Instant::now() < until && !(open.is_empty() && held.is_empty()) {
        let shopper = rng.gen_range(0..own.len());
        let Some(&promo) = open.get(rng.gen_range(0..open.len().max(1))) else {
            // Everything sold out here: finish the holds still kept.
            if let Some(((owner, _), (id, reservation))) = held.pop_first() {
                release(target, own[owner], id, reservation, "complete", &mut ledger).await;
            }
            continue;
        };
        let token = own[shopper];
        let Some((id, reservation)) = held.remove(&(shopper, promo)) else {
            let path = "/api/promotions/promo-reservations/";
            let answer = post(target, token, path, json!({"promo_id": promo})).await;
            ledger.unsure_reserves += usize::from(ledger.note("reserve", &answer));
            if answer.code == "sold_out" {
                open.retain(|other| *other != promo);
            }
            if let (201, Some(id), Some(Ok(reservation))) = (
                answer.status,
                answer.body["id"].as_i64(),
                answer.body["reservation_id"].as_str().map(Uuid::parse_str),
            ) {
                ledger.holds.push(reservation);
                held.insert((shopper, promo), (id, reservation));
            }
            continue;
        };
        // Mostly cancel or keep (and so let expire): units keep coming back,
        // and the promos sell out only late in the storm.
        let verb = match rng.gen_range(0..50) {
            0 => "complete",
            1..=20 => "cancel",
            _ => {
                held.insert((shopper, promo), (id, reservation));
                continue;
            }
        };
        release(target, token, id, reservation, verb, &mut ledger).await;
    }
    ledger
}

/// `complete` or `cancel` one held reservation, noting the answer.
async fn release(
    target: &Target,
    token: &str,
    id: i64,
    reservation: Uuid,
    verb: &str,
    ledger: &mut Ledger,
) {
    let path = format!("/api/promotions/promo-reservations/{id}/{verb}/");
    let answer = post(target, token, &path, json!({})).await;
    let unsure = ledger.note(verb, &answer);
    if verb == "complete" {
        ledger.unsure_completes += usize::from(unsure);
        if answer.status == 200 {
            ledger.sales.push(reservation);
        }
    }
}
