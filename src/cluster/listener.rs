//! Hears the cluster's events and hands each to the part of this instance
//! it concerns. Runs as one task for the life of the process; the NATS
//! client resubscribes by itself after a reconnect.

use actix::Addr;
use futures_util::StreamExt;

use super::events::{ClusterEvent, Envelope};
use super::Cluster;
use crate::actors::promo_registry::{Counts, PromoRegistry, RemoteStock};

/// The parts of this instance that act on events.
#[derive(Clone)]
pub struct Sinks {
    pub registry: Addr<PromoRegistry>,
}

/// Subscribes to the events subject and dispatches until the process ends.
pub async fn start(cluster: Cluster, sinks: Sinks) -> anyhow::Result<()> {
    let mut events = cluster.client().subscribe(cluster.events_subject()).await?;
    let me = cluster.instance_id().clone();
    actix::spawn(async move {
        while let Some(message) = events.next().await {
            match serde_json::from_slice::<Envelope>(&message.payload) {
                Ok(envelope) if *envelope.from == *me => {}
                Ok(envelope) => dispatch(&sinks, envelope.event),
                Err(error) => tracing::warn!(%error, "unreadable cluster event"),
            }
        }
        tracing::warn!("the cluster's event subscription ended");
    });
    Ok(())
}

fn dispatch(sinks: &Sinks, event: ClusterEvent) {
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
        other => tracing::debug!(?other, "cluster event not handled here"),
    }
}
