//! What the callers were told ([`Ledger`]) and the invariants checked after a
//! fault straight on the database, through the test's own pool (never through
//! the proxy): stock sums, rows vs counters, nothing held twice, every
//! acknowledged write durable, every `unavailable` left nothing behind.
//!
//! Checks gather [`Findings`] rather than stop at the first, so one failing
//! run shows every broken promise at once.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use reqwest::StatusCode;

use super::Scene;
use crate::helpers::{wait_until, Answer, Shopper};

/// How long the service may take to settle after the proxy is healthy again.
const SETTLE: Duration = Duration::from_secs(15);

/// Broken promises found so far.
#[derive(Debug, Default)]
pub struct Findings(Vec<String>);

impl Findings {
    /// Records `what` unless `ok`.
    pub fn check(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.0.push(what.into());
        }
    }

    /// Panics listing every finding, if there is one.
    pub fn assert_none(self) {
        assert!(self.0.is_empty(), "broken:\n- {}", self.0.join("\n- "));
    }
}

/// Every answer the callers got, as far as the invariants care.
#[derive(Debug, Default)]
pub struct Ledger {
    /// (user, reservation_id) of each 201.
    holds: Vec<(i64, String)>,
    /// (user, reservation_id) of each completing 200.
    sales: Vec<(i64, String)>,
    /// Reserves per user answered `outcome_unknown`.
    unknown_reserves: HashMap<i64, usize>,
    /// Completes per user answered `outcome_unknown`.
    unknown_completes: HashMap<i64, usize>,
    /// Answers by "status code".
    pub tally: BTreeMap<String, usize>,
}

impl Ledger {
    fn count(&mut self, answer: &Answer) {
        let key = format!("{} {}", answer.status.as_u16(), answer.code());
        *self.tally.entry(key).or_default() += 1;
    }

    /// A reserve's answer.
    pub fn reserve(&mut self, shopper: &Shopper, answer: &Answer) {
        self.count(answer);
        if answer.status == StatusCode::CREATED {
            let id = answer.body["reservation_id"].as_str().unwrap_or_default();
            self.holds.push((shopper.user_id, id.to_owned()));
        } else if answer.code() == "outcome_unknown" {
            *self.unknown_reserves.entry(shopper.user_id).or_default() += 1;
        }
    }

    /// A complete's answer, for the reservation `reservation_id`.
    pub fn complete(&mut self, shopper: &Shopper, reservation_id: &str, answer: &Answer) {
        self.count(answer);
        if answer.status == StatusCode::OK {
            self.sales
                .push((shopper.user_id, reservation_id.to_owned()));
        } else if answer.code() == "outcome_unknown" {
            *self.unknown_completes.entry(shopper.user_id).or_default() += 1;
        }
    }

    /// Any other answer (cancels), tallied only.
    pub fn other(&mut self, answer: &Answer) {
        self.count(answer);
    }

    /// Answers with this status and code.
    pub fn answers(&self, status: u16, code: &str) -> usize {
        let key = format!("{status} {code}");
        self.tally.get(&key).copied().unwrap_or(0)
    }
}

/// The promo's counters as the API shows them and as the rows say.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Counts {
    api: [i64; 4],
    held_rows: i64,
    completed_rows: i64,
    stale_held_rows: i64,
    sold_column: i64,
    quantity: i64,
}

impl Counts {
    /// The service agrees with its rows and no hold outlived its expiry.
    fn settled(&self) -> bool {
        let [_, held, sold, _] = self.api;
        held == self.held_rows && sold == self.sold_column && self.stale_held_rows == 0
    }
}

