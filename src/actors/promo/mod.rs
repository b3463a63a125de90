//! `PromoActor`: the single writer of one promo's stock.
//!
//! Its mailbox serialises every reserve, complete, cancel and expiry, so there
//! is no lock and no race: each decision is made in memory at once (a unit is
//! held before the next message is read), then made durable, and only then
//! answered. On start the actor reloads its promo, sold count and live holds
//! from PostgreSQL and resumes their expiry with the remaining time, so a
//! restart changes nothing a client can see. It reports every committed change
//! to the registry ([`StockChanged`]) and tells it when it stops.
//!
//! Stock is kept per occurrence ([`OccurrenceStock`]): when an occurrence
//! ends the counts move on to the next one, fresh; holds of the last one
//! keep their own expiry (the actor stops only once no occurrence has any).
//!
//! This file holds the actor, its state and one handler per message; the
//! rest is split by job:
//! - [`messages`]: what it is asked and its refusals;
//! - [`group_commit`]: queueing decisions and writing them in batches, each
//!   a fenced transaction ([`db::fence`]); the next batch forms while one
//!   commits, so the actor never waits on the database to decide;
//! - [`outcome`]: answering callers and telling holders once a batch commits;
//! - [`undo`]: a batch that did not commit (undone, retried, or refused one
//!   decision at a time);
//! - [`in_doubt`]: a batch whose commit went unheard, settled before any unit
//!   of it is offered again;
//! - [`deadlines`]: hold expiry, one alarm per actor;
//! - [`occurrences`]: moving the stock on from one occurrence to the next.
//!
//! Completes and cancels of a hold whose release is still being written wait
//! for that write and get its answer, so same-instant repeats agree.
//!
//! Sent by: the [`PromoRegistry`] (which forwards HTTP and WebSocket
//! requests). Emits: `StockChanged` and `PromoActorStopped` to the registry,
//! `reservation.*` frames and `PromoEnded` to the [`SessionHub`].

mod deadlines;
mod group_commit;
mod in_doubt;
mod messages;
mod occurrences;
mod outcome;
mod undo;

use std::collections::HashMap;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, SubsecRound, Utc};
use futures_util::future::ready;
use tokio::sync::oneshot;
use uuid::Uuid;

pub use self::messages::{
    Cancel, Close, Complete, Deactivate, PrepareQuantity, PromoRefusal, Redefine, ReleaseAnswer,
    Reserve, Shutdown, StepDown, WsOrigin,
};

use self::deadlines::Deadlines;
use self::group_commit::{CommitQueue, Pending};
use self::messages::ReleaseReply;
use self::occurrences::stock_terms;
use super::promo_registry::{Counts, LiveCounts, PromoActorStopped, PromoRegistry, StockChanged};
use super::session_hub::PromoEnded;
use super::sessions::Sessions;
use crate::db::leases::Fence;
use crate::db::{self, DbError, DbPool};
use crate::domain::eligibility::{check_eligibility, AudienceMember};
use crate::domain::frames::EndReason;
use crate::domain::occurrence_stock::OccurrenceStock;
use crate::domain::promo::FlashPromo;
use crate::domain::reservation::Reservation;
use crate::domain::stock::{Hold, QuantityBelowCommitted, ReleaseError};

/// Messages that may wait in the mailbox before senders are slowed down.
const MAILBOX_CAPACITY: usize = 16_384;

