//! `CampaignRegistry`: one [`CampaignActor`] per open raffle campaign.
//!
//! Starts an actor for every open campaign at boot and for each one created
//! later, routes entries to them, forwards counts changed elsewhere (a
//! verification) and closes an actor when its campaign is finished or
//! deleted. Every [`RESYNC_INTERVAL`] it compares its actors with the open
//! campaigns in PostgreSQL, so a missed message heals by itself.
//!
//! Sent by: the raffle HTTP handlers. Emits: messages to campaign actors and,
//! for campaigns without one, `raffle.stats` to the hub.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::ready;
use serde_json::Value;

use super::campaign::{
    push_stats, CampaignActor, CampaignLinks, CloseCampaign, CountsChanged, Enter, EntryRefusal,
};
use crate::db;
use crate::domain::raffle::Entry;

/// How often the actors are compared with the open campaigns in the database.
const RESYNC_INTERVAL: Duration = Duration::from_secs(30);

/// The registry.
pub struct CampaignRegistry {
    links: CampaignLinks,
    actors: HashMap<i64, Addr<CampaignActor>>,
    /// Counts the campaigns opened by message: a resync that read the
    /// database before the latest one may not close anything.
    opened: u64,
    /// A resync is reading the database (resyncs never overlap, so an older
    /// list can never be applied after a newer one).
    resyncing: bool,
}

impl CampaignRegistry {
    /// A registry that starts its actors with `links`.
    pub fn new(links: CampaignLinks) -> CampaignRegistry {
        CampaignRegistry {
            links,
            actors: HashMap::new(),
            opened: 0,
            resyncing: false,
        }
    }

    fn open(&mut self, campaign_id: i64, ctx: &mut Context<Self>) {
        if self.actors.get(&campaign_id).is_some_and(Addr::connected) {
            return;
        }
        let actor = CampaignActor::new(campaign_id, self.links.clone(), ctx.address()).start();
        self.actors.insert(campaign_id, actor);
    }

    fn resync(&mut self, ctx: &mut Context<Self>) {
        if self.resyncing {
            return;
        }
        self.resyncing = true;
        let pool = self.links.pool.clone();
        let opened_before = self.opened;
        let load = async move { db::campaigns::open_campaign_ids(&pool).await };
        ctx.spawn(load.into_actor(self).map(move |loaded, registry, ctx| {
            registry.resyncing = false;
            match loaded {
                Ok(open) => registry.match_open(open, opened_before, ctx),
                Err(error) => tracing::warn!(%error, "could not list the open campaigns"),
            }
        }));
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
        if let Some(actor) = self.actors.remove(&campaign_id) {
            actor.do_send(CloseCampaign);
        }
    }
}

impl Actor for CampaignRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
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

/// A campaign was finished or deleted: close its actor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CampaignClosed {
    pub campaign_id: i64,
}

impl Handler<CampaignClosed> for CampaignRegistry {
    type Result = ();

    fn handle(&mut self, message: CampaignClosed, _: &mut Self::Context) {
        self.close(message.campaign_id);
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
}

impl Handler<CampaignCountsChanged> for CampaignRegistry {
    type Result = ();

    fn handle(&mut self, message: CampaignCountsChanged, _: &mut Self::Context) {
        match self.actors.get(&message.campaign_id) {
            Some(actor) => actor.do_send(CountsChanged {
                subscriber_count: message.subscriber_count,
                verified_count: message.verified_count,
            }),
            None => push_stats(
                &self.links.hub,
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