async fn counts(scene: &Scene) -> Counts {
    let path = format!("/api/promotions/flash-promos/{}/", scene.promo_id);
    let promo = scene.app.get(&path, &scene.app.admin).await.body;
    let field = |name: &str| promo[name].as_i64().unwrap_or(-1);
    let client = scene.direct.get().await.expect("direct connection");
    let row = client
        .query_one(
            "SELECT \
             (SELECT count(*) FROM promo_reservations WHERE promo_id = $1 AND status = 'held'), \
             (SELECT count(*) FROM promo_reservations WHERE promo_id = $1 AND status = 'completed'), \
             (SELECT count(*) FROM promo_reservations WHERE promo_id = $1 AND status = 'held' \
                AND expires_at < now() - interval '2 seconds'), \
             sold::bigint, quantity::bigint FROM flash_promos WHERE id = $1",
            &[&scene.promo_id],
        )
        .await
        .expect("counts");
    Counts {
        api: [
            field("available"),
            field("held"),
            field("sold"),
            field("quantity"),
        ],
        held_rows: row.get(0),
        completed_rows: row.get(1),
        stale_held_rows: row.get(2),
        sold_column: row.get(3),
        quantity: row.get(4),
    }
}

/// Waits until the service has settled, then checks every invariant.
pub async fn audit(scene: &Scene, ledger: &Ledger, findings: &mut Findings) {
    scene.proxy.heal();
    let settled = wait_until(SETTLE, || async { counts(scene).await.settled() }).await;
    let counts = counts(scene).await;
    findings.check(settled, format!("never settled (API vs rows): {counts:?}"));
    check_stock(&counts, findings);
    check_rows(scene, ledger, findings).await;
}

fn check_stock(counts: &Counts, findings: &mut Findings) {
    let [available, held, sold, quantity] = counts.api;
    findings.check(
        available + held + sold == quantity,
        format!("API: available + held + sold != quantity: {counts:?}"),
    );
    findings.check(
        counts.completed_rows == counts.sold_column,
        format!("completed rows != flash_promos.sold: {counts:?}"),
    );
    findings.check(
        counts.held_rows + counts.sold_column <= counts.quantity,
        format!("units held twice (held rows + sold > quantity): {counts:?}"),
    );
    findings.check(
        counts.stale_held_rows == 0,
        format!("'held' rows past their expiry: {counts:?}"),
    );
}

/// Every row against what its user was told.
async fn check_rows(scene: &Scene, ledger: &Ledger, findings: &mut Findings) {
    let client = scene.direct.get().await.expect("direct connection");
    let rows = client
        .query(
            "SELECT user_id, reservation_id::text, status FROM promo_reservations \
             WHERE promo_id = $1",
            &[&scene.promo_id],
        )
        .await
        .expect("rows");
    let rows: HashMap<String, (i64, String)> = rows
        .iter()
        .map(|row| (row.get(1), (row.get(0), row.get(2))))
        .collect();
    for (user, id) in &ledger.holds {
        let durable = rows.get(id).is_some_and(|(owner, _)| owner == user);
        findings.check(durable, format!("a 201 hold is not in the database: {id}"));
    }
    for (_, id) in &ledger.sales {
        let sold = rows
            .get(id)
            .is_some_and(|(_, status)| status == "completed");
        findings.check(
            sold,
            format!("a 200 sale is not completed in the database: {id}"),
        );
    }
    check_nothing_unexplained(&rows, ledger, findings);
}

/// A row nobody was told about must come from an `outcome_unknown` (never
/// from an `unavailable`); the same for a sale.
fn check_nothing_unexplained(
    rows: &HashMap<String, (i64, String)>,
    ledger: &Ledger,
    findings: &mut Findings,
) {
    let mut unacked: HashMap<i64, (usize, usize)> = HashMap::new();
    for (id, (user, status)) in rows {
        let entry = unacked.entry(*user).or_default();
        if !ledger.holds.iter().any(|(_, held)| held == id) {
            entry.0 += 1;
        }
        if status == "completed" && !ledger.sales.iter().any(|(_, sold)| sold == id) {
            entry.1 += 1;
        }
    }
    for (user, (holds, sales)) in unacked {
        let unknown = ledger.unknown_reserves.get(&user).copied().unwrap_or(0);
        findings.check(
            holds <= unknown,
            format!("user {user}: {holds} rows never acknowledged, {unknown} outcome_unknown"),
        );
        let unknown = ledger.unknown_completes.get(&user).copied().unwrap_or(0);
        findings.check(
            sales <= unknown,
            format!("user {user}: {sales} sales never acknowledged, {unknown} outcome_unknown"),
        );
    }
}
