//! `PromoRegistry`: knows every live promo and runs one [`PromoActor`] per
//! running promo.
//!
//! Owns an in-memory snapshot of each promo that is active and not over (its
//! terms and last committed counts), loaded at boot and kept current by the
//! HTTP handlers ([`PromoChanged`], [`PromoRemoved`]) and the actors
//! ([`StockChanged`]). `running/` and `eligible/` are answered from this
//! snapshot with no database query. A single timer is kept for the next start
//! or end; at each, [`PromoRegistry::reconcile`] starts, closes or deactivates
//! actors so that a promo runs within moments of its `start_time` and stops at
//! its `end_time`. Reservation messages are forwarded to the promo's actor.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use futures_util::future::ready;

use super::notifier::{AnnounceStart, Notifier};
use super::promo::{
    Cancel, Close, Complete, Deactivate, PrepareQuantity, PromoActor, PromoRefusal, Redefine,
    Reserve, Shutdown,
};
use super::session_hub::{PromoEnded, SessionHub, StockFrame};
use crate::db::{self, DbPool, Listing, PageWindow};
use crate::domain::eligibility::{store_location, AudienceMember};
use crate::domain::frames::{EndReason, ServerFrame};
use crate::domain::geo::{chord_between, chord_for_km, km_from_chord};
use crate::domain::promo::{status_at, FlashPromo, PromoStatus};
use crate::domain::reservation::Reservation;
use crate::domain::stock::QuantityBelowCommitted;
use crate::domain::GeoPoint;

/// The longest the registry sleeps between checks, whatever the schedule says.
const MAX_TICK: Duration = Duration::from_secs(30);
/// The longest a `promo.stock` frame waits, so bursts of changes become one frame.
const STOCK_FRAME_EVERY: Duration = Duration::from_millis(100);
/// How often the snapshot is checked against PostgreSQL, unless configured.
const RESYNC_EVERY: Duration = Duration::from_secs(30);
/// How soon to retry after a promo actor could not start (database away).
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// What the registry keeps per promo.
struct Entry {
    promo: FlashPromo,
    actor: Option<Addr<PromoActor>>,
    /// The store as a unit vector and the radius as a chord, so the
    /// eligibility scan compares straight-line distances (no trigonometry).
    store: [f64; 3],
    radius_chord: f64,
    /// Watchers were told it stopped running (reset when it runs again).
    end_told: bool,
}

impl Entry {
    fn new(promo: FlashPromo) -> Entry {
        let mut entry = Entry {
            store: [0.0; 3],
            radius_chord: 0.0,
            promo,
            actor: None,
            end_told: false,
        };
        entry.set_promo(entry.promo.clone());
        entry
    }

    fn set_promo(&mut self, promo: FlashPromo) {
        self.store = store_location(&promo).map_or([0.0; 3], GeoPoint::unit_vector);
        self.radius_chord = chord_for_km(promo.max_distance_km);
        self.promo = promo;
    }
}

/// The registry of live promos.
pub struct PromoRegistry {
    pool: DbPool,
    notifier: Addr<Notifier>,
    hub: Addr<SessionHub>,
    hold_for: Duration,
    resync_every: Duration,
    entries: HashMap<i64, Entry>,
    next_tick: Option<SpawnHandle>,
    /// Promos whose stock changed since the last `promo.stock` frames.
    stock_dirty: HashSet<i64>,
}

impl PromoRegistry {
    /// A registry that loads the live promos when it starts.
    pub fn new(
        pool: DbPool,
        hold_for: Duration,
        notifier: Addr<Notifier>,
        hub: Addr<SessionHub>,
    ) -> PromoRegistry {
        PromoRegistry {
            pool,
            notifier,
            hub,
            hold_for,
            resync_every: RESYNC_EVERY,
            entries: HashMap::new(),
            next_tick: None,
            stock_dirty: HashSet::new(),
        }
    }

    /// Checks the snapshot against PostgreSQL every `interval` instead of
    /// [`RESYNC_EVERY`].
    pub fn resync_every(mut self, interval: Duration) -> PromoRegistry {
        self.resync_every = interval;
        self
    }

