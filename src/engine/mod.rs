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

pub mod deadlines;
pub mod error;
pub mod promos;
pub mod raffles;
pub mod reservations;
pub mod shoppers;

use std::sync::Arc;

use actix::{Actor, Addr};

use crate::actors::audience::{AudienceIndex, Members};
use crate::actors::campaign::CampaignLinks;
use crate::actors::campaign_registry::CampaignRegistry;
use crate::actors::mailer::Mailer;
use crate::actors::notifier::Notifier;
use crate::actors::promo_registry::{LivePromos, PromoRegistry};
use crate::actors::session_hub::SessionHub;
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
    campaigns: Addr<CampaignRegistry>,
    mailer: Addr<Mailer>,
}

impl Engine {
    /// Loads the audience and starts every long-lived actor.
    pub async fn start(pool: &DbPool, config: &Config) -> anyhow::Result<Engine> {
        let members = db::clients::load_audience(pool).await?;
        tracing::info!(clients = members.len(), "audience loaded");
        let audience = AudienceIndex::new(members);
        let members = audience.members();
        let audience = audience.start();
        let hub = SessionHub::default().start();
        let notifier = Notifier::new(
            pool.clone(),
            audience.clone(),
            hub.clone(),
            config.notify_timezone,
        )
        .start();
        let registry = PromoRegistry::new(
            pool.clone(),
            config.reservation_hold,
            notifier.clone(),
            hub.clone(),
        )
        .resync_every(config.registry_resync_interval);
        let live_promos = registry.live_promos();
        let registry = registry.start();
        let mailer = Mailer::new(pool.clone(), config)?.start();
        let campaigns = CampaignRegistry::new(CampaignLinks {
            pool: pool.clone(),
            hub: hub.clone(),
            mailer: mailer.clone(),
            verify_link_base: Arc::from(verify_link_base(&config.public_base_url)),
        })
        .start();
        Ok(Engine {
            pool: pool.clone(),
            registry,
            live_promos,
            audience,
            members,
            notifier,
            hub,
            campaigns,
            mailer,
        })
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
