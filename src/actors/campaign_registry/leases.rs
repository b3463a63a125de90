//! Which open campaigns this instance runs actors for in cluster mode: those
//! whose lease it holds (`actors::lease_keeper`). The registry wants every
//! open campaign it knows of; entries for a campaign owned elsewhere are
//! forwarded to its owner (`engine::raffles`).

use std::collections::{HashMap, HashSet};

use actix::prelude::*;

use super::CampaignRegistry;
use crate::actors::lease_keeper::{LeaseChanged, LeaseKeeper, Subscribe, Want};
use crate::db::leases::{Fence, LeaseKind};

/// The leases of campaigns, as the registry knows them.
pub(super) struct CampaignLeases {
    keeper: Addr<LeaseKeeper>,
    fences: HashMap<i64, Fence>,
    wanted: HashSet<i64>,
}

impl CampaignLeases {
    pub(super) fn new(keeper: Addr<LeaseKeeper>) -> CampaignLeases {
        CampaignLeases {
            keeper,
            fences: HashMap::new(),
            wanted: HashSet::new(),
        }
    }

    pub(super) fn subscribe(&self, registry: Addr<CampaignRegistry>) {
        self.keeper.do_send(Subscribe {
            kind: LeaseKind::Campaign,
            recipient: registry.recipient(),
        });
    }

    /// Wants (or, with `false`, no longer wants) a campaign; answers its
    /// fence when this instance holds its lease.
    pub(super) fn want(&mut self, campaign_id: i64, wanted: bool) -> Option<Fence> {
        let changed = if wanted {
            self.wanted.insert(campaign_id)
        } else {
            self.wanted.remove(&campaign_id)
        };
        if changed {
            self.keeper.do_send(Want {
                kind: LeaseKind::Campaign,
                object_ids: self.wanted.clone(),
            });
        }
        self.fences.get(&campaign_id).cloned()
    }
}

impl Handler<LeaseChanged> for CampaignRegistry {
    type Result = ();

    fn handle(&mut self, message: LeaseChanged, ctx: &mut Self::Context) {
        let campaign_id = message.key.object_id;
        let Some(leases) = self.leases.as_mut() else {
            return;
        };
        match message.fence {
            Some(fence) => {
                leases.fences.insert(campaign_id, fence);
                if leases.wanted.contains(&campaign_id) {
                    self.open(campaign_id, ctx);
                }
            }
            None => {
                leases.fences.remove(&campaign_id);
                tracing::warn!(
                    campaign_id,
                    "stepping down: another instance owns this campaign"
                );
                self.stop_actor(campaign_id);
            }
        }
    }
}
