//! `PromoRegistry`: knows every live promo, runs one [`PromoActor`] per
//! running promo, and publishes what request handlers read.
//!
//! The registry is the only writer of the [`Catalogue`] (terms of each promo
//! that is active and not over, loaded at boot and kept current by the HTTP
//! handlers' [`PromoChanged`] and [`PromoRemoved`] and the actors'
//! [`StockChanged`]). After each change of terms or lifecycle, before its
//! handler returns, it publishes a new immutable [`Snapshot`] through
//! [`LivePromos`], which `running/`, `eligible/` and reservation routing read
//! with no mailbox hop; live counts reach readers through each promo's
//! [`LiveCounts`], which its actor writes itself. A single timer is kept for
//! the next start or end; at each, [`lifecycle::Step`] decides which actors to
//! start, close or deactivate, so a promo runs within moments of its
//! `start_time` and stops at its `end_time` — for a daily promo, of each
//! occurrence's start and end. Every occurrence start is announced; an actor
//! still settling the last occurrence's holds is moved on to the new one. Watchers get `promo.stock` frames
//! at most every [`STOCK_FRAME_EVERY`] per promo.
//!
//! Every resync interval the catalogue is checked against PostgreSQL
//! (`resync.rs`): at most one resync is in flight, each first settles the
//! `held` rows nobody else will, and a load never overrides what changed here
//! after it began (the catalogue's generations).
//!
//! Reads and reservations never pass through this mailbox: they use the
//! published [`LivePromos`]; only [`PrepareQuantityChange`] (`routing.rs`)
//! is routed to a promo's actor.

mod catalogue;
mod counts;
mod lifecycle;
mod ownership;
mod resync;
mod routing;
mod snapshot;
mod spatial;

use std::collections::HashSet;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};

use self::catalogue::{Catalogue, Entry, Redefinition};
pub use self::counts::{Counts, LiveCounts};
use self::lifecycle::{ResyncGate, Step};
pub use self::ownership::{LeaseRefused, RemoteStock};
use self::ownership::{Ownership, Permit};
pub use self::resync::ResyncNow;
pub use self::routing::PrepareQuantityChange;
pub use self::snapshot::{LivePromos, Snapshot};
use super::notifier::{AnnounceStart, Notifier};
use super::promo::{Close, Deactivate, PromoActor, Redefine, Shutdown};
use super::session_hub::{PromoEnded, SessionHub, StockFrame};
use super::sessions::Sessions;
use crate::actors::lease_keeper::{LeaseKeeper, Subscribe};
use crate::cluster::events::ClusterEvent;
use crate::cluster::Cluster;
use crate::db::leases::{Fence, LeaseKind};
use crate::db::DbPool;
use crate::domain::frames::{EndReason, ServerFrame};
use crate::domain::promo::{FlashPromo, PromoStatus};
use crate::telemetry::prometheus;

/// The longest the registry sleeps between checks, whatever the schedule says.
const MAX_TICK: Duration = Duration::from_secs(30);
/// The longest a `promo.stock` frame waits, so bursts of changes become one frame.
const STOCK_FRAME_EVERY: Duration = Duration::from_millis(100);
/// How often the catalogue is checked against PostgreSQL, unless configured.
const RESYNC_EVERY: Duration = Duration::from_secs(30);
/// How soon to retry after a promo actor could not start (database away).
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// What a promo actor is started with.
struct ActorLinks {
    pool: DbPool,
    hold_for: Duration,
    /// This instance's hub: stock and end frames (each instance's registry
    /// sends its own).
    hub: Addr<SessionHub>,
    /// Where the actors' `reservation.*` frames go, on whichever instance.
    sessions: Sessions,
}

impl ActorLinks {
    /// Starts an actor for the promo of `entry`, sharing its live counts,
    /// writing under `fence` (cluster mode).
    fn start(
        &self,
        entry: &Entry<Addr<PromoActor>>,
        now: DateTime<Utc>,
        registry: Addr<PromoRegistry>,
        fence: Option<Fence>,
    ) -> Addr<PromoActor> {
        let (pool, sessions) = (self.pool.clone(), self.sessions.clone());
        let counts = entry.counts.clone();
        PromoActor::new(
            entry.current(now),
            self.hold_for,
            pool,
            registry,
            sessions,
            counts,
            fence,
        )
        .start()
    }
}

