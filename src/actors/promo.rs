//! `PromoActor`: the single writer of one promo's stock.
//!
//! Its mailbox serialises every reserve, complete, cancel and expiry, so there
//! is no lock and no race: each decision is made in memory at once (a unit is
//! held before the next message is read), then made durable, and only then
//! answered. Writes are group-committed: while one batch is being written, new
//! decisions queue up and go together in the next transaction, so the actor
//! never sits idle waiting on the database.
//!
//! Every batch is a fenced transaction ([`db::fence`]) with three outcomes:
//! committed (answer everyone); not committed (holds are undone and answered
//! `unavailable`, which is then true; releases are undone where that is still
//! consistent, otherwise retried; a batch the database refused is retried one
//! decision per transaction, so only the offending decision fails); or in
//! doubt (its commit went unheard). In doubt, nothing of the batch is undone:
//! its units stay as decided, no new decision is taken (requests are answered
//! 503 at once, nothing changed) and no further batch is written until the
//! fence says whether it committed, so no unit can go to a second shopper
//! while the first may hold it. Waiting callers then get the real outcome.
//!
//! Completes and cancels of a hold whose release is still being written wait
//! for that write and get its answer, so same-instant repeats agree.
//!
//! Each hold is released at its `expires_at` by one alarm per actor, set for
//! the earliest deadline of an ordered set: a timer per hold would make the
//! actor poll thousands of timers on every message. On start the actor
//! reloads its promo, sold count and live holds from PostgreSQL and resumes
//! their timers with the remaining time, so a restart changes nothing a client
//! can see. It reports every committed change to the registry
//! ([`StockChanged`]) and tells it when it stops.
//!
//! Sent by: the [`PromoRegistry`] (which forwards HTTP requests). Emits:
//! `StockChanged` and `PromoActorStopped` to the registry.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, SubsecRound, Utc};
use futures_util::future::ready;
use tokio::sync::oneshot;
use uuid::Uuid;

use std::sync::Arc;

use super::promo_registry::{Counts, LiveCounts, PromoActorStopped, PromoRegistry, StockChanged};
use super::session_hub::{Origin, PromoEnded, PushToUser, SessionHub};
use crate::db::fence::{Settled, WriteFailure};
use crate::db::reservations::StockWrite;
use crate::db::{self, DbError, DbPool};
use crate::domain::eligibility::{check_eligibility, AudienceMember, Ineligible};
use crate::domain::frames::{EndReason, ServerFrame};
use crate::domain::promo::FlashPromo;
use crate::domain::reservation::{Reservation, ReservationRecord, ReservationStatus};
use crate::domain::stock::{Hold, PromoStock, QuantityBelowCommitted, ReleaseError, ReserveError};

/// How long to wait before retrying writes that must not be dropped (expiries)
/// after a failed batch.
const WRITE_RETRY_DELAY: Duration = Duration::from_secs(1);
/// The longest a batch may take before its outcome counts as in doubt, so a
/// hung connection cannot freeze the promo.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between attempts to settle a batch whose commit went unheard.
const SETTLE_RETRY_DELAY: Duration = Duration::from_millis(500);
/// Messages that may wait in the mailbox before senders are slowed down.
const MAILBOX_CAPACITY: usize = 16_384;

