//! `CampaignRegistry`: one [`CampaignActor`] per raffle campaign that takes
//! entries, and the timers that open drafts at their `opens_at`.
//!
//! Starts an actor for every open campaign at boot and for each one opened
//! later, routes entries to them, forwards counts changed elsewhere (a
//! verification) and closes an actor when its campaign is finished,
//! cancelled, edited or deleted. Every [`RESYNC_INTERVAL`] (and at boot, so a
//! restart loses nothing) it compares its actors with the open campaigns in
//! PostgreSQL and re-arms the opening timers of the drafts, so a missed
//! message heals by itself. A timer opens its draft only if `opens_at` is
//! still the time it was set for; opening is one conditional `UPDATE`, so
//! several instances racing to open one draft open it once.
//!
//! Sent by: the raffle HTTP handlers. Emits: messages to campaign actors and,
//! for campaigns without one, `raffle.stats` to the hub.

mod leases;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use futures_util::future::ready;
use serde_json::Value;

use self::leases::CampaignLeases;
use super::campaign::{
    push_stats, CampaignActor, CampaignLinks, CloseCampaign, CountsChanged, Enter, EntryRefusal,
};
use crate::actors::lease_keeper::LeaseKeeper;
use crate::db;
use crate::db::campaign_lifecycle::Transition;
use crate::domain::raffle::Entry;

/// How often the actors are compared with the open campaigns in the database.
const RESYNC_INTERVAL: Duration = Duration::from_secs(30);
/// The longest single wait of an opening timer; a later opening waits again.
const MAX_TIMER: Duration = Duration::from_secs(3600);
/// Pause before trying an opening again when the database did not answer.
const OPEN_RETRY_DELAY: Duration = Duration::from_millis(250);

/// The registry.
pub struct CampaignRegistry {
    links: CampaignLinks,
    actors: HashMap<i64, Addr<CampaignActor>>,
    /// Each draft's opening timer, with the `opens_at` it was set for.
    openings: HashMap<i64, (DateTime<Utc>, SpawnHandle)>,
    /// Counts the campaigns opened, closed or rescheduled by message: a
    /// resync that read the database before the latest one may not close or
    /// unschedule anything.
    opened: u64,
    /// A resync is reading the database (resyncs never overlap, so an older
    /// list can never be applied after a newer one).
    resyncing: bool,
    /// Cluster mode: only campaigns whose lease this instance holds get an actor.
    leases: Option<CampaignLeases>,
}

impl CampaignRegistry {
    /// A registry that starts its actors with `links`.
    pub fn new(links: CampaignLinks) -> CampaignRegistry {
        CampaignRegistry {
            links,
            actors: HashMap::new(),
            openings: HashMap::new(),
            opened: 0,
            resyncing: false,
            leases: None,
        }
    }

    /// Cluster mode: runs actors only for campaigns whose lease `keeper` holds.
    pub fn in_cluster(mut self, keeper: Addr<LeaseKeeper>) -> CampaignRegistry {
        self.leases = Some(CampaignLeases::new(keeper));
        self
    }

    fn open(&mut self, campaign_id: i64, ctx: &mut Context<Self>) {
        let fence = match self.leases.as_mut() {
            None => None,
            Some(leases) => match leases.want(campaign_id, true) {
                Some(fence) => Some(fence),
                // Owned elsewhere or by nobody yet: entries are forwarded.
                None => return,
            },
        };
        if self.actors.get(&campaign_id).is_some_and(Addr::connected) {
            return;
        }
        let actor =
            CampaignActor::new(campaign_id, self.links.clone(), ctx.address(), fence).start();
        self.actors.insert(campaign_id, actor);
    }

    fn resync(&mut self, ctx: &mut Context<Self>) {
        if self.resyncing {
            return;
        }
        self.resyncing = true;
        let pool = self.links.pool.clone();
        let opened_before = self.opened;
        let load = async move {
            db::campaign_lifecycle::seed_unseeded(&pool).await?;
            let open = db::campaign_lifecycle::open_campaign_ids(&pool).await?;
            let drafts = db::campaign_lifecycle::scheduled_openings(&pool).await?;
            Ok::<_, db::DbError>((open, drafts))
        };
        ctx.spawn(load.into_actor(self).map(move |loaded, registry, ctx| {
            registry.resyncing = false;
            match loaded {
                Ok((open, drafts)) => {
                    registry.match_drafts(drafts, opened_before, ctx);
                    registry.match_open(open, opened_before, ctx);
                }
                Err(error) => tracing::warn!(%error, "could not list the open campaigns"),
            }
        }));
    }

