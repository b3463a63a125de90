//! The cluster's safety net for lost events: the audience is reloaded from
//! PostgreSQL every [`AUDIENCE_RESYNC_EVERY`], and after a NATS reconnect
//! (when whatever was published meanwhile is lost) both the audience and
//! the promo registry resync at once. The registry also resyncs on its own
//! timer (`REGISTRY_RESYNC_SECONDS`).
//!
//! Client profiles carry no change time for segments or deletions, so the
//! reload is the whole audience, one query: every 30 s in cluster mode only,
//! and the index applies only what differs and nothing changed meanwhile.

use std::time::Duration;

use tokio::time::MissedTickBehavior;

use super::Cluster;
use crate::actors::audience::{ApplyResync, BeginResync};
use crate::actors::promo_registry::ResyncNow;
use crate::db::{self, DbError};
use crate::engine::Engine;

/// How often the audience is reloaded in cluster mode.
pub const AUDIENCE_RESYNC_EVERY: Duration = Duration::from_secs(30);

/// Runs the resyncs for the life of the process.
pub fn start(cluster: Cluster, engine: Engine) {
    actix::spawn(async move {
        let mut ticks = tokio::time::interval(AUDIENCE_RESYNC_EVERY);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The first tick is now, and the audience was just loaded.
        ticks.tick().await;
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = cluster.reconnected() => {
                    tracing::info!("connected to NATS: resyncing what events may have missed");
                    engine.registry().do_send(ResyncNow);
                }
            }
            if let Err(error) = resync_audience(&engine).await {
                tracing::warn!(%error, "could not reload the audience");
            }
        }
    });
}

/// Reloads every member and lets the index fix what differs.
async fn resync_audience(engine: &Engine) -> Result<(), DbError> {
    let unavailable = |error: actix::MailboxError| DbError::Unavailable(error.to_string());
    let since = engine
        .audience()
        .send(BeginResync)
        .await
        .map_err(unavailable)?;
    let members = db::clients::load_audience(engine.pool()).await?;
    let fixed = engine
        .audience()
        .send(ApplyResync { members, since })
        .await
        .map_err(unavailable)?;
    if fixed > 0 {
        tracing::info!(fixed, "audience resync fixed members");
    }
    Ok(())
}
