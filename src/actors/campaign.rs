//! `CampaignActor`: the single gate of one open raffle campaign's entries.
//!
//! It keeps the set of normalised addresses that entered, so a duplicate is
//! refused from memory without a database round trip (the unique index on
//! `(campaign_id, lower(email))` stays the last line of defence). An address
//! joins the set the moment it is accepted, so two requests racing with one
//! address cannot both pass. Accepted entries are group-committed: while one
//! batch is being written the next queues up, and each batch goes in one
//! transaction with its verification emails and the campaign's new count.
//! Each entry is answered only after its batch committed. Batches are fenced
//! ([`db::fence`]): a batch whose commit went unheard stays in the set (no
//! address of it can enter twice) and is settled by its fence before any other
//! batch is written, meanwhile new entries are refused 503 at once (nothing
//! changed); once settled it is answered with its real outcome. A batch the
//! database refused is retried one entry at a time, so one bad entry cannot
//! sink the others. Entries that were not written leave the set again.
//!
//! It also keeps the campaign's live counts and pushes `raffle.stats` to the
//! admin sessions, at most one frame per [`STATS_INTERVAL`].
//!
//! It runs only while its campaign takes entries: it stops at once if the
//! campaign it loads is not open or already past `closes_at`, and closes
//! itself at `closes_at` (the batch's own check in the database, under the
//! campaign's lock, is what makes the closing time exact).
//!
//! Sent by: the [`CampaignRegistry`]. Emits: `raffle.stats` to the hub,
//! [`CampaignActorStopped`] to the registry.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use futures_util::future::ready;
use serde_json::Value;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::campaign_registry::{CampaignActorStopped, CampaignRegistry};
use super::mailer::{Mailer, Wake};
use super::sessions::Sessions;
use crate::db::fence::{Settled, WriteFailure};
use crate::db::leases::Fence;
use crate::db::subscribers::{EntryBatch, NewEntry};
use crate::db::{self, DbError, DbPool};
use crate::domain::frames::ServerFrame;
use crate::domain::raffle::{Campaign, Entry};
use crate::domain::secrets::issue_token;

/// The most entries written in one transaction.
const MAX_BATCH: usize = 1_000;
/// The most entries waiting for a write; beyond, new ones are refused 503 at
/// once, so a flood while the database is slow cannot grow memory without bound.
const MAX_QUEUED: usize = 20_000;
/// The longest a batch may take before its outcome counts as in doubt.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between attempts to settle a batch whose commit went unheard.
const SETTLE_RETRY_DELAY: Duration = Duration::from_millis(500);
/// The shortest gap between two `raffle.stats` frames of one campaign.
pub const STATS_INTERVAL: Duration = Duration::from_millis(250);
/// The longest single wait for the closing time; a later one waits again.
const MAX_TIMER: Duration = Duration::from_secs(3600);
/// Messages that may wait in the mailbox before senders are slowed down.
const MAILBOX_CAPACITY: usize = 16_384;

/// Why an entry was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EntryRefusal {
    #[error("this address already entered the campaign")]
    AlreadySubscribed,
    #[error("the campaign is not open")]
    CampaignClosed,
    /// No actor runs this campaign here (unknown, finished, or not loaded yet).
    #[error("no open campaign with this id is loaded")]
    NotLoaded,
    #[error("the entry could not be made durable")]
    Unavailable,
    /// An earlier batch's outcome is being settled; nothing changed.
    #[error("the campaign is settling an unconfirmed write")]
    Settling,
    /// Too many entries are waiting to be written; nothing changed.
    #[error("too many entries are waiting to be written")]
    Busy,
    /// The entry's write was sent but its outcome is not known.
    #[error("the outcome of the entry is unknown")]
    OutcomeUnknown,
    /// The database refused this entry for a reason no check foresaw (a bug).
    #[error("the database refused the entry")]
    Failed,
}

/// Where the pieces an actor needs come from.
#[derive(Clone)]
pub struct CampaignLinks {
    pub pool: DbPool,
    /// Where `raffle.stats` goes: admin sessions on every instance.
    pub sessions: Sessions,
    pub mailer: Addr<Mailer>,
    /// The verification link without its code: `<base>/api/raffles/verify_subscriber/?code=`.
    pub verify_link_base: Arc<str>,
}

/// The actor of one open campaign.
pub struct CampaignActor {
    campaign_id: i64,
    links: CampaignLinks,
    registry: Addr<CampaignRegistry>,
    entered: HashSet<Box<str>>,
    queue: Vec<Pending>,
    writing: bool,
    /// A batch's commit went unheard and is being settled.
    in_doubt: bool,
    closing: bool,
    /// Entries still to be written one per transaction, after a batch failed.
    one_at_a_time: usize,
    subscriber_count: i64,
    verified_count: i64,
    stats_due: bool,
    /// The lease its entries are written under (cluster mode); `None` alone.
    fence: Option<Fence>,
}

