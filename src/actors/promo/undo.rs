//! A batch that did not commit: which of its decisions are undone (and
//! answered), which are written again, and when memory and the database
//! disagree so that the actor must reload.

use std::time::Duration;

use actix::prelude::*;

use super::group_commit::Pending;
use super::messages::PromoRefusal;
use super::PromoActor;
use crate::actors::promo_registry::LeaseRefused;
use crate::db::fence::WriteFailure;
use crate::db::{DbError, Violation};

/// How long to wait before retrying writes that must not be dropped (expiries)
/// after a failed batch.
const WRITE_RETRY_DELAY: Duration = Duration::from_secs(1);

impl PromoActor {
    /// A batch that did not commit. A batch the database refused (`retry`:
    /// unless it was already a decision retried alone) is retried one
    /// decision per transaction, each also clearing its shopper's stale held
    /// row ([`crate::db::reservations::StaleHolds`]); otherwise its decisions
    /// are undone, newest first, where that stays consistent, and answered
    /// `unavailable` or `refused` (nothing was written); the rest go back to
    /// the front of the queue.
    pub(super) fn not_committed(
        &mut self,
        batch: Vec<Pending>,
        failure: WriteFailure,
        retry: bool,
        ctx: &mut Context<Self>,
    ) {
        if matches!(
            failure,
            WriteFailure::NotCommitted(DbError::Violation(Violation::StaleLease))
        ) {
            self.step_down(batch, ctx);
            return;
        }
        if failure.is_refusal() && !retry {
            tracing::warn!(promo_id = self.promo.id, %failure, "stock batch refused; retrying its decisions singly");
            self.writes.retry_singly(batch);
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
            // Stop (nothing new is written meanwhile), and let the registry
            // start a fresh actor that reloads the truth.
            tracing::error!(promo_id = self.promo.id, "reloading the promo's stock");
            self.reloading = true;
            return;
        }
        if !retry.is_empty() {
            retry.reverse();
            self.writes.requeue(retry);
            self.writes.set_paused(true);
            ctx.run_later(WRITE_RETRY_DELAY, |actor, ctx| {
                actor.writes.set_paused(false);
                actor.flush(ctx);
            });
        }
    }

    /// Answers a release that will not be written `refused`.
    /// The database refused the batch because another instance took the
    /// promo over (cluster mode): nothing of it was written and nothing more
    /// may be. Its decisions are answered refused, the queued ones
    /// unavailable as the actor stops, and the registry drops the lease.
    fn step_down(&mut self, batch: Vec<Pending>, ctx: &mut Context<Self>) {
        tracing::warn!(
            promo_id = self.promo.id,
            "another instance owns this promo now; stepping down"
        );
        for pending in batch {
            match pending {
                Pending::Reserve { reply, .. } => drop(reply.send(Err(PromoRefusal::Refused))),
                other => self.refuse_release(other),
            }
        }
        self.registry.do_send(LeaseRefused {
            promo_id: self.promo.id,
            actor: ctx.address(),
        });
        self.reloading = true;
        ctx.stop();
    }

    fn refuse_release(&mut self, pending: Pending) {
        let reservation_id = pending.hold().reservation_id;
        let reply = match pending {
            Pending::Complete { reply, .. } | Pending::Cancel { reply, .. } => Some(reply),
            _ => None,
        };
        self.answer_release(&reservation_id, reply, Err(PromoRefusal::Refused));
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
                self.disarm_timer(&reservation_id);
                self.stock.undo_reserve(&reservation_id);
                // An expiry decided meanwhile would end a hold that never was.
                self.writes.forget(reservation_id);
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
}