    /// Arms a timer for each scheduled draft and drops those of campaigns no
    /// longer scheduled (unless something changed since the list was read).
    fn match_drafts(
        &mut self,
        drafts: Vec<(i64, DateTime<Utc>)>,
        opened_before: u64,
        ctx: &mut Context<Self>,
    ) {
        let scheduled: HashSet<i64> = drafts.iter().map(|(id, _)| *id).collect();
        for (campaign_id, opens_at) in drafts {
            self.schedule(campaign_id, Some(opens_at), ctx);
        }
        if self.opened != opened_before {
            return;
        }
        let gone: Vec<i64> = self
            .openings
            .keys()
            .filter(|id| !scheduled.contains(id))
            .copied()
            .collect();
        for campaign_id in gone {
            self.schedule(campaign_id, None, ctx);
        }
    }

    /// Sets (or, with `None`, clears) the opening timer of a draft.
    fn schedule(
        &mut self,
        campaign_id: i64,
        opens_at: Option<DateTime<Utc>>,
        ctx: &mut Context<Self>,
    ) {
        let current = self.openings.get(&campaign_id).map(|(at, _)| *at);
        if current == opens_at {
            return;
        }
        if let Some((_, timer)) = self.openings.remove(&campaign_id) {
            ctx.cancel_future(timer);
        }
        let Some(opens_at) = opens_at else {
            return;
        };
        let wait = (opens_at - Utc::now()).to_std().unwrap_or_default();
        let timer = ctx.run_later(wait.min(MAX_TIMER), move |registry, ctx| {
            registry.openings.remove(&campaign_id);
            if Utc::now() < opens_at {
                // Only a very distant opening waits in several steps.
                registry.schedule(campaign_id, Some(opens_at), ctx);
                return;
            }
            registry.open_scheduled(campaign_id, opens_at, ctx);
        });
        self.openings.insert(campaign_id, (opens_at, timer));
    }

    /// Opens a draft whose time has come, and starts its actor.
    fn open_scheduled(
        &mut self,
        campaign_id: i64,
        opens_at: DateTime<Utc>,
        ctx: &mut Context<Self>,
    ) {
        let pool = self.links.pool.clone();
        let open = async move {
            db::campaign_lifecycle::open_campaign(&pool, campaign_id, Some(opens_at)).await
        };
        ctx.spawn(
            open.into_actor(self)
                .map(move |opened, registry, ctx| match opened {
                    Ok(Transition::Done(_)) => {
                        tracing::info!(campaign_id, "draft opened on schedule");
                        registry.opened += 1;
                        registry.open(campaign_id, ctx);
                    }
                    // Opened by hand, cancelled, rescheduled or deleted meanwhile.
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(campaign_id, %error, "could not open the draft; retrying");
                        ctx.run_later(OPEN_RETRY_DELAY, move |registry, ctx| {
                            registry.open_scheduled(campaign_id, opens_at, ctx)
                        });
                    }
                }),
        );
    }

    /// Starts an actor for each open campaign and closes those of campaigns
    /// no longer open, unless a campaign was opened since the list was read
    /// (it may be missing from `open`).
    fn match_open(&mut self, open: Vec<i64>, opened_before: u64, ctx: &mut Context<Self>) {
        let open: HashSet<i64> = open.into_iter().collect();
        for campaign_id in &open {
            self.open(*campaign_id, ctx);
        }
        if self.opened != opened_before {
            return;
        }
        let gone: Vec<i64> = self
            .actors
            .keys()
            .filter(|id| !open.contains(id))
            .copied()
            .collect();
        for campaign_id in gone {
            self.close(campaign_id);
        }
    }

    fn close(&mut self, campaign_id: i64) {
        if let Some(leases) = self.leases.as_mut() {
            leases.want(campaign_id, false);
        }
        self.stop_actor(campaign_id);
    }

    fn stop_actor(&mut self, campaign_id: i64) {
        if let Some(actor) = self.actors.remove(&campaign_id) {
            actor.do_send(CloseCampaign);
        }
    }
}