struct Pending {
    entry: NewEntry,
    reply: oneshot::Sender<Result<Entry, EntryRefusal>>,
}

impl CampaignActor {
    /// An actor for campaign `campaign_id`; what it knows is loaded when it starts.
    pub fn new(
        campaign_id: i64,
        links: CampaignLinks,
        registry: Addr<CampaignRegistry>,
        fence: Option<Fence>,
    ) -> CampaignActor {
        CampaignActor {
            fence,
            campaign_id,
            links,
            registry,
            entered: HashSet::new(),
            queue: Vec::new(),
            writing: false,
            in_doubt: false,
            closing: false,
            one_at_a_time: 0,
            subscriber_count: 0,
            verified_count: 0,
            stats_due: false,
        }
    }

    /// Starts writing queued entries unless a batch is already in flight.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.writing || self.in_doubt || self.queue.is_empty() {
            return;
        }
        self.writing = true;
        let take = match self.one_at_a_time {
            0 => self.queue.len().min(MAX_BATCH),
            _ => 1,
        };
        self.one_at_a_time = self.one_at_a_time.saturating_sub(1);
        let batch: Vec<Pending> = self.queue.drain(..take).collect();
        let entries: Vec<NewEntry> = batch.iter().map(|pending| pending.entry.clone()).collect();
        let (pool, campaign_id) = (self.links.pool.clone(), self.campaign_id);
        let fence = self.fence.clone();
        let write = async move {
            let lease = fence.as_ref();
            db::subscribers::insert_entries(&pool, campaign_id, entries, WRITE_TIMEOUT, lease).await
        };
        ctx.spawn(write.into_actor(self).map(move |result, actor, ctx| {
            actor.writing = false;
            actor.settle(batch, result, ctx);
            actor.flush(ctx);
            actor.stop_if_done(ctx);
        }));
    }

    fn settle(
        &mut self,
        batch: Vec<Pending>,
        result: Result<EntryBatch, WriteFailure>,
        ctx: &mut Context<Self>,
    ) {
        match result {
            Ok(EntryBatch::Written {
                ids,
                subscriber_count,
                verified_count,
            }) => {
                self.answer_written(batch, ids);
                self.update_counts(subscriber_count, verified_count, ctx);
            }
            Ok(EntryBatch::Closed) => {
                self.closing = true;
                self.refuse_all(batch, EntryRefusal::CampaignClosed);
            }
            Ok(EntryBatch::Gone) => {
                self.closing = true;
                self.refuse_all(batch, EntryRefusal::NotLoaded);
            }
            Err(WriteFailure::InDoubt { token, cause }) => {
                tracing::warn!(campaign_id = self.campaign_id, %cause, "entry batch in doubt; settling it");
                self.in_doubt = true;
                self.settle_in_doubt(batch, token, ctx);
            }
            Err(WriteFailure::NotCommitted(DbError::Unavailable(cause))) => {
                tracing::warn!(campaign_id = self.campaign_id, %cause, "entry batch not written");
                self.refuse_all(batch, EntryRefusal::Unavailable);
            }
            Err(error) if batch.len() > 1 => {
                // Something in this batch is refused by the database: write its
                // entries one by one so the others are not refused with it.
                tracing::warn!(campaign_id = self.campaign_id, %error, "entry batch failed; retrying its entries singly");
                self.one_at_a_time += batch.len();
                let mut retry = batch;
                retry.append(&mut self.queue);
                self.queue = retry;
            }
            Err(error) => {
                tracing::error!(campaign_id = self.campaign_id, %error, "entry refused by the database");
                self.refuse_all(batch, EntryRefusal::Failed);
            }
        }
    }

    /// Answers each entry of a committed batch: its subscriber, or a duplicate
    /// the database knew of and this actor did not.
    fn answer_written(&mut self, batch: Vec<Pending>, ids: Vec<Option<i64>>) {
        for (pending, id) in batch.into_iter().zip(ids) {
            let answer = id
                .map(|id| Entry {
                    id,
                    email: pending.entry.email.clone(),
                    verified: false,
                })
                .ok_or(EntryRefusal::AlreadySubscribed);
            let _ = pending.reply.send(answer);
        }
        self.links.mailer.do_send(Wake);
    }

    /// Asks the fence whether the batch of `token` committed, until the
    /// database answers. Committed: each entry is answered with its row, found
    /// by its code (an address that had already entered has none). Not
    /// committed: every entry is refused `unavailable`, which is then true.
    fn settle_in_doubt(&mut self, batch: Vec<Pending>, token: Uuid, ctx: &mut Context<Self>) {
        let pool = self.links.pool.clone();
        let hashes: Vec<Vec<u8>> = batch.iter().map(|p| p.entry.code_hash.clone()).collect();
        let campaign_id = self.campaign_id;
        let settling = async move {
            match db::fence::settle(&pool, token).await? {
                Settled::NotCommitted => Ok::<_, DbError>(None),
                Settled::Committed => {
                    let hashes: Vec<&[u8]> = hashes.iter().map(Vec::as_slice).collect();
                    let found = db::subscribers::find_by_code_hashes(&pool, &hashes).await?;
                    // A batch that committed without its entries found the
                    // campaign closed or gone: ask which.
                    let campaign = db::campaigns::find_campaign(&pool, campaign_id).await?;
                    Ok(Some((found, campaign)))
                }
            }
        };
        ctx.spawn(settling.into_actor(self).map(move |settled, actor, ctx| {
            match settled {
                Err(error) => {
                    tracing::debug!(campaign_id = actor.campaign_id, %error, "not settled yet");
                    ctx.run_later(SETTLE_RETRY_DELAY, move |actor, ctx| {
                        actor.settle_in_doubt(batch, token, ctx)
                    });
                    return;
                }
                Ok(Some((found, campaign))) => actor.answer_settled(batch, &found, campaign),
                Ok(None) => actor.refuse_all(batch, EntryRefusal::Unavailable),
            }
            actor.in_doubt = false;
            actor.flush(ctx);
            actor.stop_if_done(ctx);
        }));
    }

    /// Answers a batch that turned out committed: each entry found by its code
    /// is written; the rest were refused by the batch itself, as a duplicate
    /// while the campaign takes entries, or because it was closed or deleted.
    fn answer_settled(
        &mut self,
        batch: Vec<Pending>,
        found: &HashMap<Vec<u8>, i64>,
        campaign: Option<Campaign>,
    ) {
        let (written, refused): (Vec<Pending>, Vec<Pending>) = batch
            .into_iter()
            .partition(|pending| found.contains_key(&pending.entry.code_hash));
        let ids = written
            .iter()
            .map(|pending| found.get(&pending.entry.code_hash).copied())
            .collect();
        self.answer_written(written, ids);
        let refusal = match campaign {
            Some(campaign) if campaign.takes_entries(Utc::now()) => EntryRefusal::AlreadySubscribed,
            Some(_) => EntryRefusal::CampaignClosed,
            None => EntryRefusal::NotLoaded,
        };
        if refusal == EntryRefusal::AlreadySubscribed {
            for pending in refused {
                let _ = pending.reply.send(Err(refusal));
            }
        } else {
            self.closing = true;
            self.refuse_all(refused, refusal);
        }
    }

    /// Answers every entry of a batch that was not written with `refusal`;
    /// their addresses may enter again.
    fn refuse_all(&mut self, batch: Vec<Pending>, refusal: EntryRefusal) {
        for pending in batch {
            self.entered.remove(pending.entry.email.as_str());
            let _ = pending.reply.send(Err(refusal));
        }
    }

    /// Takes newer counts (counts only grow, so the larger is the newer) and
    /// schedules a `raffle.stats` frame.
    fn update_counts(&mut self, subscribers: i64, verified: i64, ctx: &mut Context<Self>) {
        self.subscriber_count = self.subscriber_count.max(subscribers);
        self.verified_count = self.verified_count.max(verified);
        if self.stats_due {
            return;
        }
        self.stats_due = true;
        ctx.run_later(STATS_INTERVAL, |actor, _| {
            actor.stats_due = false;
            actor.push_stats();
        });
    }

    fn push_stats(&self) {
        push_stats(
            &self.links.sessions,
            self.campaign_id,
            self.subscriber_count,
            self.verified_count,
        );
    }

    /// Closes the actor at `closes_at`.
    fn close_at(&mut self, closes_at: &DateTime<Utc>, ctx: &mut Context<Self>) {
        let closes_at = *closes_at;
        let wait = (closes_at - Utc::now()).to_std().unwrap_or_default();
        // A distant closing time is waited for in steps.
        ctx.run_later(wait.min(MAX_TIMER), move |actor, ctx| {
            if Utc::now() < closes_at {
                return actor.close_at(&closes_at, ctx);
            }
            tracing::info!(
                campaign_id = actor.campaign_id,
                "campaign closed for entries"
            );
            actor.close(ctx);
        });
    }

    /// Refuses new entries, finishes the batch in flight, then stops.
    fn close(&mut self, ctx: &mut Context<Self>) {
        self.closing = true;
        if self.stats_due {
            self.push_stats();
        }
        self.stop_if_done(ctx);
    }

    fn stop_if_done(&mut self, ctx: &mut Context<Self>) {
        if self.closing && self.queue.is_empty() && !self.writing && !self.in_doubt {
            ctx.stop();
        }
    }
}

