//! Hears the cluster's events and hands each to the part of this instance
//! it concerns. Runs as one task for the life of the process; the NATS
//! client resubscribes by itself after a reconnect.
//!
//! Frames for sessions go straight to the local hub, in arrival order;
//! events that need PostgreSQL (a promo, a shopper, a campaign read again)
//! each run as their own task, so a slow read never holds up frames. What
//! arrives here is applied locally and never published again.

use std::sync::Arc;

use actix::Addr;
use futures_util::StreamExt;

use super::events::{ClusterEvent, Envelope, Notice};
use super::Cluster;
use crate::actors::promo_registry::{Counts, PromoRegistry, RemoteStock, ResyncNow};
use crate::actors::session_hub::{AddWatchers, PushToAdmins, PushToUser, PushToUsers};
use crate::actors::sessions::{local_origin, notification_frames};
use crate::db;
use crate::domain::eligibility::AudienceMember;
use crate::domain::GeoPoint;
use crate::engine::{Engine, EngineError};

/// Forgets every verified credential of one account (the HTTP layer's
/// credential cache, which the engine knows nothing of).
pub type ForgetCredentials = Arc<dyn Fn(i64) + Send + Sync>;

/// The parts of this instance that act on events.
#[derive(Clone)]
pub struct Sinks {
    pub registry: Addr<PromoRegistry>,
    /// The local actors, through the engine's `follow_*` calls.
    pub engine: Engine,
    pub forget_credentials: ForgetCredentials,
}

/// Subscribes to the events subject and dispatches until the process ends.
pub async fn start(cluster: Cluster, sinks: Sinks) -> anyhow::Result<()> {
    let mut events = cluster.client().subscribe(cluster.events_subject()).await?;
    let me = cluster.instance_id().clone();
    actix::spawn(async move {
        while let Some(message) = events.next().await {
            match serde_json::from_slice::<Envelope>(&message.payload) {
                Ok(envelope) if *envelope.from == *me => {}
                Ok(envelope) => dispatch(&sinks, &me, envelope.event),
                Err(error) => tracing::warn!(%error, "unreadable cluster event"),
            }
        }
        tracing::warn!("the cluster's event subscription ended");
    });
    Ok(())
}

fn dispatch(sinks: &Sinks, me: &str, event: ClusterEvent) {
    match event {
        ClusterEvent::PromoStock {
            promo_id,
            quantity,
            held,
            sold,
            sold_total,
        } => sinks.registry.do_send(RemoteStock {
            promo_id,
            counts: Counts {
                quantity,
                held,
                sold,
                sold_total,
            },
        }),
        ClusterEvent::CredentialsChanged { user_id } => (sinks.forget_credentials)(user_id),
        ClusterEvent::CatalogueChanged => sinks.registry.do_send(ResyncNow),
        ClusterEvent::ShopperChanged {
            user_id,
            location,
            segment_ids,
        } => follow_member(&sinks.engine, user_id, location, segment_ids),
        ClusterEvent::CampaignCounts {
            campaign_id,
            subscriber_count,
            verified_count,
        } => sinks
            .engine
            .follow_campaign_counts(campaign_id, subscriber_count, verified_count),
        event @ (ClusterEvent::Notifications { .. }
        | ClusterEvent::UserFrame { .. }
        | ClusterEvent::Watchers { .. }
        | ClusterEvent::AdminFrame { .. }) => to_sessions(&sinks.engine, me, event),
        event => follow(sinks.engine.clone(), event),
    }
}

/// Applies another instance's change of a shopper at once, in the order it
/// was published.
fn follow_member(
    engine: &Engine,
    user_id: i64,
    location: Option<(f64, f64)>,
    segment_ids: Vec<i64>,
) {
    let location = match location.map(|(latitude, longitude)| GeoPoint::parse(latitude, longitude))
    {
        Some(Err(error)) => return tracing::warn!(%error, user_id, "unreadable shopper location"),
        Some(Ok(point)) => Some(point),
        None => None,
    };
    engine.follow_member(AudienceMember {
        user_id,
        location,
        segment_ids,
    });
}

/// Hands frames and watchers published elsewhere to this instance's hub.
fn to_sessions(engine: &Engine, me: &str, event: ClusterEvent) {
    let hub = engine.hub();
    match event {
        ClusterEvent::Notifications {
            promo_json,
            notices,
        } => deliver_notifications(engine.clone(), &promo_json, &notices),
        ClusterEvent::UserFrame {
            user_id,
            frame,
            origin,
        } => hub.do_send(PushToUser {
            user_id,
            frame: Arc::from(frame),
            origin: origin.map(|origin| local_origin(origin, me)),
        }),
        ClusterEvent::Watchers { promo_id, user_ids } => {
            hub.do_send(AddWatchers { promo_id, user_ids })
        }
        ClusterEvent::AdminFrame { frame } => hub.do_send(PushToAdmins {
            frame: Arc::from(frame),
        }),
        other => tracing::debug!(?other, "not an event for sessions"),
    }
}

/// Pushes another instance's notifications to the sessions here and marks
/// delivered the ones that reached one, so a reconnecting session is not
/// sent them again.
fn deliver_notifications(engine: Engine, promo_json: &str, notices: &[Notice]) {
    let frames = notification_frames(promo_json, notices);
    actix::spawn(async move {
        let delivered = match engine.hub().send(PushToUsers { frames }).await {
            Ok(delivered) => delivered,
            Err(error) => return tracing::warn!(%error, "remote notifications not pushed"),
        };
        if delivered.is_empty() {
            return;
        }
        if let Err(error) = db::notifications::mark_delivered(engine.pool(), &delivered).await {
            tracing::warn!(%error, "could not mark remote notifications delivered");
        }
    });
}

/// Applies another instance's change that needs PostgreSQL read again.
fn follow(engine: Engine, event: ClusterEvent) {
    actix::spawn(async move {
        let followed: Result<(), EngineError> = match &event {
            ClusterEvent::PromoChanged { promo_id } => engine.follow_promo(*promo_id).await,
            ClusterEvent::PromoRemoved { promo_id } => engine.follow_removed_promo(*promo_id).await,
            ClusterEvent::ShopperRemoved { user_id } => engine.follow_shopper(*user_id).await,
            ClusterEvent::CampaignChanged { campaign_id } => {
                engine.follow_campaign(*campaign_id).await
            }
            ClusterEvent::CampaignClosed { campaign_id } => {
                engine.follow_closed_campaign(*campaign_id);
                Ok(())
            }
            other => {
                tracing::debug!(?other, "cluster event not handled here");
                Ok(())
            }
        };
        if let Err(error) = followed {
            tracing::warn!(?event, %error, "another instance's change not applied (the resync will)");
        }
    });
}