/// The actor of one promo.
pub struct PromoActor {
    promo: FlashPromo,
    stock: OccurrenceStock,
    hold_for: chrono::Duration,
    pool: DbPool,
    registry: Addr<PromoRegistry>,
    /// Where its holders' `reservation.*` frames go, on whichever instance.
    sessions: Sessions,
    /// The database id of each live hold's reservation (for the frames).
    row_ids: HashMap<Uuid, i64>,
    /// Hold expiries in time order.
    deadlines: Deadlines,
    /// The one timer of this actor, set for the earliest deadline.
    alarm: Option<(DateTime<Utc>, SpawnHandle)>,
    /// Decisions not yet durable, and the batches being written.
    writes: CommitQueue,
    /// Holds whose release (sale, cancel, expiry, revoke) is being written, and
    /// the repeats of the request waiting for that write's answer.
    settling: HashMap<Uuid, Vec<ReleaseReply>>,
    closing: bool,
    /// Memory and the database disagree: decide and write nothing more, and
    /// stop so that a fresh actor reloads the truth.
    reloading: bool,
    /// The counts readers of the registry's snapshot see, written by `report`.
    counts: LiveCounts,
    /// The lease every write is made under (cluster mode); `None` alone.
    fence: Option<Fence>,
}

impl PromoActor {
    /// An actor for `promo`; its stock is loaded from the database when it starts.
    pub fn new(
        promo: FlashPromo,
        hold_for: Duration,
        pool: DbPool,
        registry: Addr<PromoRegistry>,
        sessions: Sessions,
        counts: LiveCounts,
        fence: Option<Fence>,
    ) -> PromoActor {
        PromoActor {
            counts,
            fence,
            sessions,
            row_ids: HashMap::new(),
            stock: OccurrenceStock::new(stock_terms(&promo), []),
            promo,
            hold_for: chrono::Duration::from_std(hold_for).unwrap_or(chrono::Duration::seconds(60)),
            pool,
            registry,
            deadlines: Deadlines::default(),
            alarm: None,
            writes: CommitQueue::default(),
            settling: HashMap::new(),
            closing: false,
            reloading: false,
        }
    }

    /// The promo with the counts of the current decisions.
    fn snapshot(&self) -> FlashPromo {
        self.promo
            .clone()
            .with_counts(self.stock.held(), self.stock.sold(), Utc::now())
            .with_sold_total(self.stock.sold_total())
    }

    fn install(&mut self, promo: FlashPromo, holds: Vec<Hold>, ctx: &mut Context<Self>) {
        self.stock = OccurrenceStock::new(stock_terms(&promo), holds);
        self.promo = promo;
        let holds: Vec<Hold> = self.stock.holds().cloned().collect();
        for hold in &holds {
            self.arm_timer(hold, ctx);
        }
        self.report(ctx);
    }

    /// Tells the registry the counts of the current decisions.
    fn report(&self, _: &mut Context<Self>) {
        // Synchronously, so readers see it before the caller gets its answer.
        self.counts.store(Counts {
            quantity: self.stock.quantity(),
            held: self.stock.held(),
            sold: self.stock.sold(),
            sold_total: self.stock.sold_total(),
        });
        self.registry.do_send(StockChanged {
            promo_id: self.promo.id,
            quantity: self.stock.quantity(),
            held: self.stock.held(),
            sold: self.stock.sold(),
        });
    }

    fn stop_if_done(&mut self, ctx: &mut Context<Self>) {
        let reloaded = self.reloading && self.writes.nothing_sent();
        let closed = self.closing && self.stock.held_anywhere() == 0 && self.writes.is_idle();
        if reloaded || closed {
            ctx.stop();
        }
    }

    /// Whether new holds may be taken now.
    fn is_running_now(&self) -> bool {
        !self.closing && self.promo.runs_at(Utc::now())
    }
}