/// Sends a campaign's counts to every open admin session.
pub fn push_stats(sessions: &Sessions, campaign_id: i64, subscribers: i64, verified: i64) {
    let frame = ServerFrame::RaffleStats {
        campaign_id,
        subscriber_count: subscribers,
        verified_count: verified,
    };
    sessions.push_to_admins(Arc::from(frame.to_text()));
}

impl Actor for CampaignActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        let (pool, campaign_id) = (self.links.pool.clone(), self.campaign_id);
        let load = async move {
            let campaign = db::campaigns::find_campaign(&pool, campaign_id).await?;
            let entered = db::subscribers::load_entered(&pool, campaign_id).await?;
            Ok::<_, DbError>((campaign, entered))
        };
        // No entry is judged before the entered set is known.
        ctx.wait(load.into_actor(self).map(|loaded, actor, ctx| match loaded {
            Ok((Some(campaign), entered)) if campaign.takes_entries(Utc::now()) => {
                tracing::info!(campaign_id = actor.campaign_id, entries = entered.len(), "campaign loaded");
                actor.entered = entered;
                actor.subscriber_count = campaign.subscriber_count;
                actor.verified_count = campaign.verified_count;
                if let Some(closes_at) = &campaign.closes_at {
                    actor.close_at(closes_at, ctx);
                }
            }
            Ok(_) => ctx.stop(),
            Err(error) => {
                tracing::warn!(campaign_id = actor.campaign_id, %error, "campaign actor could not load");
                ctx.stop();
            }
        }));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        for pending in self.queue.drain(..) {
            let _ = pending.reply.send(Err(EntryRefusal::Unavailable));
        }
        self.registry.do_send(CampaignActorStopped {
            campaign_id: self.campaign_id,
        });
    }
}

