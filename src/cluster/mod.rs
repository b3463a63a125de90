//! Cluster mode (`NATS_URL` set): what one instance needs to be one of
//! several on a shared PostgreSQL database and a shared NATS server.
//!
//! [`Cluster`] is this instance's handle on NATS: its name, the subject
//! prefix every instance of the cluster shares, and the connection. Events
//! every instance should hear ([`events::ClusterEvent`]) are published on one
//! subject and dispatched on arrival by [`listener`]; calls for a promo or a
//! campaign owned elsewhere go to its owner with request-reply
//! ([`forward`]). Ownership itself lives in PostgreSQL, not here
//! (`actors::lease_keeper`, `db::leases`): NATS carries messages, the
//! database decides.
//!
//! With `NATS_URL` unset there is no `Cluster`, and every part of the engine
//! that takes an `Option<Cluster>` delivers in-process only.

pub mod events;
pub mod forward;
pub mod listener;
pub mod resync;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_nats::connection::State;
use async_nats::Event;
use bytes::Bytes;
use tokio::sync::{mpsc, Notify};

use crate::config::ClusterConfig;
use events::{ClusterEvent, Envelope};

/// Events waiting to be handed to the NATS client at most; past this the
/// connection is far behind, and an event is dropped (and logged) rather
/// than queued without bound: the resyncs heal invalidations, and a frame a
/// session missed stays in the REST inbox.
const OUTBOX_CAPACITY: usize = 65_536;

/// The last token of the subject every instance hears events on.
const EVENTS: &str = "events";

/// How long a connect to NATS may take at start-up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// This instance's handle on the cluster; cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    instance_id: Arc<str>,
    prefix: String,
    client: async_nats::Client,
    /// Told each time the connection is (re)established.
    connected: Arc<Notify>,
    /// Encoded events in publishing order, drained by one task, so that
    /// other instances hear this one's events in the order it sent them
    /// (`reservation.held` before `reservation.expired`).
    outbox: mpsc::Sender<Bytes>,
}

impl Cluster {
    /// Connects to `NATS_URL`; the client reconnects by itself afterwards
    /// (for ever, with backoff), buffering what is published meanwhile.
    pub async fn connect(config: &ClusterConfig) -> anyhow::Result<Cluster> {
        let connected = Arc::new(Notify::new());
        let on_connect = connected.clone();
        let client = async_nats::ConnectOptions::new()
            .name(format!("promo-engine {}", config.instance_id))
            .connection_timeout(CONNECT_TIMEOUT)
            .retry_on_initial_connect()
            .max_reconnects(None)
            // Forwarded calls keep their own deadline (forward::FORWARD_DEADLINE).
            .request_timeout(Some(forward::FORWARD_DEADLINE))
            .event_callback(move |event| {
                let on_connect = on_connect.clone();
                async move {
                    tracing::info!(%event, "nats connection");
                    if matches!(event, Event::Connected) {
                        on_connect.notify_one();
                    }
                }
            })
            .connect(config.nats_url.as_str())
            .await
            .with_context(|| format!("cannot reach NATS at NATS_URL={}", config.nats_url))?;
        tracing::info!(
            instance = %config.instance_id,
            prefix = %config.subject_prefix,
            "cluster mode: connected to NATS"
        );
        let (outbox, queued) = mpsc::channel(OUTBOX_CAPACITY);
        let events_subject = subject_of(&config.subject_prefix, EVENTS);
        tokio::spawn(drain_outbox(client.clone(), events_subject, queued));
        Ok(Cluster {
            inner: Arc::new(Inner {
                instance_id: Arc::from(config.instance_id.as_str()),
                prefix: config.subject_prefix.clone(),
                client,
                connected,
                outbox,
            }),
        })
    }

    /// This instance's name (`INSTANCE_ID`).
    pub fn instance_id(&self) -> &Arc<str> {
        &self.inner.instance_id
    }

    /// The NATS client (for subscriptions of this module's parts).
    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    /// A subject of this cluster: the prefix and `tail`.
    pub fn subject(&self, tail: &str) -> String {
        subject_of(&self.inner.prefix, tail)
    }

    /// The subject every instance hears events on.
    pub fn events_subject(&self) -> String {
        self.subject(EVENTS)
    }

    /// Waits for the next (re)connection to NATS; one that happened since
    /// the last call is reported at once. What was published to this
    /// instance while it was away is lost, so this is when to resync.
    pub async fn reconnected(&self) {
        self.inner.connected.notified().await;
    }

    /// True while the NATS connection is up (for `/readyz`).
    pub fn is_connected(&self) -> bool {
        self.inner.client.connection_state() == State::Connected
    }

    /// Tells every other instance of `event`, after this instance's earlier
    /// events. Fire and forget: the client buffers while reconnecting, and
    /// the periodic resyncs heal what is lost for good.
    pub fn publish(&self, event: ClusterEvent) {
        let envelope = Envelope {
            from: self.inner.instance_id.to_string(),
            event,
        };
        let payload = match serde_json::to_vec(&envelope) {
            Ok(payload) => Bytes::from(payload),
            Err(error) => {
                tracing::error!(%error, "cannot encode a cluster event");
                return;
            }
        };
        if let Err(error) = self.inner.outbox.try_send(payload) {
            tracing::warn!(%error, "cluster event dropped: NATS is far behind");
        }
    }
}

/// A subject of the cluster under `prefix`.
fn subject_of(prefix: &str, tail: &str) -> String {
    format!("{prefix}.{tail}")
}

/// Hands queued events to the NATS client one after the other, in order.
async fn drain_outbox(
    client: async_nats::Client,
    subject: String,
    mut queued: mpsc::Receiver<Bytes>,
) {
    while let Some(payload) = queued.recv().await {
        if let Err(error) = client.publish(subject.clone(), payload).await {
            tracing::warn!(%error, "cluster event not published");
        }
    }
}