impl Actor for CampaignRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(leases) = &self.leases {
            leases.subscribe(ctx.address());
        }
        self.resync(ctx);
        ctx.run_interval(RESYNC_INTERVAL, |registry, ctx| registry.resync(ctx));
    }
}

/// A campaign was created (or found open without an actor): start its actor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct OpenCampaign {
    pub campaign_id: i64,
}

impl Handler<OpenCampaign> for CampaignRegistry {
    type Result = ();

    fn handle(&mut self, message: OpenCampaign, ctx: &mut Self::Context) {
        self.opened += 1;
        self.open(message.campaign_id, ctx);
    }
}

/// A campaign was finished, cancelled or deleted: close its actor and
/// forget any opening timer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CampaignClosed {
    pub campaign_id: i64,
}

impl Handler<CampaignClosed> for CampaignRegistry {
    type Result = ();

    fn handle(&mut self, message: CampaignClosed, ctx: &mut Self::Context) {
        self.opened += 1;
        self.close(message.campaign_id);
        self.schedule(message.campaign_id, None, ctx);
    }
}

/// A campaign was created or edited: its opening timer follows `opens_at`
/// (a draft's, else none), and its actor restarts to read the new closing
/// time if it takes entries now, or stops if it does not.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CampaignChanged {
    pub campaign_id: i64,
    /// When the draft opens by itself; `None` for anything but a scheduled draft.
    pub opens_at: Option<DateTime<Utc>>,
    pub takes_entries: bool,
}

impl Handler<CampaignChanged> for CampaignRegistry {
    type Result = ();

    fn handle(&mut self, message: CampaignChanged, ctx: &mut Self::Context) {
        self.opened += 1;
        self.schedule(message.campaign_id, message.opens_at, ctx);
        self.close(message.campaign_id);
        if message.takes_entries {
            self.open(message.campaign_id, ctx);
        }
    }
}

/// An address entering campaign `campaign_id` (normalised).
#[derive(Message)]
#[rtype(result = "Result<Entry, EntryRefusal>")]
pub struct RouteEntry {
    pub campaign_id: i64,
    pub email: String,
    pub data: Value,
}

impl Handler<RouteEntry> for CampaignRegistry {
    type Result = ResponseFuture<Result<Entry, EntryRefusal>>;

    fn handle(&mut self, message: RouteEntry, _: &mut Self::Context) -> Self::Result {
        let Some(actor) = self.actors.get(&message.campaign_id).cloned() else {
            return Box::pin(ready(Err(EntryRefusal::NotLoaded)));
        };
        let enter = Enter {
            email: message.email,
            data: message.data,
        };
        Box::pin(async move {
            actor
                .send(enter)
                .await
                .unwrap_or(Err(EntryRefusal::NotLoaded))
        })
    }
}

/// A campaign's counts after a committed verification.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CampaignCountsChanged {
    pub campaign_id: i64,
    pub subscriber_count: i64,
    pub verified_count: i64,
    /// The admins' sessions heard of it already (it was confirmed elsewhere).
    pub told_admins: bool,
}

impl Handler<CampaignCountsChanged> for CampaignRegistry {
    type Result = ();

    fn handle(&mut self, message: CampaignCountsChanged, _: &mut Self::Context) {
        match self.actors.get(&message.campaign_id) {
            Some(actor) => actor.do_send(CountsChanged {
                subscriber_count: message.subscriber_count,
                verified_count: message.verified_count,
            }),
            None if message.told_admins => {}
            None => push_stats(
                &self.links.sessions,
                message.campaign_id,
                message.subscriber_count,
                message.verified_count,
            ),
        }
    }
}

/// A campaign actor stopped (closed, or failed to load).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CampaignActorStopped {
    pub campaign_id: i64,
}

impl Handler<CampaignActorStopped> for CampaignRegistry {
    type Result = ();

    fn handle(&mut self, message: CampaignActorStopped, _: &mut Self::Context) {
        // A newer actor of the same campaign may already have taken its place.
        let stale = self
            .actors
            .get(&message.campaign_id)
            .is_some_and(|actor| !actor.connected());
        if stale {
            self.actors.remove(&message.campaign_id);
        }
    }
}
