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

use std::collections::HashMap;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use futures_util::future::ready;

use super::promo::{
    Cancel, Close, Complete, Deactivate, PrepareQuantity, PromoActor, PromoRefusal, Redefine,
    Reserve, Shutdown,
};
use crate::db::{self, DbPool};
use crate::domain::eligibility::{check_eligibility, AudienceMember};
use crate::domain::promo::{FlashPromo, PromoStatus};
use crate::domain::reservation::Reservation;
use crate::domain::stock::QuantityBelowCommitted;

/// The longest the registry sleeps between checks, whatever the schedule says.
const MAX_TICK: Duration = Duration::from_secs(30);
/// How soon to retry after a promo actor could not start (database away).
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// What the registry keeps per promo.
struct Entry {
    promo: FlashPromo,
    actor: Option<Addr<PromoActor>>,
}

/// The registry of live promos.
pub struct PromoRegistry {
    pool: DbPool,
    hold_for: Duration,
    entries: HashMap<i64, Entry>,
    next_tick: Option<SpawnHandle>,
}

impl PromoRegistry {
    /// A registry that loads the live promos when it starts.
    pub fn new(pool: DbPool, hold_for: Duration) -> PromoRegistry {
        PromoRegistry {
            pool,
            hold_for,
            entries: HashMap::new(),
            next_tick: None,
        }
    }

    /// Brings every actor in line with its promo's state now, then sleeps
    /// until the next start or end.
    fn reconcile(&mut self, ctx: &mut Context<Self>) {
        let now = Utc::now();
        let registry = ctx.address();
        for entry in self.entries.values_mut() {
            let promo = &entry.promo;
            let should_run = promo.is_active && promo.start_time <= now && now < promo.end_time;
            match (&entry.actor, should_run) {
                (None, true) => {
                    let actor = PromoActor::new(
                        promo.clone(),
                        self.hold_for,
                        self.pool.clone(),
                        registry.clone(),
                    );
                    entry.actor = Some(actor.start());
                }
                (Some(actor), false) if promo.is_active && now >= promo.end_time => {
                    actor.do_send(Close)
                }
                (Some(actor), false) => actor.do_send(Deactivate),
                _ => {}
            }
        }
        // Over and without an actor: nothing left to keep.
        self.entries.retain(|_, entry| {
            entry.actor.is_some() || (entry.promo.is_active && entry.promo.end_time > now)
        });
        self.schedule_next(now, ctx);
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

    fn snapshot(&self, now: DateTime<Utc>) -> impl Iterator<Item = FlashPromo> + '_ {
        self.entries.values().map(move |entry| {
            entry
                .promo
                .clone()
                .with_counts(entry.promo.held, entry.promo.sold, now)
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
        let pool = self.pool.clone();
        let load = async move { db::promos::load_live_promos(&pool).await };
        ctx.wait(load.into_actor(self).map(|loaded, registry, ctx| {
            match loaded {
                Ok(promos) => {
                    for promo in promos {
                        registry
                            .entries
                            .insert(promo.id, Entry { promo, actor: None });
                    }
                }
                Err(error) => tracing::error!(%error, "could not load live promos; retrying"),
            }
            registry.reconcile(ctx);
        }));
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

/// Every promo running now, in id order.
#[derive(Message)]
#[rtype(result = "Vec<FlashPromo>")]
pub struct GetRunning;

/// The running promos a member may reserve, nearest first, with distances in km.
#[derive(Message)]
#[rtype(result = "Vec<(FlashPromo, f64)>")]
pub struct FindEligible {
    pub member: AudienceMember,
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
                entry.promo = promo;
            }
            None => {
                self.entries.insert(promo.id, Entry { promo, actor: None });
            }
        }
        self.reconcile(ctx);
    }
}

impl Handler<PromoRemoved> for PromoRegistry {
    type Result = ();

    fn handle(&mut self, message: PromoRemoved, ctx: &mut Self::Context) {
        if let Some(Entry {
            actor: Some(actor), ..
        }) = self.entries.remove(&message.promo_id)
        {
            actor.do_send(Shutdown);
        }
        self.reconcile(ctx);
    }
}

impl Handler<StockChanged> for PromoRegistry {
    type Result = ();

    fn handle(&mut self, message: StockChanged, _: &mut Self::Context) {
        if let Some(entry) = self.entries.get_mut(&message.promo_id) {
            entry.promo.quantity = message.quantity;
            entry.promo.held = message.held;
            entry.promo.sold = message.sold;
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
    type Result = Vec<FlashPromo>;

    fn handle(&mut self, _: GetRunning, _: &mut Self::Context) -> Self::Result {
        let mut running: Vec<FlashPromo> = self
            .snapshot(Utc::now())
            .filter(|promo| promo.status == PromoStatus::Running)
            .collect();
        running.sort_by_key(|promo| promo.id);
        running
    }
}

impl Handler<FindEligible> for PromoRegistry {
    type Result = Vec<(FlashPromo, f64)>;

    fn handle(&mut self, message: FindEligible, _: &mut Self::Context) -> Self::Result {
        let mut eligible: Vec<(FlashPromo, f64)> = self
            .snapshot(Utc::now())
            .filter(|promo| promo.status == PromoStatus::Running && promo.available > 0)
            .filter_map(|promo| {
                let distance = check_eligibility(&promo, &message.member).ok()?;
                Some((promo, distance))
            })
            .collect();
        eligible.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.id.cmp(&b.0.id)));
        eligible
    }
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