    /// Brings every actor in line with its promo's state now, then sleeps
    /// until the next start or end.
    fn reconcile(&mut self, ctx: &mut Context<Self>) {
        let now = Utc::now();
        let registry = ctx.address();
        for entry in self.entries.values_mut() {
            let promo = &entry.promo;
            let should_run = promo.is_active && promo.start_time <= now && now < promo.end_time;
            // Outside its window but with live holds (e.g. reloaded after a
            // restart): an actor must settle them.
            let must_settle = promo.is_active && !should_run && promo.held > 0;
            match (&entry.actor, should_run) {
                (None, true) => {
                    let actor = PromoActor::new(
                        promo.clone(),
                        self.hold_for,
                        self.pool.clone(),
                        registry.clone(),
                        self.hub.clone(),
                    );
                    entry.actor = Some(actor.start());
                    entry.end_told = false;
                    // Announced once per start; the notifier skips promos already told.
                    self.notifier.do_send(AnnounceStart {
                        promo: promo.clone(),
                    });
                }
                (None, false) if must_settle => {
                    let actor = PromoActor::new(
                        promo.clone(),
                        self.hold_for,
                        self.pool.clone(),
                        registry.clone(),
                        self.hub.clone(),
                    );
                    let actor = actor.start();
                    actor.do_send(Close);
                    entry.actor = Some(actor);
                }
                // Over or not yet started: live holds may still complete.
                (Some(actor), false) if promo.is_active => {
                    actor.do_send(Close);
                    tell_end_once(
                        &self.hub,
                        entry_end(&mut entry.end_told, promo.id, EndReason::Ended),
                    );
                }
                // Switched off: holds are released.
                (Some(actor), false) => {
                    actor.do_send(Deactivate);
                    tell_end_once(
                        &self.hub,
                        entry_end(&mut entry.end_told, promo.id, EndReason::Deactivated),
                    );
                }
                _ => {}
            }
        }
        // Over and without an actor: nothing left to keep.
        self.entries.retain(|_, entry| {
            entry.actor.is_some() || (entry.promo.is_active && entry.promo.end_time > now)
        });
        self.schedule_next(now, ctx);
    }

    /// Reloads the live promos from PostgreSQL and applies what changed, so a
    /// lost announcement or a change made by another instance (or to a promo's
    /// store or product) is picked up within one resync interval.
    fn resync(&mut self, ctx: &mut Context<Self>) {
        let pool = self.pool.clone();
        let load = async move { db::promos::load_live_promos(&pool).await };
        ctx.spawn(
            load.into_actor(self)
                .map(|loaded, registry, ctx| match loaded {
                    Ok(promos) => registry.apply_loaded(promos, ctx),
                    Err(error) => tracing::warn!(%error, "could not reload live promos"),
                }),
        );
    }

    fn apply_loaded(&mut self, promos: Vec<FlashPromo>, ctx: &mut Context<Self>) {
        let loaded: HashSet<i64> = promos.iter().map(|promo| promo.id).collect();
        for promo in promos {
            match self.entries.get_mut(&promo.id) {
                Some(entry) if same_terms(&entry.promo, &promo) => {}
                Some(entry) => {
                    if let Some(actor) = &entry.actor {
                        actor.do_send(Redefine {
                            promo: promo.clone(),
                        });
                    }
                    entry.set_promo(promo);
                }
                None => {
                    self.entries.insert(promo.id, Entry::new(promo));
                }
            }
        }
        // A start whose announcement failed part-way is announced again (the
        // daily claims absorb repeats); watchers are refreshed on the way.
        for entry in self.entries.values() {
            if entry.actor.is_some() && !entry.end_told {
                self.notifier.do_send(AnnounceStart {
                    promo: entry.promo.clone(),
                });
            }
        }
        // Deleted or over without holds: let their actors finish.
        for (promo_id, entry) in &self.entries {
            if !loaded.contains(promo_id) {
                if let Some(actor) = &entry.actor {
                    actor.do_send(Close);
                }
            }
        }
        self.reconcile(ctx);
    }

