//! Settling a batch whose commit went unheard (issue 9's fault rules).
//!
//! Nothing of such a batch is undone while it is in doubt: its units stay as
//! decided, no new decision is taken and no new batch is written (see
//! [`super::group_commit`]), so no unit can go to a second shopper while the
//! first may hold it. The fence ([`crate::db::fence::settle`]) is asked until
//! the database answers; then the batch is confirmed or undone and its
//! waiting callers get the real outcome.

use std::time::Duration;

use actix::prelude::*;
use uuid::Uuid;

use super::group_commit::Pending;
use super::PromoActor;
use crate::db::fence::{Settled, WriteFailure};
use crate::db::{self, DbError};

/// Pause between attempts to settle a batch whose commit went unheard.
const SETTLE_RETRY_DELAY: Duration = Duration::from_millis(500);

impl PromoActor {
    /// Asks the fence whether the batch of `token` committed, until the
    /// database answers; then confirms or undoes it.
    pub(super) fn settle_in_doubt(
        &mut self,
        batch: Vec<Pending>,
        token: Uuid,
        ctx: &mut Context<Self>,
    ) {
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
                    actor.writes.settled();
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
                    actor.writes.settled();
                    let failure = WriteFailure::NotCommitted(DbError::Unavailable(
                        "an unconfirmed commit did not happen".into(),
                    ));
                    actor.not_committed(batch, failure, false, ctx);
                }
            }
            actor.flush(ctx);
            actor.stop_if_done(ctx);
        }));
    }
}