/// Why the actor refused or could not finish a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromoRefusal {
    #[error("the promo is not running")]
    NotRunning,
    #[error(transparent)]
    Ineligible(#[from] Ineligible),
    #[error(transparent)]
    Stock(#[from] ReserveError),
    #[error(transparent)]
    Release(#[from] ReleaseError),
    /// Nothing was written (the database is unreachable); nothing changed.
    #[error("the decision could not be made durable")]
    Unavailable,
    /// The database refused this one decision; nothing changed.
    #[error("the database refused the decision")]
    Refused,
    /// An earlier write's outcome is being settled; nothing changed.
    #[error("the promo is settling an unconfirmed write")]
    Settling,
    /// The decision's write was sent but its outcome is not known.
    #[error("the outcome of the decision is unknown")]
    OutcomeUnknown,
}

/// The answer to a complete or cancel: the reservation as it now stands.
pub type ReleaseAnswer = Result<Reservation, PromoRefusal>;
/// Where a complete or cancel (or a repeat of one) is answered.
type ReleaseReply = oneshot::Sender<ReleaseAnswer>;

/// The actor of one promo.
pub struct PromoActor {
    promo: FlashPromo,
    stock: PromoStock,
    hold_for: chrono::Duration,
    pool: DbPool,
    registry: Addr<PromoRegistry>,
    hub: Addr<SessionHub>,
    /// The database id of each live hold's reservation (for the frames).
    row_ids: HashMap<Uuid, i64>,
    /// Hold expiries in time order, and each hold's deadline, for removal.
    deadlines: BTreeSet<(DateTime<Utc>, Uuid)>,
    deadline_of: HashMap<Uuid, DateTime<Utc>>,
    /// The one timer of this actor, set for the earliest deadline.
    alarm: Option<(DateTime<Utc>, SpawnHandle)>,
    queue: Vec<Pending>,
    writing: bool,
    /// A batch's commit went unheard and is being settled.
    in_doubt: bool,
    /// Decisions still to be written one per transaction (after a refusal).
    one_at_a_time: usize,
    /// Holds whose release (sale, cancel, expiry, revoke) is being written, and
    /// the repeats of the request waiting for that write's answer.
    settling: HashMap<Uuid, Vec<ReleaseReply>>,
    closing: bool,
    /// The counts readers of the registry's snapshot see, written by `report`.
    counts: LiveCounts,
}

/// A decision waiting to be made durable, and who to tell.
enum Pending {
    Reserve {
        hold: Hold,
        origin: Option<WsOrigin>,
        reply: oneshot::Sender<Result<Reservation, PromoRefusal>>,
    },
    Complete {
        hold: Hold,
        reply: ReleaseReply,
    },
    Cancel {
        hold: Hold,
        reply: ReleaseReply,
    },
    /// A hold that ran out: written eventually, never undone.
    Expire {
        hold: Hold,
    },
    /// A hold released because the promo was switched off: written eventually.
    Revoke {
        hold: Hold,
    },
}

impl Pending {
    fn hold(&self) -> &Hold {
        match self {
            Pending::Reserve { hold, .. }
            | Pending::Complete { hold, .. }
            | Pending::Cancel { hold, .. }
            | Pending::Expire { hold }
            | Pending::Revoke { hold } => hold,
        }
    }

    fn write(&self) -> StockWrite {
        match self {
            Pending::Reserve { hold, .. } => StockWrite::InsertHold { hold: hold.clone() },
            Pending::Complete { hold, .. } => StockWrite::Complete {
                reservation_id: hold.reservation_id,
            },
            Pending::Cancel { hold, .. } => StockWrite::Cancel {
                reservation_id: hold.reservation_id,
            },
            Pending::Revoke { hold } => StockWrite::Revoke {
                reservation_id: hold.reservation_id,
            },
            Pending::Expire { hold } => StockWrite::Expire {
                reservation_id: hold.reservation_id,
            },
        }
    }
}

impl PromoActor {
    /// An actor for `promo`; its stock is loaded from the database when it starts.
    pub fn new(
        promo: FlashPromo,
        hold_for: Duration,
        pool: DbPool,
        registry: Addr<PromoRegistry>,
        hub: Addr<SessionHub>,
        counts: LiveCounts,
    ) -> PromoActor {
        PromoActor {
            counts,
            hub,
            row_ids: HashMap::new(),
            stock: PromoStock::new(promo.quantity, promo.sold, []),
            promo,
            hold_for: chrono::Duration::from_std(hold_for).unwrap_or(chrono::Duration::seconds(60)),
            pool,
            registry,
            deadlines: BTreeSet::new(),
            deadline_of: HashMap::new(),
            alarm: None,
            queue: Vec::new(),
            writing: false,
            in_doubt: false,
            one_at_a_time: 0,
            settling: HashMap::new(),
            closing: false,
        }
    }

    /// The promo with the counts of the current decisions.
    fn snapshot(&self) -> FlashPromo {
        self.promo
            .clone()
            .with_counts(self.stock.held(), self.stock.sold(), Utc::now())
    }

    fn install(&mut self, promo: FlashPromo, holds: Vec<Hold>, ctx: &mut Context<Self>) {
        self.stock = PromoStock::new(promo.quantity, promo.sold, holds);
        self.promo = promo;
        let holds: Vec<Hold> = self.stock.holds().cloned().collect();
        for hold in &holds {
            self.arm_timer(hold, ctx);
        }
        self.report(ctx);
    }

    /// Schedules the expiry of `hold` (replacing an earlier schedule of it).
    fn arm_timer(&mut self, hold: &Hold, ctx: &mut Context<Self>) {
        let id = hold.reservation_id;
        if let Some(old) = self.deadline_of.insert(id, hold.expires_at) {
            self.deadlines.remove(&(old, id));
        }
        self.deadlines.insert((hold.expires_at, id));
        self.set_alarm(ctx);
    }

    /// Forgets the expiry of a hold that was sold or released. The alarm is
    /// left as it is: waking up with nothing due only re-arms it.
    fn disarm_timer(&mut self, reservation_id: &Uuid, _: &mut Context<Self>) {
        if let Some(at) = self.deadline_of.remove(reservation_id) {
            self.deadlines.remove(&(at, *reservation_id));
        }
    }

    /// Makes sure the single alarm rings at the earliest deadline.
    fn set_alarm(&mut self, ctx: &mut Context<Self>) {
        let Some(&(next, _)) = self.deadlines.first() else {
            return;
        };
        if self.alarm.as_ref().is_some_and(|(at, _)| *at <= next) {
            return;
        }
        if let Some((_, handle)) = self.alarm.take() {
            ctx.cancel_future(handle);
        }
        let delay = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        let handle = ctx.run_later(delay, |actor, ctx| actor.on_alarm(ctx));
        self.alarm = Some((next, handle));
    }

    /// Releases every hold whose deadline has passed, then re-arms.
    fn on_alarm(&mut self, ctx: &mut Context<Self>) {
        self.alarm = None;
        let now = Utc::now();
        while let Some(&(at, reservation_id)) = self.deadlines.first() {
            // The alarm may ring a hair early (monotonic and wall clocks differ).
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            self.deadline_of.remove(&reservation_id);
            if let Some(hold) = self.stock.expire(&reservation_id, now) {
                self.settling.entry(hold.reservation_id).or_default();
                self.queue.push(Pending::Expire { hold });
            }
        }
        self.flush(ctx);
        self.set_alarm(ctx);
    }

    fn enqueue(&mut self, pending: Pending, ctx: &mut Context<Self>) {
        if !matches!(pending, Pending::Reserve { .. }) {
            self.settling
                .entry(pending.hold().reservation_id)
                .or_default();
        }
        self.queue.push(pending);
        self.flush(ctx);
    }

    /// Starts writing the queued decisions unless a batch is already in
    /// flight or in doubt.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.writing || self.in_doubt || self.queue.is_empty() {
            return;
        }
        self.writing = true;
        let take = if self.one_at_a_time > 0 {
            self.one_at_a_time -= 1;
            1
        } else {
            self.queue.len()
        };
        let batch: Vec<Pending> = self.queue.drain(..take).collect();
        let writes: Vec<StockWrite> = batch.iter().map(Pending::write).collect();
        let pool = self.pool.clone();
        let promo_id = self.promo.id;
        let write = async move {
            db::reservations::apply_stock_writes(&pool, promo_id, writes, WRITE_TIMEOUT).await
        };
        ctx.spawn(write.into_actor(self).map(move |result, actor, ctx| {
            actor.writing = false;
            match result {
                Ok(row_ids) => actor.confirm(batch, row_ids, ctx),
                Err(WriteFailure::InDoubt { token, cause }) => {
                    tracing::warn!(promo_id = actor.promo.id, %cause, "stock write in doubt; settling it");
                    actor.in_doubt = true;
                    actor.settle_in_doubt(batch, token, ctx);
                }
                Err(failure) => actor.not_committed(batch, failure, ctx),
            }
            actor.flush(ctx);
            actor.stop_if_done(ctx);
        }));
    }

    /// Asks the fence whether the batch of `token` committed, until the
    /// database answers; then confirms or undoes it.
    fn settle_in_doubt(&mut self, batch: Vec<Pending>, token: Uuid, ctx: &mut Context<Self>) {
        let pool = self.pool.clone();
        let inserted: Vec<Uuid> = batch
            .iter()
            .filter(|pending| matches!(pending, Pending::Reserve { .. }))
            .map(|pending| pending.hold().reservation_id)
            .collect();
        let settling = async move {
            match db::fence::settle(&pool, token).await? {
                Settled::Committed => {
                    let ids = db::reservations::find_row_ids(&pool, &inserted).await?;
                    Ok(Some(ids))
                }
                Settled::NotCommitted => Ok::<_, DbError>(None),
            }
        };
        ctx.spawn(settling.into_actor(self).map(move |settled, actor, ctx| {
            match settled {
                Err(error) => {
                    tracing::debug!(promo_id = actor.promo.id, %error, "not settled yet");
                    ctx.run_later(SETTLE_RETRY_DELAY, move |actor, ctx| {
                        actor.settle_in_doubt(batch, token, ctx)
                    });
                    return;
                }
                Ok(Some(ids)) => {
                    actor.in_doubt = false;
                    let row_ids = batch
                        .iter()
                        .map(|pending| match pending {
                            Pending::Reserve { hold, .. } => ids.get(&hold.reservation_id).copied(),
                            _ => None,
                        })
                        .collect();
                    actor.confirm(batch, row_ids, ctx);
                }
                Ok(None) => {
                    actor.in_doubt = false;
                    let failure = WriteFailure::NotCommitted(DbError::Unavailable(
                        "an unconfirmed commit did not happen".into(),
                    ));
                    actor.not_committed(batch, failure, ctx);
                }
            }
            actor.flush(ctx);
            actor.stop_if_done(ctx);
        }));
    }

    fn confirm(&mut self, batch: Vec<Pending>, row_ids: Vec<Option<i64>>, ctx: &mut Context<Self>) {
        let promo = self.snapshot();
        for (pending, row_id) in batch.into_iter().zip(row_ids) {
            match pending {
                Pending::Reserve {
                    hold,
                    origin,
                    reply,
                } => {
                    let row_id = row_id.unwrap_or_default();
                    self.row_ids.insert(hold.reservation_id, row_id);
                    let reservation = self.reservation(&hold, ReservationStatus::Held, &promo);
                    self.tell_holder(
                        &hold,
                        ServerFrame::ReservationHeld {
                            reservation: reservation.clone(),
                            request_id: None,
                        },
                        origin,
                    );
                    let _ = reply.send(Ok(reservation));
                }
                Pending::Complete { hold, reply } => {
                    self.settle(&hold, ReservationStatus::Completed, &promo, Some(reply))
                }
                Pending::Cancel { hold, reply } => {
                    self.settle(&hold, ReservationStatus::Cancelled, &promo, Some(reply))
                }
                Pending::Revoke { hold } => {
                    self.settle(&hold, ReservationStatus::Cancelled, &promo, None)
                }
                Pending::Expire { hold } => {
                    self.settle(&hold, ReservationStatus::Expired, &promo, None)
                }
            }
        }
        self.report(ctx);
    }

    /// A hold ended as `status` (committed): its holder is told, the request
    /// and its repeats are answered, its row id forgotten.
    fn settle(
        &mut self,
        hold: &Hold,
        status: ReservationStatus,
        promo: &FlashPromo,
        reply: Option<ReleaseReply>,
    ) {
        let reservation = self.reservation(hold, status, promo);
        let frame = match status {
            ReservationStatus::Completed => ServerFrame::ReservationCompleted {
                reservation: reservation.clone(),
            },
            ReservationStatus::Expired => ServerFrame::ReservationExpired {
                reservation: reservation.clone(),
            },
            ReservationStatus::Cancelled | ReservationStatus::Held => {
                ServerFrame::ReservationCancelled {
                    reservation: reservation.clone(),
                }
            }
        };
        self.tell_holder(hold, frame, None);
        self.answer_release(&hold.reservation_id, reply, Ok(reservation));
        self.row_ids.remove(&hold.reservation_id);
    }

    /// Answers a release request and every repeat waiting on it.
    fn answer_release(
        &mut self,
        reservation_id: &Uuid,
        reply: Option<ReleaseReply>,
        answer: ReleaseAnswer,
    ) {
        let waiting = self.settling.remove(reservation_id).unwrap_or_default();
        for waiter in reply.into_iter().chain(waiting) {
            let _ = waiter.send(answer.clone());
        }
    }
    fn reservation(
        &self,
        hold: &Hold,
        status: ReservationStatus,
        promo: &FlashPromo,
    ) -> Reservation {
        let record = ReservationRecord {
            id: self
                .row_ids
                .get(&hold.reservation_id)
                .copied()
                .unwrap_or_default(),
            reservation_id: hold.reservation_id,
            promo_id: promo.id,
            user_id: hold.user_id,
            status,
            created_at: hold.created_at,
            expires_at: hold.expires_at,
        };
        Reservation::new(&record, promo.clone())
    }

    /// Sends a `reservation.*` frame to every open session of the holder; the
    /// session whose request caused it gets its `request_id` back.
    fn tell_holder(&self, hold: &Hold, frame: ServerFrame, origin: Option<WsOrigin>) {
        let origin = origin.map(|origin| Origin {
            session_id: origin.session_id,
            frame: Arc::from(with_request_id(&frame, origin.request_id).to_text()),
        });
        self.hub.do_send(PushToUser {
            user_id: hold.user_id,
            frame: Arc::from(frame.to_text()),
            origin,
        });
    }

    /// A batch that did not commit. A batch the database refused is retried
    /// one decision per transaction; otherwise its decisions are undone,
    /// newest first, where that stays consistent, and answered `unavailable`
    /// (nothing was written); the rest go back to the front of the queue.
    fn not_committed(
        &mut self,
        batch: Vec<Pending>,
        failure: WriteFailure,
        ctx: &mut Context<Self>,
    ) {
        if failure.is_refusal() && batch.len() > 1 {
            tracing::warn!(promo_id = self.promo.id, %failure, "stock batch refused; retrying its decisions singly");
            self.one_at_a_time += batch.len();
            self.requeue(batch);
            return;
        }
        let refused = failure.is_refusal();
        tracing::warn!(promo_id = self.promo.id, %failure, "stock write not committed; decisions undone");
        let mut retry = Vec::new();
        for pending in batch.into_iter().rev() {
            if let Some(again) = self.undo(pending, refused, ctx) {
                retry.push(again);
            }
        }
        // A refused release that cannot be undone would be refused again on
        // every retry: memory and the database disagree, like a corrupt batch.
        let disagree = refused && !retry.is_empty();
        if disagree || matches!(failure, WriteFailure::NotCommitted(DbError::Corrupt(_))) {
            for pending in retry {
                self.refuse_release(pending);
            }
            // Stop, and let the registry start a fresh actor that reloads the truth.
            tracing::error!(promo_id = self.promo.id, "reloading the promo's stock");
            ctx.stop();
            return;
        }
        if !retry.is_empty() {
            retry.reverse();
            self.requeue(retry);
            self.writing = true;
            ctx.run_later(WRITE_RETRY_DELAY, |actor, ctx| {
                actor.writing = false;
                actor.flush(ctx);
            });
        }
    }

    /// Answers a release that will not be written `refused`.
    fn refuse_release(&mut self, pending: Pending) {
        let reservation_id = pending.hold().reservation_id;
        let reply = match pending {
            Pending::Complete { reply, .. } | Pending::Cancel { reply, .. } => Some(reply),
            _ => None,
        };
        self.answer_release(&reservation_id, reply, Err(PromoRefusal::Refused));
    }

    /// Puts decisions back at the front of the queue, in their order.
    fn requeue(&mut self, mut decisions: Vec<Pending>) {
        decisions.append(&mut self.queue);
        self.queue = decisions;
    }

    /// Undoes one decision that was not written, or hands it back to be
    /// written again. A sale or release is undone only while its unit is still
    /// free and its user holds nothing else; otherwise it stands and is
    /// retried (its caller keeps waiting). A `refused` expiry or revoke is
    /// dropped: retrying it would only be refused again, and the row is
    /// settled when the promo's stock is next loaded.
    fn undo(
        &mut self,
        pending: Pending,
        refused: bool,
        ctx: &mut Context<Self>,
    ) -> Option<Pending> {
        let answer = if refused {
            PromoRefusal::Refused
        } else {
            PromoRefusal::Unavailable
        };
        match pending {
            Pending::Reserve { hold, reply, .. } => {
                let reservation_id = hold.reservation_id;
                self.disarm_timer(&reservation_id, ctx);
                self.stock.undo_reserve(&reservation_id);
                // An expiry decided meanwhile would end a hold that never was.
                self.queue
                    .retain(|queued| queued.hold().reservation_id != reservation_id);
                self.answer_release(&reservation_id, None, Err(answer.clone()));
                let _ = reply.send(Err(answer));
                None
            }
            Pending::Complete { hold, reply } => {
                if self.stock.undo_complete(hold.clone()) {
                    self.arm_timer(&hold, ctx);
                    self.answer_release(&hold.reservation_id, Some(reply), Err(answer));
                    None
                } else {
                    Some(Pending::Complete { hold, reply })
                }
            }
            Pending::Cancel { hold, reply } => {
                if self.stock.undo_release(hold.clone()) {
                    self.arm_timer(&hold, ctx);
                    self.answer_release(&hold.reservation_id, Some(reply), Err(answer));
                    None
                } else {
                    Some(Pending::Cancel { hold, reply })
                }
            }
            again @ (Pending::Expire { .. } | Pending::Revoke { .. }) if !refused => Some(again),
            dropped => {
                tracing::error!(promo_id = self.promo.id, reservation_id = %dropped.hold().reservation_id, "release refused by the database");
                self.answer_release(&dropped.hold().reservation_id, None, Err(answer));
                None
            }
        }
    }

    fn report(&self, _: &mut Context<Self>) {
        // Synchronously, so readers see it before the caller gets its answer.
        self.counts.store(Counts {
            quantity: self.stock.quantity(),
            held: self.stock.held(),
            sold: self.stock.sold(),
        });
        self.registry.do_send(StockChanged {
            promo_id: self.promo.id,
            quantity: self.stock.quantity(),
            held: self.stock.held(),
            sold: self.stock.sold(),
        });
    }

    fn stop_if_done(&mut self, ctx: &mut Context<Self>) {
        let idle = self.queue.is_empty() && !self.writing && !self.in_doubt;
        if self.closing && self.stock.held() == 0 && idle {
            ctx.stop();
        }
    }

    fn is_running_now(&self) -> bool {
        let now = Utc::now();
        !self.closing
            && self.promo.is_active
            && self.promo.start_time <= now
            && now < self.promo.end_time
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

    fn stopped(&mut self, _: &mut Self::Context) {
        // Queued decisions were never sent: nothing of them was written. The
        // callers of a batch still in flight or in doubt hear nothing, which
        // they report as an unknown outcome.
        for pending in std::mem::take(&mut self.queue) {
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
        });
    }
}