    fn schedule_next(&mut self, now: DateTime<Utc>, ctx: &mut Context<Self>) {
        if let Some(handle) = self.next_tick.take() {
            ctx.cancel_future(handle);
        }
        let next = self
            .entries
            .values()
            .flat_map(|entry| [entry.promo.start_time, entry.promo.end_time])
            .filter(|instant| *instant > now)
            .min();
        let delay = next
            .and_then(|instant| (instant - now).to_std().ok())
            .map_or(MAX_TICK, |delay| delay.min(MAX_TICK));
        self.next_tick = Some(ctx.run_later(delay, |registry, ctx| registry.reconcile(ctx)));
    }

    /// Sends one `promo.stock` frame per promo that changed since the last call.
    fn send_stock_frames(&mut self) {
        let now = Utc::now();
        for promo_id in std::mem::take(&mut self.stock_dirty) {
            let Some(entry) = self.entries.get(&promo_id) else {
                continue;
            };
            let promo = counted(&entry.promo, now);
            self.hub.do_send(StockFrame {
                promo_id,
                frame: ServerFrame::PromoStock {
                    promo_id,
                    available: promo.available,
                    held: promo.held,
                    sold: promo.sold,
                    status: promo.status,
                },
            });
        }
    }

    /// Entries whose promo runs now, without cloning any.
    fn running_now(&self, now: DateTime<Utc>) -> impl Iterator<Item = &Entry> + '_ {
        self.entries.values().filter(move |entry| {
            let promo = &entry.promo;
            status_at(
                promo.is_active,
                promo.start_time,
                promo.end_time,
                promo.quantity,
                promo.sold,
                now,
            ) == PromoStatus::Running
        })
    }

    fn actor_of(&self, promo_id: i64) -> Option<Addr<PromoActor>> {
        self.entries.get(&promo_id)?.actor.clone()
    }
}

impl Actor for PromoRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(16_384);
        self.resync(ctx);
        ctx.run_interval(self.resync_every, |registry, ctx| registry.resync(ctx));
    }
}

/// A promo was created or changed (after the change was committed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct PromoChanged {
    pub promo: FlashPromo,
}

/// A promo was deleted.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PromoRemoved {
    pub promo_id: i64,
}

/// A promo actor committed a change of its stock.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StockChanged {
    pub promo_id: i64,
    pub quantity: u32,
    pub held: u32,
    pub sold: u32,
}

/// A promo actor stopped.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PromoActorStopped {
    pub promo_id: i64,
}

/// One page of the promos running now, in id order.
#[derive(Message)]
#[rtype(result = "Listing<FlashPromo>")]
pub struct GetRunning {
    pub window: PageWindow,
}

/// One page of the running promos a member may reserve, nearest first, with
/// distances in km.
#[derive(Message)]
#[rtype(result = "Listing<(FlashPromo, f64)>")]
pub struct FindEligible {
    pub member: AudienceMember,
    pub window: PageWindow,
}

/// Routes a reservation to the promo's actor.
#[derive(Message)]
#[rtype(result = "Result<Reservation, RoutedRefusal>")]
pub struct ReserveUnit {
    pub promo_id: i64,
    pub reserve: Reserve,
}

/// Routes a completion or cancellation to the promo's actor.
#[derive(Message)]
#[rtype(result = "Result<(), RoutedRefusal>")]
pub struct ReleaseUnit {
    pub promo_id: i64,
    pub reservation_id: uuid::Uuid,
    pub sell: bool,
}

/// Asks the promo's actor (if any) to accept a lower quantity before it is written.
#[derive(Message)]
#[rtype(result = "Result<(), QuantityBelowCommitted>")]
pub struct PrepareQuantityChange {
    pub promo_id: i64,
    pub quantity: u32,
}

/// Why a routed message got no actor's answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutedRefusal {
    /// The registry has no actor for this promo (not running, or unknown).
    #[error("no running promo with this id")]
    NoActor,
    /// The actor refused or failed.
    #[error(transparent)]
    Refused(#[from] PromoRefusal),
}

impl Handler<PromoChanged> for PromoRegistry {
    type Result = ();

    fn handle(&mut self, message: PromoChanged, ctx: &mut Self::Context) {
        let promo = message.promo;
        match self.entries.get_mut(&promo.id) {
            Some(entry) => {
                if let Some(actor) = &entry.actor {
                    actor.do_send(Redefine {
                        promo: promo.clone(),
                    });
                }
                entry.set_promo(promo);
            }
            None => {
                self.entries.insert(promo.id, Entry::new(promo));
            }
        }
        self.reconcile(ctx);
    }
}

