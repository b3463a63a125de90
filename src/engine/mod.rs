//! The `Engine` façade: the one way in to the realtime engine for both
//! edges, the REST handlers (`http`) and the WebSocket sessions
//! (`actors::ws_session`).
//!
//! Whatever both edges do is one call here: reserve, complete and cancel a
//! hold ([`reservations`]); move a shopper and refresh what their sessions
//! watch, with the geofence notification ([`shoppers`]); announce, stop or
//! refresh promos and read the live ones ([`promos`]); enter a raffle and
//! tell its campaign what changed ([`raffles`]). Each call returns an
//! [`EngineError`], which each edge maps once (a status, an `error` frame).
//!
//! It sits between the edges and the actors (`http` → `engine` → `actors` →
//! `db` → `domain`) rather than inside `actors`: it is not an actor and owns
//! no state of its own, only the addresses of the actors that do, the pool,
//! and the snapshots those actors publish for reads that must not queue
//! behind a mailbox. Cloning it is cheap.
//!
//! In cluster mode each change made through this instance is also told to
//! the others ([`ClusterEvent`]), and the `follow_*` calls are how this
//! instance applies theirs (from `cluster::listener`): they act on the
//! local actors only and never tell anyone again.

pub mod deadlines;
pub mod error;
mod forwarded;
pub mod promos;
pub mod raffles;
pub mod reservations;
pub mod shoppers;

use std::sync::Arc;

use actix::{Actor, Addr};

use crate::actors::audience::{AudienceIndex, Members};
use crate::actors::campaign::CampaignLinks;
use crate::actors::campaign_registry::CampaignRegistry;
use crate::actors::lease_keeper::{LeaseKeeper, ReleaseAll};
use crate::actors::mailer::Mailer;
use crate::actors::notifier::Notifier;
use crate::actors::promo_registry::{LivePromos, PromoRegistry};
use crate::actors::session_hub::SessionHub;
use crate::actors::sessions::Sessions;
use crate::cluster::events::ClusterEvent;
use crate::cluster::forward::{self, Forwarder};
use crate::cluster::listener::ForgetCredentials;
use crate::cluster::{listener, resync, Cluster};
use crate::config::Config;
use crate::db::{self, DbPool};
pub use error::EngineError;

/// The engine: its actors, the pool they share, and their published reads.
#[derive(Clone)]
pub struct Engine {
    pool: DbPool,
    registry: Addr<PromoRegistry>,
    /// What the registry publishes: read directly, no mailbox hop.
    live_promos: LivePromos,
    audience: Addr<AudienceIndex>,
    /// What the audience index publishes: read directly, no mailbox hop.
    members: Members,
    notifier: Addr<Notifier>,
    hub: Addr<SessionHub>,
    /// The hub and, in cluster mode, the other instances' sessions.
    sessions: Sessions,
    campaigns: Addr<CampaignRegistry>,
    mailer: Addr<Mailer>,
    /// Cluster mode: the other instances, and the owners of what this one
    /// does not own.
    cluster: Option<Cluster>,
    forwarder: Option<Forwarder>,
    lease_keeper: Option<Addr<LeaseKeeper>>,
}

