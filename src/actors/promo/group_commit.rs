//! Group commit for one promo actor: the decisions waiting to be made
//! durable, which of them go in the next batch ([`CommitQueue`], plain and
//! unit-tested), and the writing of each batch as one fenced transaction.
//!
//! Up to [`MAX_BATCHES_IN_FLIGHT`] batches are written at once, so the next
//! batch forms and leaves while the previous one is still committing instead
//! of waiting a whole commit for it. Two batches in flight never touch the
//! same hold or the same shopper: a batch is the longest prefix of the queue
//! whose decisions are independent of every batch still in flight, so each
//! write finds the rows the decisions before it left, whatever order the
//! commits land in. A batch in doubt stops all new batches until it is
//! settled, as the fault rules require; one already in flight goes on (its
//! decisions do not depend on the doubtful one).

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::messages::{PromoRefusal, ReleaseReply, WsOrigin};
use super::PromoActor;
use crate::db;
use crate::db::fence::WriteFailure;
use crate::db::reservations::StockWrite;
use crate::domain::reservation::Reservation;
use crate::domain::stock::Hold;

/// Batches written at once. Two is enough to hide one commit's wait behind
/// the next batch; more would only split the queue into smaller batches that
/// each pay a commit.
pub(super) const MAX_BATCHES_IN_FLIGHT: usize = 2;
/// The longest a batch may take before its outcome counts as in doubt, so a
/// hung connection cannot freeze the promo.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// A decision waiting to be made durable, and who to tell.
pub(super) enum Pending {
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
    Expire { hold: Hold },
    /// A hold released because the promo was switched off: written eventually.
    Revoke { hold: Hold },
}

impl Pending {
    /// The hold the decision is about.
    pub(super) fn hold(&self) -> &Hold {
        match self {
            Pending::Reserve { hold, .. }
            | Pending::Complete { hold, .. }
            | Pending::Cancel { hold, .. }
            | Pending::Expire { hold }
            | Pending::Revoke { hold } => hold,
        }
    }

    fn write(&self) -> StockWrite {
        let reservation_id = self.hold().reservation_id;
        match self {
            Pending::Reserve { hold, .. } => StockWrite::InsertHold { hold: hold.clone() },
            Pending::Complete { .. } => StockWrite::Complete { reservation_id },
            Pending::Cancel { .. } => StockWrite::Cancel { reservation_id },
            Pending::Revoke { .. } => StockWrite::Revoke { reservation_id },
            Pending::Expire { .. } => StockWrite::Expire { reservation_id },
        }
    }
}

/// The decisions not yet durable, and what is being written.
#[derive(Default)]
pub(super) struct CommitQueue {
    queue: VecDeque<Pending>,
    in_flight: usize,
    in_doubt: usize,
    /// Decisions still to be written one per transaction (after a refusal).
    one_at_a_time: usize,
    /// Writing waits (a retry delay, or the actor is about to reload).
    paused: bool,
    /// The holds and shoppers that batches in flight or in doubt touch.
    busy_holds: HashSet<Uuid>,
    busy_users: HashSet<i64>,
}

impl CommitQueue {
    /// Queues a decision behind the others.
    pub(super) fn push(&mut self, pending: Pending) {
        self.queue.push_back(pending);
    }

    /// Puts decisions back at the front of the queue, in their order.
    pub(super) fn requeue(&mut self, decisions: Vec<Pending>) {
        for pending in decisions.into_iter().rev() {
            self.queue.push_front(pending);
        }
    }

    /// A refused batch: its decisions go back to be written one per transaction.
    pub(super) fn retry_singly(&mut self, batch: Vec<Pending>) {
        self.one_at_a_time += batch.len();
        self.requeue(batch);
    }

    /// Drops the queued decisions about `reservation_id`.
    pub(super) fn forget(&mut self, reservation_id: Uuid) {
        self.queue
            .retain(|queued| queued.hold().reservation_id != reservation_id);
    }

    /// Every queued decision (none of them was sent).
    pub(super) fn take_queued(&mut self) -> Vec<Pending> {
        self.queue.drain(..).collect()
    }