impl Actor for PromoActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        let pool = self.pool.clone();
        let promo_id = self.promo.id;
        let load = async move {
            let promo = db::promos::find_promo(&pool, promo_id).await?;
            let holds = db::reservations::load_holds(&pool, promo_id).await?;
            Ok::<_, DbError>((promo, holds))
        };
        // Nothing is decided before the stock is known.
        ctx.wait(load.into_actor(self).map(|loaded, actor, ctx| match loaded {
            Ok((Some(promo), holds)) => {
                let holds = holds
                    .into_iter()
                    .map(|(row_id, hold)| {
                        actor.row_ids.insert(hold.reservation_id, row_id);
                        hold
                    })
                    .collect();
                actor.install(promo, holds, ctx)
            }
            Ok((None, _)) => ctx.stop(),
            Err(error) => {
                tracing::warn!(promo_id = actor.promo.id, %error, "promo actor could not load its stock");
                ctx.stop();
            }
        }));
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        // Queued decisions were never sent: nothing of them was written. The
        // callers of a batch still in flight or in doubt hear nothing, which
        // they report as an unknown outcome.
        for pending in self.writes.take_queued() {
            let reservation_id = pending.hold().reservation_id;
            let unavailable = Err(PromoRefusal::Unavailable);
            match pending {
                Pending::Reserve { reply, .. } => drop(reply.send(unavailable)),
                Pending::Complete { reply, .. } | Pending::Cancel { reply, .. } => {
                    self.answer_release(&reservation_id, Some(reply), unavailable)
                }
                Pending::Expire { .. } | Pending::Revoke { .. } => {
                    self.answer_release(&reservation_id, None, unavailable)
                }
            }
        }
        self.registry.do_send(PromoActorStopped {
            promo_id: self.promo.id,
            actor: ctx.address(),
        });
    }
}

impl Handler<Reserve> for PromoActor {
    type Result = ResponseFuture<Result<Reservation, PromoRefusal>>;

    fn handle(&mut self, message: Reserve, ctx: &mut Self::Context) -> Self::Result {
        if !self.closing {
            // The first reserve of an occurrence may arrive before the
            // registry's word that it started.
            self.follow_occurrence(ctx);
        }
        match self.decide_reserve(&message) {
            Err(refusal) => Box::pin(ready(Err(refusal))),
            Ok(hold) => {
                let (reply, answer) = oneshot::channel();
                self.arm_timer(&hold, ctx);
                let origin = message.origin;
                let pending = Pending::Reserve {
                    hold,
                    origin,
                    reply,
                };
                self.enqueue(pending, ctx);
                answered(answer)
            }
        }
    }
}

impl PromoActor {
    fn decide_reserve(&mut self, message: &Reserve) -> Result<Hold, PromoRefusal> {
        if self.writes.is_in_doubt() {
            return Err(PromoRefusal::Settling);
        }
        if self.reloading {
            return Err(PromoRefusal::Unavailable);
        }
        if !self.is_running_now() {
            return Err(PromoRefusal::NotRunning);
        }
        let member = message.member.clone().unwrap_or(AudienceMember {
            user_id: message.user_id,
            location: None,
            segment_ids: Vec::new(),
        });
        check_eligibility(&self.promo, &member)?;
        // PostgreSQL keeps microseconds: decide with the instant it will store.
        let now = Utc::now().trunc_subsecs(6);
        let hold = self
            .stock
            .reserve(message.user_id, Uuid::new_v4(), now, self.hold_for)?;
        Ok(hold)
    }

    /// Sells (`sell`) or cancels a hold; answered once that is durable.
    fn release(
        &mut self,
        reservation_id: Uuid,
        ctx: &mut Context<Self>,
        sell: bool,
    ) -> ResponseFuture<ReleaseAnswer> {
        let (reply, answer) = oneshot::channel();
        if let Some(waiting) = self.settling.get_mut(&reservation_id) {
            // A release of this hold is being written: its answer is ours.
            waiting.push(reply);
            return answered(answer);
        }
        if self.writes.is_in_doubt() {
            return Box::pin(ready(Err(PromoRefusal::Settling)));
        }
        if self.reloading {
            return Box::pin(ready(Err(PromoRefusal::Unavailable)));
        }
        let now = Utc::now();
        let decided = if sell {
            self.stock.complete(&reservation_id, now)
        } else {
            self.stock.cancel(&reservation_id, now)
        };
        self.disarm_timer(&reservation_id);
        match decided {
            Ok(hold) => {
                let pending = if sell {
                    Pending::Complete { hold, reply }
                } else {
                    Pending::Cancel { hold, reply }
                };
                self.enqueue(pending, ctx);
                answered(answer)
            }
            Err(ReleaseError::Expired(hold)) => {
                self.enqueue(Pending::Expire { hold: hold.clone() }, ctx);
                let expired = ReleaseError::Expired(hold);
                Box::pin(ready(Err(PromoRefusal::Release(expired))))
            }
            Err(other) => Box::pin(ready(Err(PromoRefusal::Release(other)))),
        }
    }
}