/// The registry of live promos.
pub struct PromoRegistry {
    links: ActorLinks,
    notifier: Addr<Notifier>,
    resync_every: Duration,
    catalogue: Catalogue<Addr<PromoActor>>,
    published: LivePromos,
    next_tick: Option<SpawnHandle>,
    /// Promos whose stock changed since the last `promo.stock` frames.
    stock_dirty: HashSet<i64>,
    resyncs: ResyncGate,
    /// This registry's share of the running-promos gauge.
    running: prometheus::GaugeShare,
    /// Which promos it runs actors for.
    ownership: Ownership,
}

impl PromoRegistry {
    /// A registry that loads the live promos when it starts.
    pub fn new(
        pool: DbPool,
        hold_for: Duration,
        notifier: Addr<Notifier>,
        sessions: Sessions,
    ) -> PromoRegistry {
        PromoRegistry {
            links: ActorLinks {
                pool,
                hold_for,
                hub: sessions.local().clone(),
                sessions,
            },
            notifier,
            resync_every: RESYNC_EVERY,
            catalogue: Catalogue::default(),
            published: LivePromos::new(),
            next_tick: None,
            stock_dirty: HashSet::new(),
            resyncs: ResyncGate::default(),
            running: prometheus::GaugeShare::new(prometheus::RUNNING_PROMOS),
            ownership: Ownership::Alone,
        }
    }

    /// Cluster mode: runs actors only for the promos whose lease `keeper`
    /// holds, and tells the other instances of stock changes.
    pub fn in_cluster(mut self, keeper: Addr<LeaseKeeper>, cluster: Cluster) -> PromoRegistry {
        self.ownership = Ownership::leased(keeper, cluster);
        self
    }

    /// Checks the catalogue against PostgreSQL every `interval` instead of
    /// [`RESYNC_EVERY`].
    pub fn resync_every(mut self, interval: Duration) -> PromoRegistry {
        self.resync_every = interval;
        self
    }

    /// What this registry publishes (take it before starting the actor).
    pub fn live_promos(&self) -> LivePromos {
        self.published.clone()
    }

    /// Brings every actor in line with its promo's state now, sleeps until
    /// the next start or end, and publishes the result.
    fn reconcile(&mut self, ctx: &mut Context<Self>) {
        let now = Utc::now();
        let registry = ctx.address();
        let mut wanted = HashSet::new();
        for entry in self.catalogue.iter_mut() {
            let permit = self.ownership.permit(entry.promo.id);
            if take_step(&self.links, &self.notifier, entry, &registry, now, permit) {
                wanted.insert(entry.promo.id);
            }
        }
        self.ownership.want(wanted);
        self.catalogue.retain_live(now);
        self.schedule_next(now, ctx);
        self.publish(now);
    }

    /// Swaps in a snapshot of the catalogue as it stands.
    fn publish(&self, now: DateTime<Utc>) {
        let snapshot = Snapshot::build(self.catalogue.iter(), now);
        self.running.set(snapshot.running_count());
        self.published.publish(snapshot);
    }

    /// Hands new terms to the actors of promos that changed.
    fn redefine(redefined: impl IntoIterator<Item = Redefinition<Addr<PromoActor>>>) {
        for Redefinition { actor, promo } in redefined {
            actor.do_send(Redefine { promo });
        }
    }

    /// Forgets a deleted promo at once: its actor stops and tells its
    /// watchers and holders, or the watchers are told here.
    fn remove(&mut self, promo_id: i64) {
        let actor = self.catalogue.remove(promo_id);
        self.forget_deleted(promo_id, actor);
    }

    fn forget_deleted(&mut self, promo_id: i64, actor: Option<Addr<PromoActor>>) {
        self.stock_dirty.remove(&promo_id);
        match actor {
            Some(actor) => actor.do_send(Shutdown),
            None => self.links.hub.do_send(ended(promo_id, EndReason::Deleted)),
        }
    }

