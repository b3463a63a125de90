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
//!
//! Every resync interval the snapshot is checked against PostgreSQL. At most
//! one resync is in flight (one asked for meanwhile runs right after it), and
//! each knows the registry generation it started at: every local change
//! (create, edit, delete, stock report) bumps the generation, and a load never
//! overrides a promo changed after the load began, nor brings back one deleted
//! since. A known promo missing from a load was deleted elsewhere and goes at
//! once. Each resync first settles the `held` rows nobody else will (run out,
//! or of a switched-off promo), leaving alone those of promos a live actor owns.

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
/// The longest one resync may take before the next may start.
const LOAD_TIMEOUT: Duration = Duration::from_secs(60);

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
    /// When the registry last changed it on its own knowledge.
    changed: Changed,
}

impl Entry {
    fn new(promo: FlashPromo) -> Entry {
        let mut entry = Entry {
            store: [0.0; 3],
            radius_chord: 0.0,
            promo,
            actor: None,
            end_told: false,
            changed: Changed::default(),
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
    generations: Generations,
    resyncs: ResyncGate,
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
            generations: Generations::default(),
            resyncs: ResyncGate::default(),
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
    /// store or product) is picked up within one resync interval. Asked for
    /// while one is in flight, it runs once more after that one.
    fn resync(&mut self, ctx: &mut Context<Self>) {
        if self.resyncs.request() {
            self.start_resync(ctx);
        }
    }

    fn start_resync(&mut self, ctx: &mut Context<Self>) {
        let started = self.generations.current;
        let known: Vec<i64> = self.entries.keys().copied().collect();
        let owned: Vec<i64> = self
            .entries
            .iter()
            .filter(|(_, entry)| entry.actor.is_some())
            .map(|(promo_id, _)| *promo_id)
            .collect();
        let pool = self.pool.clone();
        let load = async move {
            let settled = db::reservations::settle_stale_holds(&pool, &owned).await?;
            let promos = db::promos::load_live_promos(&pool, &known).await?;
            Ok::<_, db::DbError>((settled, promos))
        };
        let load = async move {
            tokio::time::timeout(LOAD_TIMEOUT, load)
                .await
                .unwrap_or_else(|_| Err(db::DbError::Unavailable("resync timed out".into())))
        };
        ctx.spawn(load.into_actor(self).map(move |loaded, registry, ctx| {
            match loaded {
                Ok((settled, promos)) => {
                    if settled > 0 {
                        tracing::info!(settled, "stale holds settled");
                    }
                    registry.apply_loaded(promos, started, ctx);
                }
                Err(error) => tracing::warn!(%error, "could not reload live promos"),
            }
            if registry.resyncs.finish() {
                registry.start_resync(ctx);
            }
        }));
    }

    /// Applies a load that began at generation `started`.
    fn apply_loaded(&mut self, promos: Vec<FlashPromo>, started: u64, ctx: &mut Context<Self>) {
        let loaded: HashSet<i64> = promos.iter().map(|promo| promo.id).collect();
        for promo in promos {
            self.take_loaded(promo, started);
        }
        // Known when the load began and missing from it: deleted elsewhere.
        let deleted: Vec<i64> = self
            .entries
            .iter()
            .filter(|(promo_id, entry)| {
                !loaded.contains(promo_id) && entry.changed.gone_if_missing(started)
            })
            .map(|(promo_id, _)| *promo_id)
            .collect();
        for promo_id in deleted {
            self.remove(promo_id);
        }
        self.generations.applied(started);
        // A start whose announcement failed part-way is announced again (the
        // daily claims absorb repeats); watchers are refreshed on the way.
        // Only promos that still run once the load is applied, and not those
        // the reconcile below starts (it announces them itself).
        let announced: Vec<i64> = self
            .entries
            .iter()
            .filter(|(_, entry)| entry.actor.is_some() && !entry.end_told)
            .map(|(promo_id, _)| *promo_id)
            .collect();
        self.reconcile(ctx);
        let now = Utc::now();
        for promo_id in announced {
            let Some(entry) = self.entries.get(&promo_id) else {
                continue;
            };
            let promo = counted(&entry.promo, now);
            if entry.actor.is_some() && !entry.end_told && promo.status == PromoStatus::Running {
                self.notifier.do_send(AnnounceStart { promo });
            }
        }
    }

    /// Takes one promo of a load that began at generation `started`, unless
    /// the registry changed or deleted it since.
    fn take_loaded(&mut self, promo: FlashPromo, started: u64) {
        if self.generations.is_removed(promo.id) {
            return;
        }
        let Some(entry) = self.entries.get_mut(&promo.id) else {
            self.entries.insert(promo.id, Entry::new(promo));
            return;
        };
        let promo = match entry.changed.verdict(started, entry.actor.is_some()) {
            Loaded::Ignore => return,
            Loaded::Take => promo,
            Loaded::TakeTerms => promo.with_counts(entry.promo.held, entry.promo.sold, Utc::now()),
        };
        if same_terms(&entry.promo, &promo) {
            entry.set_promo(promo);
            return;
        }
        if let Some(actor) = &entry.actor {
            actor.do_send(Redefine {
                promo: promo.clone(),
            });
        }
        entry.set_promo(promo);
    }

    /// Forgets a deleted promo at once: its actor stops and tells its
    /// watchers and holders, or the watchers are told here.
    fn remove(&mut self, promo_id: i64) {
        self.generations.remove(promo_id);
        self.stock_dirty.remove(&promo_id);
        match self.entries.remove(&promo_id) {
            Some(Entry {
                actor: Some(actor), ..
            }) => actor.do_send(Shutdown),
            _ => self.hub.do_send(PromoEnded {
                promo_id,
                reason: EndReason::Deleted,
                also: Vec::new(),
            }),
        }
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
#[rtype(result = "Result<Reservation, RoutedRefusal>")]
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
        // Read before a delete that was handled first.
        if self.generations.is_removed(promo.id) {
            return;
        }
        let generation = self.generations.bump();
        match self.entries.get_mut(&promo.id) {
            Some(entry) => {
                entry.changed.terms = generation;
                let promo = match &entry.actor {
                    Some(actor) => {
                        actor.do_send(Redefine {
                            promo: promo.clone(),
                        });
                        // The actor's counts are newer than any read.
                        promo.with_counts(entry.promo.held, entry.promo.sold, Utc::now())
                    }
                    None => promo,
                };
                entry.set_promo(promo);
            }
            None => {
                let mut entry = Entry::new(promo);
                entry.changed.terms = generation;
                self.entries.insert(entry.promo.id, entry);
            }
        }
        self.reconcile(ctx);
    }
}

impl Handler<PromoRemoved> for PromoRegistry {
    type Result = ();

    fn handle(&mut self, message: PromoRemoved, ctx: &mut Self::Context) {
        self.remove(message.promo_id);
        self.reconcile(ctx);
    }
}

impl Handler<StockChanged> for PromoRegistry {
    type Result = ();

    fn handle(&mut self, message: StockChanged, ctx: &mut Self::Context) {
        let Some(entry) = self.entries.get_mut(&message.promo_id) else {
            return;
        };
        entry.changed.counts = self.generations.bump();
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

/// When the registry last changed a promo on its own knowledge (an HTTP
/// change, a stock report), as registry generations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Changed {
    terms: u64,
    counts: u64,
}

/// What a load may do to a promo it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loaded {
    /// Terms and counts.
    Take,
    /// The terms only: the counts in memory are newer.
    TakeTerms,
    /// Nothing: the promo changed after the load began.
    Ignore,
}

impl Changed {
    /// What a load that began at generation `started` may take; a live actor
    /// owns the counts of its promo.
    fn verdict(self, started: u64, has_actor: bool) -> Loaded {
        if self.terms > started {
            Loaded::Ignore
        } else if has_actor || self.counts > started {
            Loaded::TakeTerms
        } else {
            Loaded::Take
        }
    }

    /// Whether a promo known when a load began, but missing from it, was
    /// deleted (not created or changed after the load read the database).
    fn gone_if_missing(self, started: u64) -> bool {
        self.terms <= started
    }
}

/// Counts local changes to promos, and remembers deleted ones until no load
/// that read them before their removal can still be applied.
#[derive(Debug, Default)]
struct Generations {
    /// Bumped by every local change; a load remembers the value it began at.
    current: u64,
    /// Deleted promos and the generation of their removal.
    removed: HashMap<i64, u64>,
}

impl Generations {
    /// A new generation, for one local change.
    fn bump(&mut self) -> u64 {
        self.current += 1;
        self.current
    }

    /// The promo was deleted: no load nor late change may bring it back.
    fn remove(&mut self, promo_id: i64) {
        let generation = self.bump();
        self.removed.insert(promo_id, generation);
    }

    fn is_removed(&self, promo_id: i64) -> bool {
        self.removed.contains_key(&promo_id)
    }

    /// A load that began at `started` was applied: removals before it are
    /// forgotten (no load still in flight read those promos).
    fn applied(&mut self, started: u64) {
        self.removed.retain(|_, removed_at| *removed_at > started);
    }
}

/// At most one resync in flight; asking for one meanwhile asks for one more
/// right after it (however often it was asked).
#[derive(Debug, Default)]
struct ResyncGate {
    in_flight: bool,
    again: bool,
}

impl ResyncGate {
    /// True when a resync may start now; otherwise one more is owed.
    fn request(&mut self) -> bool {
        if self.in_flight {
            self.again = true;
            return false;
        }
        self.in_flight = true;
        true
    }

    /// The resync in flight ended: true when the one owed starts now.
    fn finish(&mut self) -> bool {
        self.in_flight = std::mem::take(&mut self.again);
        self.in_flight
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
                // Not delivered: the actor stopped before it read the message.
                Err(_) => Err(RoutedRefusal::NoActor),
            }
        })
    }
}

