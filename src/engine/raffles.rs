//! Raffle campaigns in the engine: entering an address (through the
//! campaign's actor, loading it if it is open but not loaded here), and
//! telling the campaign registry and the mailer what changed. In cluster
//! mode the other instances' campaign registries are told of openings and
//! closings too ([`Engine::follow_campaign`]).

use chrono::Utc;
use serde_json::Value;

use super::reservations::Route;
use super::{Engine, EngineError};
use crate::actors::campaign::EntryRefusal;
use crate::actors::campaign_registry::{
    CampaignChanged, CampaignClosed, CampaignCountsChanged, OpenCampaign, RouteEntry,
};
use crate::actors::mailer::Wake;
use crate::cluster::events::ClusterEvent;
use crate::cluster::forward::{Answer, Call};
use crate::db;
use crate::db::leases::LeaseKey;
use crate::domain::raffle::{Campaign, CampaignStatus, Entry};
use crate::telemetry::prometheus;

impl Engine {
    /// Enters `email` (normalised) with `data` in campaign `campaign_id`;
    /// answered once the entry and its confirmation email are committed.
    pub async fn enter_raffle(
        &self,
        campaign_id: i64,
        email: String,
        data: Value,
    ) -> Result<Entry, EngineError> {
        self.enter(campaign_id, email, data, Route::AnyOwner).await
    }

    /// [`Engine::enter_raffle`], decided here or not at all (a call another
    /// instance forwarded).
    pub(super) async fn enter_here(
        &self,
        campaign_id: i64,
        email: String,
        data: Value,
    ) -> Result<Entry, EngineError> {
        self.enter(campaign_id, email, data, Route::HereOnly).await
    }

    async fn enter(
        &self,
        campaign_id: i64,
        email: String,
        data: Value,
        route: Route,
    ) -> Result<Entry, EngineError> {
        match self.route_entry(campaign_id, &email, &data).await? {
            Err(EntryRefusal::NotLoaded) => {
                self.enter_after_loading(campaign_id, email, data, route)
                    .await
            }
            other => other.map_err(EngineError::from),
        }
    }

    async fn route_entry(
        &self,
        campaign_id: i64,
        email: &str,
        data: &Value,
    ) -> Result<Result<Entry, EntryRefusal>, EngineError> {
        let route = RouteEntry {
            campaign_id,
            email: email.to_owned(),
            data: data.clone(),
        };
        prometheus::awaiting("campaign_registry", self.campaigns.send(route))
            .await
            .map_err(EngineError::mailbox("campaign registry"))
    }

    /// No actor had the campaign: find out why from the database, and if it
    /// takes entries after all (opened a moment ago elsewhere), start its
    /// actor and retry; in cluster mode, a campaign another instance owns
    /// gets the entry from its owner.
    async fn enter_after_loading(
        &self,
        campaign_id: i64,
        email: String,
        data: Value,
        route: Route,
    ) -> Result<Entry, EngineError> {
        let campaign = db::campaigns::find_campaign(&self.pool, campaign_id).await?;
        match campaign {
            None => Err(EngineError::NotFound),
            Some(campaign) if !campaign.takes_entries(Utc::now()) => {
                Err(EngineError::CampaignClosed)
            }
            Some(_) => {
                prometheus::awaiting(
                    "campaign_registry",
                    self.campaigns.send(OpenCampaign { campaign_id }),
                )
                .await
                .map_err(EngineError::mailbox("campaign registry"))?;
                match self.route_entry(campaign_id, &email, &data).await? {
                    Err(EntryRefusal::NotLoaded) => match (&self.forwarder, route) {
                        (Some(forwarder), Route::AnyOwner) => {
                            let call = Call::Enter {
                                campaign_id,
                                email,
                                data,
                            };
                            let key = LeaseKey::campaign(campaign_id);
                            match forwarder.call(key, &call).await? {
                                Answer::Entered { entry } => Ok(entry),
                                Answer::Refused { error } => Err(error.into()),
                                Answer::Done { .. } | Answer::Prepared => {
                                    Err(EngineError::Busy("the owning instance misunderstood"))
                                }
                            }
                        }
                        _ => Err(EngineError::Busy("the campaign's actor is starting")),
                    },
                    other => other.map_err(EngineError::from),
                }
            }
        }
    }

    /// A campaign was created or edited: the registry follows its opening
    /// time and its closing time.
    pub fn campaign_changed(&self, campaign: &Campaign) {
        self.tell_cluster(ClusterEvent::CampaignChanged {
            campaign_id: campaign.id,
        });
        self.apply_campaign(campaign);
    }

    fn apply_campaign(&self, campaign: &Campaign) {
        let scheduled = campaign.status == CampaignStatus::Draft;
        self.campaigns.do_send(CampaignChanged {
            campaign_id: campaign.id,
            opens_at: campaign.opens_at.filter(|_| scheduled),
            takes_entries: campaign.takes_entries(Utc::now()),
        });
    }

    /// A campaign was deleted, cancelled or drawn: its actor stops.
    pub fn campaign_closed(&self, campaign_id: i64) {
        self.tell_cluster(ClusterEvent::CampaignClosed { campaign_id });
        self.campaigns.do_send(CampaignClosed { campaign_id });
    }

    /// Another instance created, edited or deleted campaign `campaign_id`:
    /// reads it again and tells this instance's campaign registry.
    pub async fn follow_campaign(&self, campaign_id: i64) -> Result<(), EngineError> {
        match db::campaigns::find_campaign(&self.pool, campaign_id).await? {
            Some(campaign) => self.apply_campaign(&campaign),
            None => self.campaigns.do_send(CampaignClosed { campaign_id }),
        }
        Ok(())
    }

    /// Another instance finished, cancelled or deleted campaign `campaign_id`.
    pub fn follow_closed_campaign(&self, campaign_id: i64) {
        self.campaigns.do_send(CampaignClosed { campaign_id });
    }

    /// An address was confirmed: the campaign's live counts change.
    pub fn campaign_counts_changed(
        &self,
        campaign_id: i64,
        subscriber_count: i64,
        verified_count: i64,
    ) {
        self.tell_cluster(ClusterEvent::CampaignCounts {
            campaign_id,
            subscriber_count,
            verified_count,
        });
        self.campaigns.do_send(CampaignCountsChanged {
            campaign_id,
            subscriber_count,
            verified_count,
            told_admins: false,
        });
    }

    /// Another instance confirmed an address: the campaign's actor, if it
    /// runs here, takes the new counts (the admins were told already).
    pub fn follow_campaign_counts(
        &self,
        campaign_id: i64,
        subscriber_count: i64,
        verified_count: i64,
    ) {
        self.campaigns.do_send(CampaignCountsChanged {
            campaign_id,
            subscriber_count,
            verified_count,
            told_admins: true,
        });
    }

    /// Mail was queued in a commit: the mailer looks at the outbox now.
    pub fn wake_mailer(&self) {
        self.mailer.do_send(Wake);
    }
}