    /// Stops or resumes starting batches.
    pub(super) fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    /// The next batch to write, if one may start now: see the module doc.
    pub(super) fn next_batch(&mut self) -> Option<Vec<Pending>> {
        if self.paused || self.in_doubt > 0 || self.in_flight >= MAX_BATCHES_IN_FLIGHT {
            return None;
        }
        let take = if self.one_at_a_time > 0 {
            // Singles go strictly one after another, in their order.
            if self.in_flight > 0 || self.queue.is_empty() {
                return None;
            }
            self.one_at_a_time -= 1;
            1
        } else {
            self.queue
                .iter()
                .take_while(|pending| !self.is_busy(pending.hold()))
                .count()
        };
        if take == 0 {
            return None;
        }
        let batch: Vec<Pending> = self.queue.drain(..take).collect();
        for pending in &batch {
            self.busy_holds.insert(pending.hold().reservation_id);
            self.busy_users.insert(pending.hold().user_id);
        }
        self.in_flight += 1;
        Some(batch)
    }

    fn is_busy(&self, hold: &Hold) -> bool {
        self.busy_holds.contains(&hold.reservation_id) || self.busy_users.contains(&hold.user_id)
    }

    /// A batch in flight committed or surely did not.
    pub(super) fn written(&mut self, batch: &[Pending]) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.free(batch);
    }

    /// A batch in flight went unheard: nothing new starts until it is settled.
    pub(super) fn went_in_doubt(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.in_doubt += 1;
    }

    /// A batch in doubt was settled (either way).
    pub(super) fn settled(&mut self, batch: &[Pending]) {
        self.in_doubt = self.in_doubt.saturating_sub(1);
        self.free(batch);
    }

    fn free(&mut self, batch: &[Pending]) {
        for pending in batch {
            self.busy_holds.remove(&pending.hold().reservation_id);
            self.busy_users.remove(&pending.hold().user_id);
        }
    }

    /// Some batch's commit went unheard and is not settled yet.
    pub(super) fn is_in_doubt(&self) -> bool {
        self.in_doubt > 0
    }

    /// No batch is in flight or in doubt.
    pub(super) fn nothing_sent(&self) -> bool {
        self.in_flight == 0 && self.in_doubt == 0
    }

    /// Nothing is queued, in flight or in doubt.
    pub(super) fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.nothing_sent()
    }
}

impl PromoActor {
    /// Queues a decision and writes it as soon as a batch may start.
    pub(super) fn enqueue(&mut self, pending: Pending, ctx: &mut Context<Self>) {
        if !matches!(pending, Pending::Reserve { .. }) {
            self.settling
                .entry(pending.hold().reservation_id)
                .or_default();
        }
        self.writes.push(pending);
        self.flush(ctx);
    }

