//! `Notifier`: tells shoppers about flash promos, at most once a day each.
//!
//! When a promo starts running ([`AnnounceStart`], from the registry), the
//! Notifier asks the [`AudienceIndex`] for the clients of its segments within
//! its radius, claims each one's daily slot in PostgreSQL in large batches (the
//! unique (user, day) row is the claim: the database, not a cache, enforces
//! "once a day", also with several instances), and only then tells the winners.
//! Every occurrence of a daily promo is a start. A promo's start is marked
//! announced after its audience was processed, so a
//! crash part-way re-runs it on the next boot and the daily claims absorb the
//! repeats. A shopper who moves into a running promo's radius is told the same
//! way ([`NotifyMember`]).
//!
//! A large audience is mostly time spent waiting for PostgreSQL, so a start
//! is a pipeline: the candidates are claimed in batches, a small first one
//! ([`FIRST_BATCH`]) so the first shoppers hear within one round trip, up to
//! [`CLAIMS_IN_FLIGHT`] statements at once on their own pooled connections
//! (their commits share WAL flushes and their work spreads over the cores),
//! and each batch is pushed the moment it is claimed; its connected
//! candidates watch the promo's stock from then on (the notification carries
//! the promo's state, and watchers added at the start would get the start's
//! first stock report, thousands of frames racing the notifications). Marking the pushed
//! notifications delivered waits until every batch was pushed: one statement
//! for all, off the path that tells shoppers (a late or missing mark only
//! means a session that connects meanwhile is sent the notification again).
//! In cluster mode the pushes and watchers also reach the shoppers connected
//! to other instances ([`Sessions`]).
//!
//! Sent by: the PromoRegistry (starts; again on each resync while a promo runs
//! unannounced, and when a sold-out promo runs again) and the HTTP layer
//! (geofence entries).

use std::time::Instant;

use actix::prelude::*;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use futures_util::stream::{self, StreamExt};

use super::audience::{AudienceIndex, FindWithinRadius};
use super::sessions::Sessions;
use crate::db::notifications::ClaimedNotification;
use crate::db::{self, DbError, DbPool};
use crate::domain::eligibility::store_location;
use crate::domain::frames::promo_json;
use crate::domain::promo::FlashPromo;
use crate::telemetry::prometheus;

/// Candidates in the first claim: small, so the first shoppers are told one
/// short round trip after the start while the rest are being claimed.
const FIRST_BATCH: usize = 250;
/// Candidates in each later claim: large enough that the per-statement cost
/// (planning, a commit) is small per shopper.
const CLAIM_BATCH: usize = 1_000;
/// Claim statements in flight at once, each on its own pooled connection.
/// Two keep both cores of the reference machine busy; measured, four were
/// slower than two (the statements contend for the same index pages and WAL).
const CLAIMS_IN_FLIGHT: usize = 2;

/// The notifier.
pub struct Notifier {
    pool: DbPool,
    audience: Addr<AudienceIndex>,
    sessions: Sessions,
    timezone: Tz,
}

impl Notifier {
    /// A notifier that counts days in `timezone`.
    pub fn new(
        pool: DbPool,
        audience: Addr<AudienceIndex>,
        sessions: Sessions,
        timezone: Tz,
    ) -> Notifier {
        Notifier {
            pool,
            audience,
            sessions,
            timezone,
        }
    }

    fn today(&self) -> NaiveDate {
        Utc::now().with_timezone(&self.timezone).date_naive()
    }
}

impl Actor for Notifier {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(16_384);
    }
}

/// A promo started running: tell its audience (unless already told).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AnnounceStart {
    pub promo: FlashPromo,
}

/// A shopper entered the radius of a running promo they may reserve.
#[derive(Message)]
#[rtype(result = "()")]
pub struct NotifyMember {
    pub user_id: i64,
    pub promo_id: i64,
    pub distance_km: f64,
    /// The end of the promo's current occurrence: no claim after it.
    pub until: DateTime<Utc>,
}

impl Handler<AnnounceStart> for Notifier {
    type Result = ();

    fn handle(&mut self, message: AnnounceStart, ctx: &mut Self::Context) {
        let (pool, audience, day) = (self.pool.clone(), self.audience.clone(), self.today());
        let sessions = self.sessions.clone();
        let promo = message.promo;
        let announce = async move {
            if let Err(error) = announce_start(&pool, &audience, &sessions, day, &promo).await {
                tracing::warn!(promo_id = promo.id, %error, "promo start announcement failed");
            }
        };
        ctx.spawn(announce.into_actor(self));
    }
}

impl Handler<NotifyMember> for Notifier {
    type Result = ();