impl Engine {
    /// Loads the audience and starts every long-lived actor; in cluster
    /// mode also the lease keeper, the event listener (which calls
    /// `forget_credentials` for accounts changed elsewhere), the resyncs and
    /// the server of forwarded calls.
    pub async fn start(
        pool: &DbPool,
        config: &Config,
        cluster: Option<Cluster>,
        forget_credentials: ForgetCredentials,
    ) -> anyhow::Result<Engine> {
        let members = db::clients::load_audience(pool).await?;
        tracing::info!(clients = members.len(), "audience loaded");
        let audience = AudienceIndex::new(members);
        let members = audience.members();
        let audience = audience.start();
        let hub = SessionHub::default().start();
        let sessions = Sessions::new(hub.clone(), cluster.clone());
        let notifier = Notifier::new(
            pool.clone(),
            audience.clone(),
            sessions.clone(),
            config.notify_timezone,
        )
        .start();
        let lease_keeper = cluster.as_ref().map(|cluster| {
            LeaseKeeper::new(pool.clone(), cluster.instance_id().clone())
                .connected_through(cluster.clone())
                .start()
        });
        let mut registry = PromoRegistry::new(
            pool.clone(),
            config.reservation_hold,
            notifier.clone(),
            sessions.clone(),
        )
        .resync_every(config.registry_resync_interval);
        if let (Some(keeper), Some(cluster)) = (&lease_keeper, &cluster) {
            registry = registry.in_cluster(keeper.clone(), cluster.clone());
        }
        let live_promos = registry.live_promos();
        let registry = registry.start();
        let mailer = Mailer::new(pool.clone(), config)?.start();
        let mut campaigns = CampaignRegistry::new(CampaignLinks {
            pool: pool.clone(),
            sessions: sessions.clone(),
            mailer: mailer.clone(),
            verify_link_base: Arc::from(verify_link_base(&config.public_base_url)),
        });
        if let Some(keeper) = &lease_keeper {
            campaigns = campaigns.in_cluster(keeper.clone());
        }
        let campaigns = campaigns.start();
        let forwarder = cluster
            .as_ref()
            .map(|cluster| Forwarder::new(cluster.clone(), pool.clone()));
        let engine = Engine {
            pool: pool.clone(),
            registry,
            live_promos,
            audience,
            members,
            notifier,
            hub,
            sessions,
            campaigns,
            mailer,
            cluster,
            forwarder,
            lease_keeper,
        };
        if let Some(cluster) = &engine.cluster {
            listener::start(cluster.clone(), engine.sinks(forget_credentials)).await?;
            resync::start(cluster.clone(), engine.clone());
            forward::serve(cluster.clone(), engine.clone()).await?;
        }
        Ok(engine)
    }

    /// The parts of this engine that act on other instances' events.
    fn sinks(&self, forget_credentials: ForgetCredentials) -> listener::Sinks {
        listener::Sinks {
            registry: self.registry.clone(),
            engine: self.clone(),
            forget_credentials,
        }
    }

    /// Tells the other instances of a change (cluster mode; else nothing).
    fn tell_cluster(&self, event: ClusterEvent) {
        if let Some(cluster) = &self.cluster {
            cluster.publish(event);
        }
    }

    /// An account's password, username, role or tokens changed, or it was
    /// deleted: the other instances forget its verified credentials (the
    /// caller forgets this instance's).
    pub fn credentials_changed(&self, user_id: i64) {
        self.tell_cluster(ClusterEvent::CredentialsChanged { user_id });
    }

    /// The sessions of this instance and (cluster mode) the others.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// The audience index (for the listener and the resyncs).
    pub fn audience(&self) -> &Addr<AudienceIndex> {
        &self.audience
    }

    /// The database pool.
    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    /// The cluster, in cluster mode.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_ref()
    }

    /// Gives back this instance's leases (a clean shutdown), so the others
    /// take its promos over at once instead of after the leases expire.
    pub async fn leave_cluster(&self) {
        if let Some(keeper) = &self.lease_keeper {
            let _ = keeper.send(ReleaseAll).await;
        }
    }

    /// The session hub, which a WebSocket session joins.
    pub fn hub(&self) -> &Addr<SessionHub> {
        &self.hub
    }

    /// The running promos as last published (for benches and operational
    /// tools; request paths go through the engine's calls).
    pub fn live_promos(&self) -> &LivePromos {
        &self.live_promos
    }

    /// The promo registry (for benches and operational tools; request paths
    /// go through the engine's calls).
    pub fn registry(&self) -> &Addr<PromoRegistry> {
        &self.registry
    }
}

/// The verification link of API.md without its code, under `PUBLIC_BASE_URL`
/// (which may carry a path prefix).
fn verify_link_base(public_base_url: &url::Url) -> String {
    format!(
        "{}/api/raffles/verify_subscriber/?code=",
        public_base_url.as_str().trim_end_matches('/')
    )
}