/// Holds one unit for a shopper, after the eligibility checks of API.md.
#[derive(Message)]
#[rtype(result = "Result<Reservation, PromoRefusal>")]
pub struct Reserve {
    pub user_id: i64,
    /// The shopper's location and segments; `None` for an account without a profile.
    pub member: Option<AudienceMember>,
    /// The WebSocket session and request this answers, if any.
    pub origin: Option<WsOrigin>,
}

/// The WebSocket session whose `reserve` frame asked, and its `request_id`.
#[derive(Debug, Clone)]
pub struct WsOrigin {
    pub session_id: u64,
    pub request_id: serde_json::Value,
}

/// The same frame answering a client message.
fn with_request_id(frame: &ServerFrame, request_id: serde_json::Value) -> ServerFrame {
    match frame {
        ServerFrame::ReservationHeld { reservation, .. } => ServerFrame::ReservationHeld {
            reservation: reservation.clone(),
            request_id: Some(request_id),
        },
        other => other.clone(),
    }
}

/// Buys the unit a hold keeps; answered with the reservation once the sale
/// (or the release that got there first) is durable.
#[derive(Message)]
#[rtype(result = "ReleaseAnswer")]
pub struct Complete {
    pub reservation_id: Uuid,
}

/// Releases a hold at its holder's request; answered like [`Complete`].
#[derive(Message)]
#[rtype(result = "ReleaseAnswer")]
pub struct Cancel {
    pub reservation_id: Uuid,
}

