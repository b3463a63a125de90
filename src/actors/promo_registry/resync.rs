//! The registry's periodic check against PostgreSQL: a lost announcement or a
//! change made by another instance (or to a promo's store or product) is
//! picked up within one resync interval.
//!
//! At most one resync is in flight (one asked for meanwhile runs right after
//! it), and each knows the catalogue generation it started at, so a load
//! never overrides a promo changed after the load began, nor brings back one
//! deleted since. Each first settles the `held` rows nobody else will (run
//! out, or of a switched-off promo), leaving alone those a live actor owns.

use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;

use super::PromoRegistry;
use crate::actors::notifier::AnnounceStart;
use crate::db;
use crate::domain::promo::{FlashPromo, PromoStatus};

/// Checks the catalogue against PostgreSQL now, without waiting for the
/// interval (another instance's catalogue change, a NATS reconnect).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ResyncNow;

impl Handler<ResyncNow> for PromoRegistry {
    type Result = ();

    fn handle(&mut self, _: ResyncNow, ctx: &mut Self::Context) {
        self.resync(ctx);
    }
}

/// The longest one resync may take before the next may start.
const LOAD_TIMEOUT: Duration = Duration::from_secs(60);

impl PromoRegistry {
    /// Reloads the live promos from PostgreSQL and applies what changed.
    pub(super) fn resync(&mut self, ctx: &mut Context<Self>) {
        if self.resyncs.request() {
            self.start_resync(ctx);
        }
    }

    fn start_resync(&mut self, ctx: &mut Context<Self>) {
        let started = self.catalogue.generation();
        let (known, owned) = self.catalogue.known_and_owned();
        let pool = self.links.pool.clone();
        let load = async move {
            let settled = db::reservations::settle_stale_holds(&pool, &owned).await?;
            let promos = db::promos::load_live_promos(&pool, &known).await?;
            Ok::<_, db::DbError>((settled, promos))
        };
        let load = async move {
            tokio::time::timeout(LOAD_TIMEOUT, load)
                .await
                .unwrap_or_else(|_| Err(db::DbError::Unavailable("resync timed out".into())))
        };
        ctx.spawn(load.into_actor(self).map(move |loaded, registry, ctx| {
            match loaded {
                Ok((settled, promos)) => {
                    if settled > 0 {
                        tracing::info!(settled, "stale holds settled");
                    }
                    registry.apply_loaded(promos, started, ctx);
                }
                Err(error) => tracing::warn!(%error, "could not reload live promos"),
            }
            if registry.resyncs.finish() {
                registry.start_resync(ctx);
            }
        }));
    }

    /// Applies a load that began at generation `started`.
    fn apply_loaded(&mut self, promos: Vec<FlashPromo>, started: u64, ctx: &mut Context<Self>) {
        let applied = self.catalogue.apply_loaded(promos, started);
        Self::redefine(applied.redefined);
        for (promo_id, actor) in applied.deleted {
            self.forget_deleted(promo_id, actor);
        }
        // A start whose announcement failed part-way is announced again (the
        // daily claims absorb repeats); watchers are refreshed on the way.
        // Only promos that still run once the load is applied, and not those
        // the reconcile below starts (it announces them itself).
        let announced: Vec<i64> = self
            .catalogue
            .iter()
            .filter(|entry| entry.actor.is_some() && !entry.end_told)
            .map(|entry| entry.promo.id)
            .collect();
        self.reconcile(ctx);
        let now = Utc::now();
        for promo_id in announced {
            let Some(entry) = self.catalogue.get(promo_id) else {
                continue;
            };
            let promo = entry.current(now);
            if entry.actor.is_some() && !entry.end_told && promo.status == PromoStatus::Running {
                self.notifier.do_send(AnnounceStart { promo });
            }
        }
    }
}