    fn handle(&mut self, message: NotifyMember, ctx: &mut Self::Context) {
        let (pool, day, sessions) = (self.pool.clone(), self.today(), self.sessions.clone());
        let notify = async move {
            let told = async {
                let claimed = db::notifications::claim_daily_slots(
                    &pool,
                    message.promo_id,
                    day,
                    &[message.user_id],
                    &[message.distance_km],
                    message.until,
                )
                .await?;
                prometheus::notifications("inbox", claimed.len());
                if let Some(promo) = db::promos::find_promo(&pool, message.promo_id).await? {
                    deliver(&pool, &sessions, &promo, &claimed).await?;
                }
                Ok::<_, DbError>(())
            };
            if let Err(error) = told.await {
                tracing::warn!(%error, "geofence notification failed");
            }
        };
        ctx.spawn(notify.into_actor(self));
    }
}

async fn announce_start(
    pool: &DbPool,
    audience: &Addr<AudienceIndex>,
    sessions: &Sessions,
    day: NaiveDate,
    promo: &FlashPromo,
) -> Result<(), DbError> {
    let Some(center) = store_location(promo) else {
        return Ok(());
    };
    // A daily promo is announced once per occurrence; a continuous one once.
    let occurrence = promo
        .daily_window
        .and(promo.occurrence)
        .map(|occurrence| occurrence.start);
    let until = promo
        .occurrence
        .map_or(promo.end_time, |occurrence| occurrence.end);
    let started = Instant::now();
    let find = prometheus::awaiting(
        "audience",
        audience.send(FindWithinRadius {
            center,
            radius_km: promo.max_distance_km,
            segment_ids: promo.segment_ids().collect(),
        }),
    );
    let (candidates, announced) = futures_util::join!(
        find,
        db::notifications::is_announced(pool, promo.id, occurrence)
    );
    let candidates = candidates.map_err(|error| DbError::Unavailable(error.to_string()))?;
    if !matches!(announced, Ok(false)) {
        // Told before (or unknown): its connected audience only watches its stock.
        watch(sessions, promo.id, &candidates);
        return announced.map(|_| ());
    }
    tracing::debug!(promo_id = promo.id, candidates = candidates.len(), elapsed = ?started.elapsed(), "audience found");
    let announcement = Announcement {
        pool,
        sessions,
        promo_id: promo.id,
        day,
        until,
        promo_json: promo_json(promo).map_err(|error| DbError::Corrupt(error.to_string()))?,
        started,
    };
    let told = announcement.claim_and_push_all(&candidates).await;
    prometheus::notification_fanout(started.elapsed());
    mark_pushed(pool, &told.delivered).await;
    if let Some(error) = told.failure {
        return Err(error);
    }
    db::notifications::mark_promo_announced(pool, promo.id, occurrence).await?;
    tracing::info!(
        promo_id = promo.id,
        candidates = candidates.len(),
        told = told.claimed,
        pushed = told.delivered.len(),
        elapsed = ?started.elapsed(),
        "promo start announced"
    );
    Ok(())
}

/// One promo start being announced: what each of its claim batches needs.
struct Announcement<'a> {
    pool: &'a DbPool,
    sessions: &'a Sessions,
    promo_id: i64,
    day: NaiveDate,
    /// The end of the occurrence announced: no claim after it.
    until: DateTime<Utc>,
    /// The promo, serialized once for every frame.
    promo_json: String,
    started: Instant,
}

/// What the claim batches of one announcement did.
#[derive(Default)]
struct Told {
    /// Notifications claimed (recorded), pushed or not.
    claimed: usize,
    /// Ids of the notifications that reached at least one session.
    delivered: Vec<i64>,
    /// The first batch that failed; the others still ran.
    failure: Option<DbError>,
}