/// Lowers the quantity in memory before the database is changed, so no
/// decision in between can use the units being removed.
#[derive(Message)]
#[rtype(result = "Result<(), QuantityBelowCommitted>")]
pub struct PrepareQuantity {
    pub quantity: u32,
}

/// The promo's terms changed (after the change was committed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Redefine {
    pub promo: FlashPromo,
}

/// The promo ended: refuse new holds, let live ones run out or complete, then stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Close;

/// The promo was switched off: release every hold, then stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deactivate;

/// The promo was deleted: stop at once.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Handler<Reserve> for PromoActor {
    type Result = ResponseFuture<Result<Reservation, PromoRefusal>>;

    fn handle(&mut self, message: Reserve, ctx: &mut Self::Context) -> Self::Result {
        let decided = self.decide_reserve(&message);
        match decided {
            Err(refusal) => Box::pin(ready(Err(refusal))),
            Ok(hold) => {
                let (reply, answer) = oneshot::channel();
                self.arm_timer(&hold, ctx);
                let origin = message.origin;
                self.enqueue(
                    Pending::Reserve {
                        hold,
                        origin,
                        reply,
                    },
                    ctx,
                );
                answered(answer)
            }
        }
    }
}

impl PromoActor {
    fn decide_reserve(&mut self, message: &Reserve) -> Result<Hold, PromoRefusal> {
        if self.in_doubt {
            return Err(PromoRefusal::Settling);
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
        if self.in_doubt {
            return Box::pin(ready(Err(PromoRefusal::Settling)));
        }
        let now = Utc::now();
        let decided = if sell {
            self.stock.complete(&reservation_id, now)
        } else {
            self.stock.cancel(&reservation_id, now)
        };
        self.disarm_timer(&reservation_id, ctx);
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
                Box::pin(ready(Err(PromoRefusal::Release(ReleaseError::Expired(
                    hold,
                )))))
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
        self.stock.force_quantity(message.promo.quantity);
        self.promo = message.promo;
        let now = Utc::now();
        if self.promo.is_active && self.promo.start_time <= now && now < self.promo.end_time {
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
        self.stop_if_done(ctx);
    }
}

impl Handler<Deactivate> for PromoActor {
    type Result = ();

    fn handle(&mut self, _: Deactivate, ctx: &mut Self::Context) {
        self.closing = true;
        for hold in self.stock.release_all() {
            self.disarm_timer(&hold.reservation_id, ctx);
            self.settling.entry(hold.reservation_id).or_default();
            self.queue.push(Pending::Revoke { hold });
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
        self.hub.do_send(PromoEnded {
            promo_id: self.promo.id,
            reason: EndReason::Deleted,
            also: holders,
        });
        ctx.stop();
    }
}