/// One address entering the campaign. `email` is already normalised.
#[derive(Message)]
#[rtype(result = "Result<Entry, EntryRefusal>")]
pub struct Enter {
    pub email: String,
    pub data: Value,
}

impl Handler<Enter> for CampaignActor {
    type Result = ResponseFuture<Result<Entry, EntryRefusal>>;

    fn handle(&mut self, message: Enter, ctx: &mut Self::Context) -> Self::Result {
        if self.closing {
            // Finished or deleted: the caller asks the database which (409 or 404).
            return Box::pin(ready(Err(EntryRefusal::NotLoaded)));
        }
        if self.in_doubt {
            return Box::pin(ready(Err(EntryRefusal::Settling)));
        }
        if self.queue.len() >= MAX_QUEUED {
            return Box::pin(ready(Err(EntryRefusal::Busy)));
        }
        if !self.entered.insert(Box::from(message.email.as_str())) {
            return Box::pin(ready(Err(EntryRefusal::AlreadySubscribed)));
        }
        // The code leaves the service only inside the email; the database keeps its hash.
        let code = issue_token();
        let verify_url = format!("{}{}", self.links.verify_link_base, code.text);
        let (reply, answer) = oneshot::channel();
        self.queue.push(Pending {
            entry: NewEntry {
                email: message.email,
                data: message.data,
                code_hash: code.hash,
                verify_url,
            },
            reply,
        });
        self.flush(ctx);
        // Dropped unanswered: the actor stopped with the batch in flight.
        Box::pin(async move { answer.await.unwrap_or(Err(EntryRefusal::OutcomeUnknown)) })
    }
}

/// The campaign's counts after a committed change made elsewhere (a verification).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CountsChanged {
    pub subscriber_count: i64,
    pub verified_count: i64,
}

impl Handler<CountsChanged> for CampaignActor {
    type Result = ();

    fn handle(&mut self, message: CountsChanged, ctx: &mut Self::Context) {
        self.update_counts(message.subscriber_count, message.verified_count, ctx);
    }
}

/// The campaign was finished, cancelled, edited or deleted: refuse new
/// entries, finish the batch in flight, then stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseCampaign;

impl Handler<CloseCampaign> for CampaignActor {
    type Result = ();

    fn handle(&mut self, _: CloseCampaign, ctx: &mut Self::Context) {
        self.close(ctx);
    }
}
