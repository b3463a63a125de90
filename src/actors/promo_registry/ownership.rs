//! Which promos this instance runs actors for: every one when it is alone,
//! only those whose lease it holds in cluster mode (`actors::lease_keeper`).
//!
//! The registry tells the keeper which promos need an actor after each
//! reconcile, and hears back what it gained and lost. A promo run elsewhere
//! has no actor here: its reservations are forwarded to its owner, its
//! counts arrive as `promo.stock` events, and this registry still follows
//! its schedule to tell its own watchers when it ends.

use std::collections::{HashMap, HashSet};

use actix::prelude::*;

use super::{Counts, PromoRegistry};
use crate::actors::lease_keeper::{LeaseChanged, LeaseKeeper, Renew, Want};
use crate::actors::promo::{PromoActor, StepDown};
use crate::cluster::Cluster;
use crate::db::leases::{Fence, LeaseKind};

/// Whether this instance may run a promo's actor.
pub(super) enum Permit {
    /// Yes, writing under this fence (`None`: alone, no lease).
    Run(Option<Fence>),
    /// No: another instance owns it, or nobody does yet.
    Elsewhere,
}

/// How the registry learns what it may run.
pub(super) enum Ownership {
    /// One instance: everything, unfenced.
    Alone,
    /// Cluster mode: what the keeper says.
    Leased(Leased),
}

pub(super) struct Leased {
    keeper: Addr<LeaseKeeper>,
    cluster: Cluster,
    fences: HashMap<i64, Fence>,
    /// What the keeper was last told is wanted.
    wanted: HashSet<i64>,
}

impl Ownership {
    pub(super) fn leased(keeper: Addr<LeaseKeeper>, cluster: Cluster) -> Ownership {
        Ownership::Leased(Leased {
            keeper,
            cluster,
            fences: HashMap::new(),
            wanted: HashSet::new(),
        })
    }

    pub(super) fn permit(&self, promo_id: i64) -> Permit {
        match self {
            Ownership::Alone => Permit::Run(None),
            Ownership::Leased(leased) => match leased.fences.get(&promo_id) {
                Some(fence) => Permit::Run(Some(fence.clone())),
                None => Permit::Elsewhere,
            },
        }
    }

    /// The cluster, in cluster mode.
    pub(super) fn cluster(&self) -> Option<&Cluster> {
        match self {
            Ownership::Alone => None,
            Ownership::Leased(leased) => Some(&leased.cluster),
        }
    }

    /// Tells the keeper which promos need an actor now, if that changed.
    pub(super) fn want(&mut self, promo_ids: HashSet<i64>) {
        let Ownership::Leased(leased) = self else {
            return;
        };
        if leased.wanted != promo_ids {
            leased.wanted = promo_ids.clone();
            leased.keeper.do_send(Want {
                kind: LeaseKind::Promo,
                object_ids: promo_ids,
            });
        }
    }

    pub(super) fn gained(&mut self, promo_id: i64, fence: Fence) {
        if let Ownership::Leased(leased) = self {
            leased.fences.insert(promo_id, fence);
        }
    }

    /// Forgets a lease; true if it was held.
    pub(super) fn lost(&mut self, promo_id: i64) -> bool {
        match self {
            Ownership::Alone => false,
            Ownership::Leased(leased) => leased.fences.remove(&promo_id).is_some(),
        }
    }
}

impl Leased {
    pub(super) fn keeper(&self) -> &Addr<LeaseKeeper> {
        &self.keeper
    }
}

/// The owner of a promo elsewhere committed a change of its stock.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RemoteStock {
    pub promo_id: i64,
    pub counts: Counts,
}

/// A promo actor's write was refused: another instance holds its lease now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct LeaseRefused {
    pub promo_id: i64,
    /// The actor whose write was refused (a newer one may run already,
    /// under a newer lease).
    pub actor: Addr<PromoActor>,
}

impl Handler<RemoteStock> for PromoRegistry {
    type Result = ();

    fn handle(&mut self, message: RemoteStock, ctx: &mut Self::Context) {
        let Some(entry) = self.catalogue.get(message.promo_id) else {
            return;
        };
        if entry.actor.is_some() {
            // This instance decides it: its own counts are the truth.
            return;
        }
        entry.counts.store(message.counts);
        self.counts_changed(message.promo_id, false, ctx);
    }
}

impl Handler<LeaseChanged> for PromoRegistry {
    type Result = ();

    fn handle(&mut self, message: LeaseChanged, ctx: &mut Self::Context) {
        let promo_id = message.key.object_id;
        match message.fence {
            Some(fence) => self.ownership.gained(promo_id, fence),
            None => self.step_down(promo_id),
        }
        self.reconcile(ctx);
    }
}

impl Handler<LeaseRefused> for PromoRegistry {
    type Result = ();

    fn handle(&mut self, message: LeaseRefused, ctx: &mut Self::Context) {
        let current = self
            .catalogue
            .get(message.promo_id)
            .and_then(|entry| entry.actor.as_ref());
        if current != Some(&message.actor) {
            return;
        }
        self.step_down(message.promo_id);
        if let Ownership::Leased(leased) = &self.ownership {
            // The keeper learns of the loss at its next renewal; ask for it now.
            leased.keeper.do_send(Renew);
        }
        self.reconcile(ctx);
    }
}

impl PromoRegistry {
    /// Stops running a promo another instance took over: its actor stops
    /// without writing anything more.
    fn step_down(&mut self, promo_id: i64) {
        self.ownership.lost(promo_id);
        let Some(entry) = self.catalogue.get_mut(promo_id) else {
            return;
        };
        if let Some(actor) = entry.actor.take() {
            tracing::warn!(promo_id, "stepping down: another instance owns this promo");
            actor.do_send(StepDown);
        }
        // Its counts come from the new owner from now on.
    }
}
