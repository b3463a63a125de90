//! Promos in the engine: announcing committed changes to the registry,
//! stopping deleted promos, refreshing promos whose store or product
//! changed, preparing a quantity change, and the live `running/` view.
//!
//! A change is announced after it is committed and before the client hears
//! of it, and the call waits until the registry has applied it, so a client
//! that got its answer sees the change in every later read. In cluster mode
//! the other instances are told too, and read the promo again
//! ([`Engine::follow_promo`]).

use super::{Engine, EngineError};
use chrono::Utc;

use crate::actors::promo_registry::{PrepareQuantityChange, PromoChanged, PromoRemoved};
use crate::cluster::events::ClusterEvent;
use crate::cluster::forward::{Answer, Call};
use crate::db::leases::LeaseKey;
use crate::db::{self, DbError, JsonListing, PageWindow, Violation};
use crate::domain::promo::FlashPromo;
use crate::telemetry::prometheus;

impl Engine {
    /// Tells the registry about a committed promo (created or changed); it
    /// starts, redefines or stops the promo's actor. The message is queued
    /// when the call starts, so it is not lost if the caller goes away.
    pub async fn announce_promo(&self, promo: &FlashPromo) -> Result<(), EngineError> {
        self.tell_cluster(ClusterEvent::PromoChanged { promo_id: promo.id });
        self.apply_promo(promo).await
    }

    /// Hands a promo's committed terms to this instance's registry.
    async fn apply_promo(&self, promo: &FlashPromo) -> Result<(), EngineError> {
        prometheus::awaiting(
            "promo_registry",
            self.registry.send(PromoChanged {
                promo: promo.clone(),
            }),
        )
        .await
        .map_err(EngineError::mailbox("promo registry"))
    }

    /// Stops the actors of deleted promos (their rows went with a cascade).
    pub async fn stop_promos(&self, promo_ids: &[i64]) -> Result<(), EngineError> {
        for &promo_id in promo_ids {
            self.tell_cluster(ClusterEvent::PromoRemoved { promo_id });
        }
        for &promo_id in promo_ids {
            self.remove_promo(promo_id).await?;
        }
        Ok(())
    }

    /// Stops this instance's actor of a deleted promo.
    async fn remove_promo(&self, promo_id: i64) -> Result<(), EngineError> {
        prometheus::awaiting(
            "promo_registry",
            self.registry.send(PromoRemoved { promo_id }),
        )
        .await
        .map_err(EngineError::mailbox("promo registry"))
    }

    /// Another instance changed promo `promo_id`: reads it again and hands
    /// it to this instance's registry (which stops it if it is gone).
    pub async fn follow_promo(&self, promo_id: i64) -> Result<(), EngineError> {
        match db::promos::find_promo(&self.pool, promo_id).await? {
            Some(promo) => self.apply_promo(&promo).await,
            None => self.remove_promo(promo_id).await,
        }
    }

    /// Another instance deleted promo `promo_id`.
    pub async fn follow_removed_promo(&self, promo_id: i64) -> Result<(), EngineError> {
        self.remove_promo(promo_id).await
    }

    /// Re-reads the promos whose embedded store or product may have changed
    /// and announces them, so eligibility uses the new place at once.
    pub async fn refresh_promos(&self, promo_ids: &[i64]) -> Result<(), EngineError> {
        for promo in db::promos::find_promos(&self.pool, promo_ids).await? {
            self.announce_promo(&promo).await?;
        }
        Ok(())
    }

    /// Asks a running promo's actor to take no hold that would need more
    /// than `quantity` units; refused when more are already held or sold.
    /// In cluster mode an actor elsewhere is asked through its instance.
    pub async fn prepare_quantity_change(
        &self,
        promo_id: i64,
        quantity: u32,
    ) -> Result<(), EngineError> {
        let elsewhere = self.live_promos.actor_of(promo_id).is_none();
        if let (Some(forwarder), true) = (&self.forwarder, elsewhere) {
            let call = Call::PrepareQuantity { promo_id, quantity };
            return match forwarder
                .call_if_owned(LeaseKey::promo(promo_id), &call)
                .await?
            {
                // No actor anywhere: nothing holds units to check against.
                None | Some(Answer::Prepared) => Ok(()),
                Some(Answer::Refused { error }) => Err(error.into()),
                Some(_) => Err(EngineError::Busy("the owning instance misunderstood")),
            };
        }
        self.prepare_quantity_here(promo_id, quantity).await
    }

    /// [`Engine::prepare_quantity_change`] for an actor of this instance.
    pub(super) async fn prepare_quantity_here(
        &self,
        promo_id: i64,
        quantity: u32,
    ) -> Result<(), EngineError> {
        prometheus::awaiting(
            "promo_registry",
            self.registry
                .send(PrepareQuantityChange { promo_id, quantity }),
        )
        .await
        .map_err(EngineError::mailbox("promo registry"))?
        .map_err(|_| DbError::Violation(Violation::QuantityBelowCommitted).into())
    }

    /// The promos running now, by id, as JSON.
    pub fn running(&self, window: PageWindow) -> JsonListing {
        self.live_promos.running_json(Utc::now(), window)
    }
}