impl Handler<PromoRemoved> for PromoRegistry {
    type Result = ();

    fn handle(&mut self, message: PromoRemoved, ctx: &mut Self::Context) {
        match self.entries.remove(&message.promo_id) {
            // The actor tells watchers and holders as it stops.
            Some(Entry {
                actor: Some(actor), ..
            }) => actor.do_send(Shutdown),
            _ => self.hub.do_send(PromoEnded {
                promo_id: message.promo_id,
                reason: EndReason::Deleted,
                also: Vec::new(),
            }),
        }
        self.reconcile(ctx);
    }
}

impl Handler<StockChanged> for PromoRegistry {
    type Result = ();

    fn handle(&mut self, message: StockChanged, ctx: &mut Self::Context) {
        let Some(entry) = self.entries.get_mut(&message.promo_id) else {
            return;
        };
        entry.promo.quantity = message.quantity;
        entry.promo.held = message.held;
        entry.promo.sold = message.sold;
        let promo = counted(&entry.promo, Utc::now());
        // Watchers get the latest counts at most every STOCK_FRAME_EVERY per
        // promo, however fast reservations commit.
        if self.stock_dirty.insert(promo.id) && self.stock_dirty.len() == 1 {
            ctx.run_later(STOCK_FRAME_EVERY, |registry, _| {
                registry.send_stock_frames()
            });
        }
        if promo.status == PromoStatus::SoldOut {
            let end = entry_end(&mut entry.end_told, promo.id, EndReason::SoldOut);
            if end.is_some() {
                // The final counts go out before the watchers are let go.
                self.send_stock_frames();
            }
            tell_end_once(&self.hub, end);
        } else if promo.status == PromoStatus::Running && entry.end_told {
            // Running again (restocked): its audience watches it again.
            entry.end_told = false;
            self.notifier.do_send(AnnounceStart { promo });
        }
    }
}

impl Handler<PromoActorStopped> for PromoRegistry {
    type Result = ();

    fn handle(&mut self, message: PromoActorStopped, ctx: &mut Self::Context) {
        let Some(entry) = self.entries.get_mut(&message.promo_id) else {
            return;
        };
        entry.actor = None;
        let now = Utc::now();
        let should_run =
            entry.promo.is_active && entry.promo.start_time <= now && now < entry.promo.end_time;
        if should_run {
            // It stopped while it should run (its stock could not be loaded): retry shortly.
            ctx.run_later(RESTART_DELAY, |registry, ctx| registry.reconcile(ctx));
        } else {
            self.reconcile(ctx);
        }
    }
}

impl Handler<GetRunning> for PromoRegistry {
    type Result = MessageResult<GetRunning>;

    fn handle(&mut self, message: GetRunning, _: &mut Self::Context) -> Self::Result {
        let now = Utc::now();
        let mut running: Vec<&FlashPromo> =
            self.running_now(now).map(|entry| &entry.promo).collect();
        running.sort_unstable_by_key(|promo| promo.id);
        MessageResult(page_of(running, message.window, |promo| {
            counted(promo, now)
        }))
    }
}

impl Handler<FindEligible> for PromoRegistry {
    type Result = MessageResult<FindEligible>;

    /// Segment and distance checks on every running promo, then only the
    /// requested page is ordered in full and cloned.
    fn handle(&mut self, message: FindEligible, _: &mut Self::Context) -> Self::Result {
        let now = Utc::now();
        let member = &message.member;
        let Some(origin) = member.location.map(GeoPoint::unit_vector) else {
            return MessageResult(Listing {
                total: 0,
                items: Vec::new(),
            });
        };
        let mut eligible: Vec<(&FlashPromo, f64)> = self
            .running_now(now)
            .filter(|entry| {
                entry
                    .promo
                    .segment_ids()
                    .any(|id| member.segment_ids.contains(&id))
            })
            .map(|entry| {
                (
                    &entry.promo,
                    chord_between(origin, entry.store),
                    entry.radius_chord,
                )
            })
            .filter(|(_, chord, radius)| chord <= radius)
            .map(|(promo, chord, _)| (promo, chord))
            .collect();
        let nearest_first = |a: &(&FlashPromo, f64), b: &(&FlashPromo, f64)| {
            a.1.total_cmp(&b.1).then(a.0.id.cmp(&b.0.id))
        };
        let needed = usize::try_from(message.window.offset.saturating_add(message.window.limit))
            .unwrap_or(usize::MAX);
        if needed < eligible.len() {
            eligible.select_nth_unstable_by(needed, nearest_first);
            eligible[..needed].sort_unstable_by(nearest_first);
        } else {
            eligible.sort_unstable_by(nearest_first);
        }
        MessageResult(page_of(eligible, message.window, |(promo, chord)| {
            (counted(promo, now), km_from_chord(chord))
        }))
    }
}