    fn schedule_next(&mut self, now: DateTime<Utc>, ctx: &mut Context<Self>) {
        if let Some(handle) = self.next_tick.take() {
            ctx.cancel_future(handle);
        }
        let promos = self.catalogue.iter().map(|entry| &*entry.promo);
        let delay = lifecycle::next_check(promos, now, MAX_TICK);
        self.next_tick = Some(ctx.run_later(delay, |registry, ctx| registry.reconcile(ctx)));
    }

    /// Sends one `promo.stock` frame per promo that changed since the last call.
    fn send_stock_frames(&mut self) {
        let now = Utc::now();
        for promo_id in std::mem::take(&mut self.stock_dirty) {
            let Some(entry) = self.catalogue.get(promo_id) else {
                continue;
            };
            let promo = entry.current(now);
            self.links.hub.do_send(StockFrame {
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
}

/// Starts, closes or deactivates the actor of one entry as its
/// [`Step`] at `now` says, and tells watchers of an end once. A promo this
/// instance may not run only has its watchers told. True when the promo
/// needs an actor (somewhere).
fn take_step(
    links: &ActorLinks,
    notifier: &Addr<Notifier>,
    entry: &mut Entry<Addr<PromoActor>>,
    registry: &Addr<PromoRegistry>,
    now: DateTime<Utc>,
    permit: Permit,
) -> bool {
    // Without an actor, live holds of any occurrence need one to settle
    // them, not only those of the occurrence shown (a later one).
    let held = entry.counts.load().held.max(entry.promo.held_any);
    let started = entry
        .actor
        .as_ref()
        .map(|_| entry.occurrence.unwrap_or(DateTime::<Utc>::MIN_UTC));
    let current = entry
        .promo
        .occurrence_at(now)
        .map(|occurrence| occurrence.start);
    let step = Step::for_occurrence(&entry.promo, held, started, now);
    let needs_actor =
        entry.actor.is_some() || matches!(step, Step::Start | Step::Begin | Step::Settle);
    let fence = match permit {
        Permit::Run(fence) => fence,
        Permit::Elsewhere => {
            follow_elsewhere(links, entry, now, current);
            return needs_actor;
        }
    };
    let end = match step {
        Step::Start => {
            let promo = entry.current(now);
            entry.actor = Some(links.start(entry, now, registry.clone(), fence));
            entry.end_told = false;
            entry.occurrence = current;
            // Announced once per start; the notifier skips promos already told.
            notifier.do_send(AnnounceStart { promo });
            None
        }
        Step::Begin => {
            if entry.tell_end() {
                // The last occurrence ended at this very start (or its end was missed).
                links.hub.do_send(ended(entry.promo.id, EndReason::Ended));
            }
            let terms = FlashPromo::clone(&entry.promo);
            entry.actor.iter().for_each(|actor| {
                actor.do_send(Redefine {
                    promo: terms.clone(),
                })
            });
            entry.end_told = false;
            entry.occurrence = current;
            notifier.do_send(AnnounceStart {
                promo: entry.current(now),
            });
            None
        }
        Step::Settle => {
            let actor = links.start(entry, now, registry.clone(), fence);
            actor.do_send(Close);
            entry.actor = Some(actor);
            entry.occurrence = None;
            None
        }
        Step::Close => {
            entry.actor.iter().for_each(|actor| actor.do_send(Close));
            entry.tell_end().then_some(EndReason::Ended)
        }
        Step::Deactivate => {
            entry
                .actor
                .iter()
                .for_each(|actor| actor.do_send(Deactivate));
            entry.tell_end().then_some(EndReason::Deactivated)
        }
        Step::Keep => None,
    };
    if let Some(reason) = end {
        links.hub.do_send(ended(entry.promo.id, reason));
    }
    needs_actor
}

/// Follows a promo another instance runs, by its schedule (the steps of
/// [`Step`] are about an actor this instance does not have): this
/// instance's watchers are told once when an occurrence ends, when the
/// promo is switched off, or when a new occurrence replaces the last one.
fn follow_elsewhere(
    links: &ActorLinks,
    entry: &mut Entry<Addr<PromoActor>>,
    now: DateTime<Utc>,
    current: Option<DateTime<Utc>>,
) {
    let promo_id = entry.promo.id;
    if entry.promo.runs_at(now) {
        if entry.occurrence == current {
            return;
        }
        if entry.occurrence.is_some() && entry.tell_end() {
            links.hub.do_send(ended(promo_id, EndReason::Ended));
        }
        entry.end_told = false;
        entry.occurrence = current;
        return;
    }
    if entry.occurrence.take().is_some() && entry.tell_end() {
        let reason = if entry.promo.is_active {
            EndReason::Ended
        } else {
            EndReason::Deactivated
        };
        links.hub.do_send(ended(promo_id, reason));
    }
}

/// The end of a promo, for its watchers.
fn ended(promo_id: i64, reason: EndReason) -> PromoEnded {
    PromoEnded {
        promo_id,
        reason,
        also: Vec::new(),
    }
}

impl Actor for PromoRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(16_384);
        if let Ownership::Leased(leased) = &self.ownership {
            leased.keeper().do_send(Subscribe {
                kind: LeaseKind::Promo,
                recipient: ctx.address().recipient(),
            });
        }
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

/// A promo actor committed a change of its stock (and wrote its
/// [`LiveCounts`] before sending this).
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
    /// The actor that stopped (a newer one may run already).
    pub actor: Addr<PromoActor>,
}

impl Handler<PromoChanged> for PromoRegistry {
    type Result = ();

    fn handle(&mut self, message: PromoChanged, ctx: &mut Self::Context) {
        Self::redefine(self.catalogue.change(message.promo));
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

    /// Nothing is republished: readers see the counts the actor wrote.
    fn handle(&mut self, message: StockChanged, ctx: &mut Self::Context) {
        self.counts_changed(message.promo_id, true, ctx);
    }
}

impl PromoRegistry {
    /// A promo's counts changed (written to its live counts already): its
    /// watchers hear of it, and, when this instance decided it, the others.
    fn counts_changed(&mut self, promo_id: i64, decided_here: bool, ctx: &mut Context<Self>) {
        let cluster = self.ownership.cluster().cloned();
        let Some(entry) = self.catalogue.counts_reported(promo_id) else {
            return;
        };
        if let (Some(cluster), true) = (cluster, decided_here) {
            let counts = entry.counts.load();
            cluster.publish(ClusterEvent::PromoStock {
                promo_id,
                quantity: counts.quantity,
                held: counts.held,
                sold: counts.sold,
                sold_total: counts.sold_total,
            });
        }
        let promo = entry.current(Utc::now());
        let sold_out = promo.status == PromoStatus::SoldOut && entry.tell_end();
        let restocked = promo.status == PromoStatus::Running && entry.end_told;
        if restocked {
            entry.end_told = false;
        }
        // Watchers get the latest counts at most every STOCK_FRAME_EVERY per
        // promo, however fast reservations commit.
        if self.stock_dirty.insert(promo.id) && self.stock_dirty.len() == 1 {
            ctx.run_later(STOCK_FRAME_EVERY, |registry, _| {
                registry.send_stock_frames()
            });
        }
        if sold_out || restocked {
            // Selling out or back in stock changes what runs.
            self.running.set(self.published.running_count());
        }
        if sold_out {
            // The final counts go out before the watchers are let go.
            self.send_stock_frames();
            self.links.hub.do_send(ended(promo.id, EndReason::SoldOut));
        } else if restocked && decided_here {
            // Running again: its audience watches it again (its owner tells them).
            self.notifier.do_send(AnnounceStart { promo });
        }
    }
}

impl Handler<PromoActorStopped> for PromoRegistry {
    type Result = ();

    fn handle(&mut self, message: PromoActorStopped, ctx: &mut Self::Context) {
        let Some(entry) = self.catalogue.get_mut(message.promo_id) else {
            return;
        };
        if entry.actor.as_ref() != Some(&message.actor) {
            // A former actor (it stepped down, or was replaced).
            return;
        }
        entry.actor = None;
        // It settled every hold it had: none is left to settle.
        std::sync::Arc::make_mut(&mut entry.promo).held_any = 0;
        let now = Utc::now();
        if entry.promo.runs_at(now) {
            // It stopped while it should run (its stock could not be loaded): retry shortly.
            ctx.run_later(RESTART_DELAY, |registry, ctx| registry.reconcile(ctx));
            self.publish(now);
        } else {
            self.reconcile(ctx);
        }
    }
}