impl Handler<ReleaseUnit> for PromoRegistry {
    type Result = ResponseFuture<Result<Reservation, RoutedRefusal>>;

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
                // Not delivered: the actor stopped before it read the message.
                Err(_) => Err(RoutedRefusal::NoActor),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resync_asked_for_while_one_runs_waits_and_many_asks_make_one_more() {
        let mut gate = ResyncGate::default();
        assert!(gate.request());
        assert!(!gate.request());
        assert!(!gate.request());
        assert!(gate.finish(), "one more is owed");
        assert!(!gate.request(), "the owed one is in flight");
        assert!(gate.finish(), "asked for again while the owed one ran");
        assert!(!gate.finish());
        assert!(gate.request(), "idle again");
    }

    #[test]
    fn a_deleted_promo_stays_removed_until_a_load_begun_after_its_removal_is_applied() {
        let mut generations = Generations::default();
        let started_before = generations.bump();
        generations.remove(8);
        let started_after = generations.current;
        generations.applied(started_before);
        assert!(generations.is_removed(8), "the old load read it");
        generations.applied(started_after);
        assert!(!generations.is_removed(8));
    }

    #[test]
    fn a_load_never_overrides_terms_changed_after_it_began() {
        let changed = Changed {
            terms: 5,
            counts: 0,
        };
        assert_eq!(changed.verdict(4, false), Loaded::Ignore);
        assert_eq!(changed.verdict(5, false), Loaded::Take);
        assert_eq!(changed.verdict(9, false), Loaded::Take);
    }

    #[test]
    fn a_load_keeps_counts_reported_after_it_began_or_owned_by_an_actor() {
        let changed = Changed {
            terms: 1,
            counts: 7,
        };
        assert_eq!(changed.verdict(6, false), Loaded::TakeTerms);
        assert_eq!(changed.verdict(7, false), Loaded::Take);
        assert_eq!(changed.verdict(7, true), Loaded::TakeTerms);
    }

    #[test]
    fn a_promo_missing_from_a_load_is_deleted_unless_created_or_changed_after_it_began() {
        let created_later = Changed {
            terms: 3,
            counts: 0,
        };
        assert!(!created_later.gone_if_missing(2));
        assert!(created_later.gone_if_missing(3));
        let traded_later = Changed {
            terms: 1,
            counts: 9,
        };
        assert!(
            traded_later.gone_if_missing(2),
            "its stock says nothing of its row"
        );
    }
}