    /// Starts writing every batch that may start now.
    pub(super) fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.reloading {
            return;
        }
        while let Some(batch) = self.writes.next_batch() {
            self.write(batch, ctx);
        }
    }

    /// Writes one batch in its own fenced transaction and handles the outcome.
    fn write(&mut self, batch: Vec<Pending>, ctx: &mut Context<Self>) {
        let writes: Vec<StockWrite> = batch.iter().map(Pending::write).collect();
        let pool = self.pool.clone();
        let promo_id = self.promo.id;
        let write = async move {
            db::reservations::apply_stock_writes(&pool, promo_id, writes, WRITE_TIMEOUT).await
        };
        ctx.spawn(write.into_actor(self).map(move |result, actor, ctx| {
            match result {
                Ok(row_ids) => {
                    actor.writes.written(&batch);
                    actor.confirm(batch, row_ids, ctx);
                }
                Err(WriteFailure::InDoubt { token, cause }) => {
                    tracing::warn!(promo_id = actor.promo.id, %cause, "stock write in doubt; settling it");
                    actor.writes.went_in_doubt();
                    actor.settle_in_doubt(batch, token, ctx);
                }
                Err(failure) => {
                    actor.writes.written(&batch);
                    actor.not_committed(batch, failure, ctx);
                }
            }
            actor.flush(ctx);
            actor.stop_if_done(ctx);
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn hold(user_id: i64) -> Hold {
        let now = Utc::now();
        Hold {
            reservation_id: Uuid::new_v4(),
            user_id,
            created_at: now,
            expires_at: now + chrono::Duration::seconds(60),
        }
    }

    fn reserve(hold: &Hold) -> Pending {
        Pending::Reserve {
            hold: hold.clone(),
            origin: None,
            reply: oneshot::channel().0,
        }
    }

    fn cancel(hold: &Hold) -> Pending {
        Pending::Cancel {
            hold: hold.clone(),
            reply: oneshot::channel().0,
        }
    }

    fn users(batch: &[Pending]) -> Vec<i64> {
        batch.iter().map(|pending| pending.hold().user_id).collect()
    }

    #[test]
    fn everything_queued_goes_in_one_batch_when_nothing_is_in_flight() {
        let mut queue = CommitQueue::default();
        for user in 1..=3 {
            queue.push(reserve(&hold(user)));
        }
        assert_eq!(users(&queue.next_batch().unwrap()), vec![1, 2, 3]);
        assert!(queue.next_batch().is_none());
    }

    #[test]
    fn a_second_batch_leaves_while_the_first_commits_but_not_a_third() {
        let mut queue = CommitQueue::default();
        queue.push(reserve(&hold(1)));
        let first = queue.next_batch().unwrap();
        queue.push(reserve(&hold(2)));
        let second = queue.next_batch().unwrap();
        queue.push(reserve(&hold(3)));
        assert!(queue.next_batch().is_none());
        queue.written(&first);
        let third = queue.next_batch().unwrap();
        assert_eq!(users(&third), vec![3]);
        queue.written(&second);
        assert!(!queue.nothing_sent());
        queue.written(&third);
        assert!(queue.is_idle());
    }

    #[test]
    fn a_decision_about_a_hold_in_flight_waits_and_so_does_everything_behind_it() {
        let mut queue = CommitQueue::default();
        let held = hold(1);
        queue.push(reserve(&held));
        let first = queue.next_batch().unwrap();
        queue.push(cancel(&held));
        queue.push(reserve(&hold(2)));
        assert!(queue.next_batch().is_none());
        queue.written(&first);
        assert_eq!(users(&queue.next_batch().unwrap()), vec![1, 2]);
    }

    #[test]
    fn a_shopper_in_flight_is_not_written_again_until_that_batch_ends() {
        let mut queue = CommitQueue::default();
        queue.push(cancel(&hold(1)));
        let first = queue.next_batch().unwrap();
        queue.push(reserve(&hold(1)));
        assert!(queue.next_batch().is_none());
        queue.written(&first);
        assert_eq!(users(&queue.next_batch().unwrap()), vec![1]);
    }

    #[test]
    fn nothing_new_is_written_while_a_batch_is_in_doubt() {
        let mut queue = CommitQueue::default();
        queue.push(reserve(&hold(1)));
        let doubtful = queue.next_batch().unwrap();
        queue.went_in_doubt();
        queue.push(reserve(&hold(2)));
        assert!(queue.is_in_doubt());
        assert!(queue.next_batch().is_none());
        queue.settled(&doubtful);
        assert_eq!(users(&queue.next_batch().unwrap()), vec![2]);
    }

    #[test]
    fn a_refused_batch_is_retried_one_decision_at_a_time_in_order() {
        let mut queue = CommitQueue::default();
        queue.push(reserve(&hold(1)));
        queue.push(reserve(&hold(2)));
        let refused = queue.next_batch().unwrap();
        queue.written(&refused);
        queue.push(reserve(&hold(3)));
        queue.retry_singly(refused);
        let single = queue.next_batch().unwrap();
        assert_eq!(users(&single), vec![1]);
        assert!(queue.next_batch().is_none());
        queue.written(&single);
        assert_eq!(users(&queue.next_batch().unwrap()), vec![2]);
    }

    #[test]
    fn a_paused_queue_starts_nothing() {
        let mut queue = CommitQueue::default();
        queue.push(reserve(&hold(1)));
        queue.set_paused(true);
        assert!(queue.next_batch().is_none());
        queue.set_paused(false);
        assert!(queue.next_batch().is_some());
    }
}