impl Announcement<'_> {
    /// Claims and pushes every batch, [`CLAIMS_IN_FLIGHT`] at once. A failed
    /// batch does not stop the others: they are different shoppers, and the
    /// ones it missed are claimed when the start is announced again.
    async fn claim_and_push_all(&self, candidates: &[(i64, f64)]) -> Told {
        let mut batches = stream::iter(claim_batches(candidates))
            .map(|batch| self.claim_and_push(batch))
            .buffer_unordered(CLAIMS_IN_FLIGHT);
        let mut told = Told::default();
        while let Some(outcome) = batches.next().await {
            match outcome {
                Ok((claimed, delivered)) => {
                    told.claimed += claimed;
                    told.delivered.extend(delivered);
                }
                Err(error) => {
                    told.failure.get_or_insert(error);
                }
            }
        }
        told
    }

    /// Claims one batch and pushes what it claimed at once; answers how many
    /// were claimed and the ids of those pushed to a session.
    async fn claim_and_push(&self, batch: &[(i64, f64)]) -> Result<(usize, Vec<i64>), DbError> {
        let user_ids: Vec<i64> = batch.iter().map(|(user_id, _)| *user_id).collect();
        let distances: Vec<f64> = batch.iter().map(|(_, distance)| *distance).collect();
        let claimed = db::notifications::claim_daily_slots(
            self.pool,
            self.promo_id,
            self.day,
            &user_ids,
            &distances,
            self.until,
        )
        .await;
        // Watching from the moment they are told (see the module doc), claimed or not.
        self.sessions.add_watchers(self.promo_id, user_ids);
        let claimed = claimed?;
        prometheus::notifications("inbox", claimed.len());
        let claimed_at = self.started.elapsed();
        let delivered = push_claimed(self.sessions, &self.promo_json, &claimed).await?;
        tracing::debug!(
            promo_id = self.promo_id,
            candidates = batch.len(),
            claimed = claimed.len(),
            pushed = delivered.len(),
            ?claimed_at,
            pushed_at = ?self.started.elapsed(),
            "claim batch pushed"
        );
        Ok((claimed.len(), delivered))
    }
}

/// Connected candidates get the promo's `promo.stock` and `promo.ended` frames.
fn watch(sessions: &Sessions, promo_id: i64, candidates: &[(i64, f64)]) {
    sessions.add_watchers(
        promo_id,
        candidates.iter().map(|(user_id, _)| *user_id).collect(),
    );
}

/// The candidates in claim batches: a first batch of at most [`FIRST_BATCH`],
/// then batches of [`CLAIM_BATCH`].
fn claim_batches(candidates: &[(i64, f64)]) -> impl Iterator<Item = &[(i64, f64)]> {
    let (first, rest) = candidates.split_at(candidates.len().min(FIRST_BATCH));
    std::iter::once(first)
        .filter(|first| !first.is_empty())
        .chain(rest.chunks(CLAIM_BATCH))
}

/// Pushes claimed notifications to their users' open sessions and marks the
/// ones that reached a session as delivered. Offline users find them in their
/// inbox, and get them pushed when they next connect.
pub async fn deliver(
    pool: &DbPool,
    sessions: &Sessions,
    promo: &FlashPromo,
    claimed: &[ClaimedNotification],
) -> Result<(), DbError> {
    if claimed.is_empty() {
        return Ok(());
    }
    let promo_json = promo_json(promo).map_err(|error| DbError::Corrupt(error.to_string()))?;
    let delivered = push_claimed(sessions, &promo_json, claimed).await?;
    mark_pushed(pool, &delivered).await;
    Ok(())
}

/// Hands claimed notifications to the sessions, here and (cluster mode) on
/// the other instances, which mark delivered what they push; answers the ids
/// of those that reached at least one open session here.
async fn push_claimed(
    sessions: &Sessions,
    promo_json: &str,
    claimed: &[ClaimedNotification],
) -> Result<Vec<i64>, DbError> {
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    let delivered = prometheus::awaiting("session_hub", sessions.notify(promo_json, claimed))
        .await
        .map_err(|error| DbError::Unavailable(error.to_string()))?;
    prometheus::notifications("push", delivered.len());
    Ok(delivered)
}

/// Marks pushed notifications delivered. A missing mark only means a later
/// session gets the notification again, so a failure is logged, not returned.
async fn mark_pushed(pool: &DbPool, delivered: &[i64]) {
    if delivered.is_empty() {
        return;
    }
    if let Err(error) = db::notifications::mark_delivered(pool, delivered).await {
        tracing::warn!(%error, "could not mark notifications delivered");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_start_with_a_small_batch_and_cover_every_candidate_once() {
        let count = FIRST_BATCH + 2 * CLAIM_BATCH + 7;
        let candidates: Vec<(i64, f64)> = (0..count as i64).map(|user_id| (user_id, 0.5)).collect();
        let sizes: Vec<usize> = claim_batches(&candidates).map(<[_]>::len).collect();
        assert_eq!(sizes, vec![FIRST_BATCH, CLAIM_BATCH, CLAIM_BATCH, 7]);
        let covered: Vec<i64> = claim_batches(&candidates)
            .flatten()
            .map(|(user_id, _)| *user_id)
            .collect();
        assert_eq!(covered, (0..count as i64).collect::<Vec<i64>>());
    }

    #[test]
    fn a_small_audience_is_claimed_in_one_batch_and_none_in_none() {
        let few: Vec<(i64, f64)> = (0..3).map(|user_id| (user_id, 0.5)).collect();
        assert_eq!(claim_batches(&few).count(), 1);
        assert_eq!(claim_batches(&[]).count(), 0);
    }
}
