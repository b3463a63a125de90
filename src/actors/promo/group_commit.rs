//! Group commit for one promo actor: the decisions waiting to be made
//! durable, which of them go in the next batch ([`CommitQueue`], plain and
//! unit-tested), and the writing of each batch as one fenced transaction.
//!
//! One batch is written at a time; while it commits, the next one forms in
//! the queue and leaves, whole, the moment the commit is heard. Sending a
//! second batch while the first commits was measured (issue 10, item 6) and
//! lost: it halved the batch size, so the service and PostgreSQL did nearly
//! twice the work per hold (one transaction, fence row and commit each) on
//! a machine whose cores, not the disk, are the limit. A batch in doubt
//! stops all writing until it is settled, as the fault rules require.

use std::collections::VecDeque;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::messages::{PromoRefusal, ReleaseReply, WsOrigin};
use super::PromoActor;
use crate::db;
use crate::db::fence::WriteFailure;
use crate::db::reservations::{StaleHolds, StockWrite};
use crate::domain::reservation::Reservation;
use crate::domain::stock::Hold;
use crate::telemetry::prometheus;

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
    Expire {
        hold: Hold,
    },
    /// A hold released because the promo was switched off: written eventually.
    Revoke {
        hold: Hold,
    },
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

/// Decisions written together in one transaction.
pub(super) struct Batch {
    pub(super) decisions: Vec<Pending>,
    /// A single decision retried alone after its batch was refused.
    pub(super) retry: bool,
}

/// The decisions not yet durable, and what is being written.
#[derive(Default)]
pub(super) struct CommitQueue {
    queue: VecDeque<Pending>,
    /// A batch is being written.
    writing: bool,
    /// A batch's commit went unheard and is being settled.
    in_doubt: bool,
    /// Decisions still to be written one per transaction (after a refusal).
    one_at_a_time: usize,
    /// Writing waits (a retry delay after a failed batch).
    paused: bool,
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

    /// The next batch to write, if one may start now: everything queued, or
    /// a single decision while a refused batch is being retried.
    pub(super) fn next_batch(&mut self) -> Option<Batch> {
        if self.paused || self.writing || self.in_doubt || self.queue.is_empty() {
            return None;
        }
        let retry = self.one_at_a_time > 0;
        let take = if retry {
            self.one_at_a_time -= 1;
            1
        } else {
            self.queue.len()
        };
        self.writing = true;
        Some(Batch {
            decisions: self.queue.drain(..take).collect(),
            retry,
        })
    }

    /// The batch in flight committed or surely did not.
    pub(super) fn written(&mut self) {
        self.writing = false;
    }

    /// The batch in flight went unheard: nothing is written until it is settled.
    pub(super) fn went_in_doubt(&mut self) {
        self.writing = false;
        self.in_doubt = true;
    }

    /// The batch in doubt was settled (either way).
    pub(super) fn settled(&mut self) {
        self.in_doubt = false;
    }

    /// A batch's commit went unheard and is not settled yet.
    pub(super) fn is_in_doubt(&self) -> bool {
        self.in_doubt
    }

    /// No batch is in flight or in doubt.
    pub(super) fn nothing_sent(&self) -> bool {
        !self.writing && !self.in_doubt
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

    /// Starts writing the queued decisions unless a batch is in flight or in doubt.
    pub(super) fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.reloading {
            return;
        }
        if let Some(batch) = self.writes.next_batch() {
            self.write(batch, ctx);
        }
    }

    /// Writes one batch in its own fenced transaction and handles the outcome.
    fn write(&mut self, Batch { decisions, retry }: Batch, ctx: &mut Context<Self>) {
        let batch = decisions;
        let writes: Vec<StockWrite> = batch.iter().map(Pending::write).collect();
        let pool = self.pool.clone();
        let promo_id = self.promo.id;
        let fence = self.fence.clone();
        let write = async move {
            let started = std::time::Instant::now();
            let stale = if retry {
                StaleHolds::Expire
            } else {
                StaleHolds::Keep
            };
            let written = db::reservations::apply_stock_writes(
                &pool,
                promo_id,
                writes,
                stale,
                WRITE_TIMEOUT,
                fence.as_ref(),
            )
            .await;
            prometheus::db_write(started.elapsed());
            written
        };
        ctx.spawn(write.into_actor(self).map(move |result, actor, ctx| {
            match result {
                Ok(row_ids) => {
                    actor.writes.written();
                    actor.confirm(batch, row_ids, ctx);
                }
                Err(WriteFailure::InDoubt { token, cause }) => {
                    tracing::warn!(promo_id = actor.promo.id, %cause, "stock write in doubt; settling it");
                    actor.writes.went_in_doubt();
                    actor.settle_in_doubt(batch, token, ctx);
                }
                Err(failure) => {
                    actor.writes.written();
                    actor.not_committed(batch, failure, retry, ctx);
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

    fn reserve(user_id: i64) -> Pending {
        let now = Utc::now();
        let hold = Hold {
            reservation_id: Uuid::new_v4(),
            user_id,
            occurrence_start: now,
            created_at: now,
            expires_at: now + chrono::Duration::seconds(60),
        };
        Pending::Reserve {
            hold,
            origin: None,
            reply: oneshot::channel().0,
        }
    }

    fn users(batch: &Batch) -> Vec<i64> {
        batch
            .decisions
            .iter()
            .map(|pending| pending.hold().user_id)
            .collect()
    }

    #[test]
    fn what_queues_up_while_a_batch_commits_leaves_together_after_it() {
        let mut queue = CommitQueue::default();
        queue.push(reserve(1));
        assert_eq!(users(&queue.next_batch().unwrap()), vec![1]);
        for user in 2..=4 {
            queue.push(reserve(user));
        }
        assert!(queue.next_batch().is_none());
        queue.written();
        assert_eq!(users(&queue.next_batch().unwrap()), vec![2, 3, 4]);
        queue.written();
        assert!(queue.is_idle());
    }

    #[test]
    fn nothing_is_written_while_a_batch_is_in_doubt() {
        let mut queue = CommitQueue::default();
        queue.push(reserve(1));
        queue.next_batch().unwrap();
        queue.went_in_doubt();
        queue.push(reserve(2));
        assert!(queue.is_in_doubt() && !queue.nothing_sent());
        assert!(queue.next_batch().is_none());
        queue.settled();
        assert_eq!(users(&queue.next_batch().unwrap()), vec![2]);
    }

    #[test]
    fn a_refused_batch_is_retried_one_decision_at_a_time_in_order() {
        let mut queue = CommitQueue::default();
        queue.push(reserve(1));
        queue.push(reserve(2));
        let refused = queue.next_batch().unwrap();
        queue.written();
        queue.push(reserve(3));
        queue.retry_singly(refused.decisions);
        for (expected, retry) in [(vec![1], true), (vec![2], true), (vec![3], false)] {
            let batch = queue.next_batch().unwrap();
            assert_eq!((users(&batch), batch.retry), (expected, retry));
            queue.written();
        }
    }

    #[test]
    fn a_paused_queue_starts_nothing() {
        let mut queue = CommitQueue::default();
        queue.push(reserve(1));
        queue.set_paused(true);
        assert!(queue.next_batch().is_none());
        queue.set_paused(false);
        assert!(queue.next_batch().is_some());
    }
}