fn answered<T: 'static>(
    answer: oneshot::Receiver<Result<T, PromoRefusal>>,
) -> ResponseFuture<Result<T, PromoRefusal>> {
    // A reply dropped unanswered: the actor stopped while the write was in
    // flight, so whether it happened is not known here.
    Box::pin(async move { answer.await.unwrap_or(Err(PromoRefusal::OutcomeUnknown)) })
}

impl Handler<Complete> for PromoActor {
    type Result = ResponseFuture<ReleaseAnswer>;

    fn handle(&mut self, message: Complete, ctx: &mut Self::Context) -> Self::Result {
        self.release(message.reservation_id, ctx, true)
    }
}

impl Handler<Cancel> for PromoActor {
    type Result = ResponseFuture<ReleaseAnswer>;

    fn handle(&mut self, message: Cancel, ctx: &mut Self::Context) -> Self::Result {
        self.release(message.reservation_id, ctx, false)
    }
}

impl Handler<PrepareQuantity> for PromoActor {
    type Result = Result<(), QuantityBelowCommitted>;

    fn handle(&mut self, message: PrepareQuantity, _: &mut Self::Context) -> Self::Result {
        if message.quantity < self.stock.quantity() {
            self.stock.set_quantity(message.quantity)?;
        }
        Ok(())
    }
}

impl Handler<Redefine> for PromoActor {
    type Result = ();

    fn handle(&mut self, message: Redefine, ctx: &mut Self::Context) {
        // The database has this quantity now; if a decision in flight holds
        // more, nothing new is held until enough holds end.
        self.stock
            .set_continuous(message.promo.daily_window.is_none());
        self.follow_rekey(&message.promo);
        self.promo = message.promo;
        // The current occurrence may have moved (new hours or dates, or a
        // new occurrence started while this actor settled the last one's holds).
        self.follow_occurrence(ctx);
        self.stock.force_quantity(self.promo.quantity);
        if self.promo.runs_at(Utc::now()) {
            // Back inside its window (or switched on again) while closing.
            self.closing = false;
        }
        self.report(ctx);
    }
}

impl Handler<Close> for PromoActor {
    type Result = ();

    fn handle(&mut self, _: Close, ctx: &mut Self::Context) {
        self.closing = true;
        // The occurrence is over: the counts shown are the next one's.
        self.follow_occurrence(ctx);
        self.stop_if_done(ctx);
    }
}

impl Handler<Deactivate> for PromoActor {
    type Result = ();

    fn handle(&mut self, _: Deactivate, ctx: &mut Self::Context) {
        self.closing = true;
        for hold in self.stock.release_all() {
            self.disarm_timer(&hold.reservation_id);
            self.settling.entry(hold.reservation_id).or_default();
            self.writes.push(Pending::Revoke { hold });
        }
        self.flush(ctx);
        self.report(ctx);
        self.stop_if_done(ctx);
    }
}

impl Handler<Shutdown> for PromoActor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        // Its rows went with the promo; its holders and watchers are told.
        let holders = self.stock.holds().map(|hold| hold.user_id).collect();
        self.sessions.local().do_send(PromoEnded {
            promo_id: self.promo.id,
            reason: EndReason::Deleted,
            also: holders,
        });
        ctx.stop();
    }
}

impl Handler<StepDown> for PromoActor {
    type Result = ();

    /// Decides nothing more and stops once no write is in flight (a write
    /// cut short would leave its outcome unknown to its callers).
    fn handle(&mut self, _: StepDown, ctx: &mut Self::Context) {
        self.reloading = true;
        self.stop_if_done(ctx);
    }
}