/// The end to announce for an entry, unless it was already announced.
fn entry_end(told: &mut bool, promo_id: i64, reason: EndReason) -> Option<PromoEnded> {
    if std::mem::replace(told, true) {
        return None;
    }
    Some(PromoEnded {
        promo_id,
        reason,
        also: Vec::new(),
    })
}

fn tell_end_once(hub: &Addr<SessionHub>, end: Option<PromoEnded>) {
    if let Some(end) = end {
        hub.do_send(end);
    }
}

/// True when two reads of a promo agree on everything but the live counts.
fn same_terms(known: &FlashPromo, loaded: &FlashPromo) -> bool {
    let counts = |promo: &FlashPromo| promo.clone().with_counts(0, 0, promo.created_at);
    counts(known) == counts(loaded)
}

/// A promo with its counts and status as of `now`.
fn counted(promo: &FlashPromo, now: DateTime<Utc>) -> FlashPromo {
    promo.clone().with_counts(promo.held, promo.sold, now)
}

/// Cuts one page out of a sorted listing, cloning only that page.
fn page_of<T, U>(items: Vec<T>, window: PageWindow, finish: impl Fn(T) -> U) -> Listing<U> {
    let total = i64::try_from(items.len()).unwrap_or(i64::MAX);
    let page = items
        .into_iter()
        .skip(usize::try_from(window.offset).unwrap_or(usize::MAX))
        .take(usize::try_from(window.limit).unwrap_or(0))
        .map(finish)
        .collect();
    Listing { total, items: page }
}

impl Handler<ReserveUnit> for PromoRegistry {
    type Result = ResponseFuture<Result<Reservation, RoutedRefusal>>;

    fn handle(&mut self, message: ReserveUnit, _: &mut Self::Context) -> Self::Result {
        let Some(actor) = self.actor_of(message.promo_id) else {
            return Box::pin(ready(Err(RoutedRefusal::NoActor)));
        };
        Box::pin(async move {
            match actor.send(message.reserve).await {
                Ok(answer) => answer.map_err(RoutedRefusal::from),
                Err(_) => Err(RoutedRefusal::Refused(PromoRefusal::Unavailable)),
            }
        })
    }
}

impl Handler<ReleaseUnit> for PromoRegistry {
    type Result = ResponseFuture<Result<(), RoutedRefusal>>;

    fn handle(&mut self, message: ReleaseUnit, _: &mut Self::Context) -> Self::Result {
        let Some(actor) = self.actor_of(message.promo_id) else {
            return Box::pin(ready(Err(RoutedRefusal::NoActor)));
        };
        let reservation_id = message.reservation_id;
        Box::pin(async move {
            let answer = if message.sell {
                actor.send(Complete { reservation_id }).await
            } else {
                actor.send(Cancel { reservation_id }).await
            };
            match answer {
                Ok(answer) => answer.map_err(RoutedRefusal::from),
                Err(_) => Err(RoutedRefusal::Refused(PromoRefusal::Unavailable)),
            }
        })
    }
}

impl Handler<PrepareQuantityChange> for PromoRegistry {
    type Result = ResponseFuture<Result<(), QuantityBelowCommitted>>;

    fn handle(&mut self, message: PrepareQuantityChange, _: &mut Self::Context) -> Self::Result {
        let Some(actor) = self.actor_of(message.promo_id) else {
            return Box::pin(ready(Ok(())));
        };
        Box::pin(async move {
            actor
                .send(PrepareQuantity {
                    quantity: message.quantity,
                })
                .await
                .unwrap_or(Ok(()))
        })
    }
}
