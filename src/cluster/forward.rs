//! Forwarding (cluster mode): a reserve, complete or cancel for a promo
//! another instance owns, and an entry into a campaign another instance
//! owns, go to that instance over NATS request-reply, and its answer is
//! relayed as if it had been decided here.
//!
//! Each instance serves calls on its own subject (`calls.<instance>`); the
//! caller finds the owner in the promo's lease (`db::leases`, remembered for
//! [`OWNER_MEMORY`]). What can go wrong maps onto the single-instance
//! answers: no owner yet, or an owner that has gone (no responders), is
//! `unavailable` with nothing changed; an owner that took the call and went
//! quiet past the deadline leaves the outcome unknown, exactly as a commit
//! whose answer was lost; the owner's own refusals travel as they are.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::RequestErrorKind;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Cluster;
use crate::db::leases::{self, LeaseKey};
use crate::db::{DbError, DbPool, Violation};
use crate::domain::eligibility::Ineligible;
use crate::domain::raffle::Entry;
use crate::domain::reservation::{Reservation, ReservationRecord, ReservationStatus};
use crate::domain::stock::ReserveError;
use crate::engine::deadlines::OUTCOME_WAIT;
use crate::engine::{Engine, EngineError};
use crate::telemetry::prometheus;

/// How long a known owner is trusted before its lease is read again.
const OWNER_MEMORY: Duration = Duration::from_millis(500);
/// How long a call waits for something that should have an owner to get
/// one: a little more than a lease takes to expire and be taken over.
const OWNER_WAIT: Duration = Duration::from_secs(5);
/// How often the lease is read again while waiting for an owner.
const OWNER_POLL: Duration = Duration::from_millis(50);
/// How long a forwarded call may take: as long as the owner itself may wait
/// for its outcome, and a little more for the trip.
pub const FORWARD_DEADLINE: Duration = Duration::from_secs(OUTCOME_WAIT.as_secs() + 1);

/// A call for the owner of a promo.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Call {
    Reserve {
        user_id: i64,
        promo_id: i64,
        origin: Option<CallOrigin>,
    },
    Complete {
        user_id: i64,
        id: i64,
    },
    Cancel {
        user_id: i64,
        id: i64,
    },
    Enter {
        campaign_id: i64,
        email: String,
        data: serde_json::Value,
    },
    /// Take no hold that would need more than `quantity` units (before a
    /// lower quantity is written).
    PrepareQuantity {
        promo_id: i64,
        quantity: u32,
    },
}

/// The WebSocket request a forwarded reserve came from.
#[derive(Debug, Serialize, Deserialize)]
pub struct CallOrigin {
    pub instance: String,
    pub session_id: u64,
    pub request_id: serde_json::Value,
}

/// The owner's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum Answer {
    Done { reservation: WireReservation },
    Entered { entry: Entry },
    Prepared,
    Refused { error: WireError },
}

/// A reservation row as the owner left it (the caller embeds the promo).
#[derive(Debug, Serialize, Deserialize)]
pub struct WireReservation {
    pub id: i64,
    pub reservation_id: Uuid,
    pub promo_id: i64,
    pub status: ReservationStatus,
    pub occurrence_start: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// An [`EngineError`] in transit: its code, and what rebuilds it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireError {
    NotFound,
    PromoNotRunning,
    NotInSegment,
    LocationUnknown,
    TooFar,
    AlreadyReserved,
    AllUnitsHeld { retry_after_secs: u64 },
    SoldOut,
    ReservationExpired,
    ReservationCancelled,
    AlreadyCompleted,
    AlreadySubscribed,
    CampaignClosed,
    QuantityBelowCommitted,
    OutcomeUnknown,
    Overloaded,
    NotWritten,
    Busy,
    Internal,
}

impl From<&EngineError> for WireError {
    fn from(error: &EngineError) -> WireError {
        match error {
            EngineError::NotFound => WireError::NotFound,
            EngineError::PromoNotRunning => WireError::PromoNotRunning,
            EngineError::Ineligible(Ineligible::NotInSegment) => WireError::NotInSegment,
            EngineError::Ineligible(Ineligible::LocationUnknown) => WireError::LocationUnknown,
            EngineError::Ineligible(Ineligible::TooFar) => WireError::TooFar,
            EngineError::Stock(ReserveError::AlreadyReserved) => WireError::AlreadyReserved,
            EngineError::Stock(ReserveError::AllUnitsHeld { retry_after_secs }) => {
                WireError::AllUnitsHeld {
                    retry_after_secs: *retry_after_secs,
                }
            }
            EngineError::Stock(ReserveError::SoldOut) => WireError::SoldOut,
            EngineError::ReservationExpired => WireError::ReservationExpired,
            EngineError::ReservationCancelled => WireError::ReservationCancelled,
            EngineError::AlreadyCompleted => WireError::AlreadyCompleted,
            EngineError::AlreadySubscribed => WireError::AlreadySubscribed,
            EngineError::CampaignClosed => WireError::CampaignClosed,
            EngineError::OutcomeUnknown => WireError::OutcomeUnknown,
            EngineError::Overloaded(_) => WireError::Overloaded,
            EngineError::NotWritten(_) | EngineError::Database(DbError::Unavailable(_)) => {
                WireError::NotWritten
            }
            EngineError::Busy(_) | EngineError::Mailbox { .. } => WireError::Busy,
            EngineError::Database(DbError::Violation(Violation::QuantityBelowCommitted)) => {
                WireError::QuantityBelowCommitted
            }
            EngineError::InvalidLocation | EngineError::Database(_) => WireError::Internal,
        }
    }
}

impl From<WireError> for EngineError {
    fn from(error: WireError) -> EngineError {
        match error {
            WireError::NotFound => EngineError::NotFound,
            WireError::PromoNotRunning => EngineError::PromoNotRunning,
            WireError::NotInSegment => EngineError::Ineligible(Ineligible::NotInSegment),
            WireError::LocationUnknown => EngineError::Ineligible(Ineligible::LocationUnknown),
            WireError::TooFar => EngineError::Ineligible(Ineligible::TooFar),
            WireError::AlreadyReserved => EngineError::Stock(ReserveError::AlreadyReserved),
            WireError::AllUnitsHeld { retry_after_secs } => {
                EngineError::Stock(ReserveError::AllUnitsHeld { retry_after_secs })
            }
            WireError::SoldOut => EngineError::Stock(ReserveError::SoldOut),
            WireError::ReservationExpired => EngineError::ReservationExpired,
            WireError::ReservationCancelled => EngineError::ReservationCancelled,
            WireError::AlreadyCompleted => EngineError::AlreadyCompleted,
            WireError::AlreadySubscribed => EngineError::AlreadySubscribed,
            WireError::CampaignClosed => EngineError::CampaignClosed,
            WireError::QuantityBelowCommitted => {
                EngineError::Database(DbError::Violation(Violation::QuantityBelowCommitted))
            }
            WireError::OutcomeUnknown => EngineError::OutcomeUnknown,
            WireError::Overloaded => EngineError::Overloaded(
                "The instance that decides this is confirming an earlier write or is overloaded; \
                 nothing was changed. Retry in a moment.",
            ),
            WireError::NotWritten => EngineError::NotWritten("the owning instance could not write"),
            WireError::Busy => EngineError::Busy("the owning instance could not take the call"),
            WireError::Internal => EngineError::Busy("the owning instance failed the call"),
        }
    }
}

/// Sends calls to owners and remembers who owns what.
#[derive(Clone)]
pub struct Forwarder {
    cluster: Cluster,
    pool: DbPool,
    owners: Arc<Mutex<HashMap<LeaseKey, (String, Instant)>>>,
}

impl Forwarder {
    pub fn new(cluster: Cluster, pool: DbPool) -> Forwarder {
        Forwarder {
            cluster,
            pool,
            owners: Arc::default(),
        }
    }

    /// This instance's name.
    pub fn instance_id(&self) -> &Arc<str> {
        self.cluster.instance_id()
    }

    /// Sends `call` to the owner of `key` and waits for its answer. With no
    /// owner yet (just created, or being taken over) it waits up to
    /// [`OWNER_WAIT`] for one, as a single instance would answer once its
    /// actor has started.
    pub async fn call(&self, key: LeaseKey, call: &Call) -> Result<Answer, EngineError> {
        let give_up = Instant::now() + OWNER_WAIT;
        loop {
            if let Some(answer) = self.call_if_owned(key, call).await? {
                return Ok(answer);
            }
            if Instant::now() + OWNER_POLL >= give_up {
                return Err(EngineError::Busy("the owning instance is changing"));
            }
            tokio::time::sleep(OWNER_POLL).await;
        }
    }

    /// [`Forwarder::call`], or `None` when nobody owns `key` now.
    pub async fn call_if_owned(
        &self,
        key: LeaseKey,
        call: &Call,
    ) -> Result<Option<Answer>, EngineError> {
        let owner = self.owner_of(key).await?;
        let Some(owner) = owner else {
            prometheus::forwarded("no_owner");
            return Ok(None);
        };
        if *owner == **self.instance_id() {
            // This instance holds the lease and is starting its actor.
            return Err(EngineError::Busy("the owning instance is starting"));
        }
        if !self.cluster.is_connected() {
            // It would wait in the client's buffer and might run long after
            // its caller gave up: refuse it now, nothing was changed.
            prometheus::forwarded("failed");
            return Err(EngineError::NotWritten(
                "the other instances cannot be reached",
            ));
        }
        let payload = serde_json::to_vec(call)
            .map_err(|_| EngineError::Busy("the call could not be encoded"))?;
        let subject = calls_subject(&self.cluster, &owner);
        let request = self.cluster.client().request(subject, Bytes::from(payload));
        let reply = match tokio::time::timeout(FORWARD_DEADLINE, request).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(error)) if error.kind() == RequestErrorKind::NoResponders => {
                // The owner is gone: nothing was done.
                self.forget_owner(key);
                prometheus::forwarded("no_owner");
                return Err(EngineError::Busy("the owning instance is changing"));
            }
            Ok(Err(error)) if error.kind() != RequestErrorKind::TimedOut => {
                tracing::warn!(%error, "forwarded call not sent");
                prometheus::forwarded("failed");
                return Err(EngineError::Busy(
                    "the owning instance could not be reached",
                ));
            }
            _ => {
                // The owner may have decided: as a commit whose answer was lost.
                self.forget_owner(key);
                prometheus::forwarded("timed_out");
                return Err(EngineError::OutcomeUnknown);
            }
        };
        prometheus::forwarded("answered");
        serde_json::from_slice(&reply.payload)
            .map(Some)
            .map_err(|error| {
                tracing::error!(%error, "unreadable answer from an owning instance");
                EngineError::OutcomeUnknown
            })
    }

    async fn owner_of(&self, key: LeaseKey) -> Result<Option<String>, EngineError> {
        if let Some(owner) = self.remembered(key) {
            return Ok(Some(owner));
        }
        let stored = leases::find(&self.pool, &[key]).await?;
        let owner = stored
            .into_iter()
            .find(|lease| lease.live)
            .map(|lease| lease.owner);
        if let (Some(owner), Ok(mut owners)) = (&owner, self.owners.lock()) {
            owners.insert(key, (owner.clone(), Instant::now()));
        }
        Ok(owner)
    }

    fn remembered(&self, key: LeaseKey) -> Option<String> {
        let owners = self.owners.lock().ok()?;
        let (owner, at) = owners.get(&key)?;
        (at.elapsed() < OWNER_MEMORY).then(|| owner.clone())
    }

    fn forget_owner(&self, key: LeaseKey) {
        if let Ok(mut owners) = self.owners.lock() {
            owners.remove(&key);
        }
    }
}

fn calls_subject(cluster: &Cluster, instance: &str) -> String {
    cluster.subject(&format!("calls.{instance}"))
}

impl WireReservation {
    pub fn of(reservation: &Reservation) -> WireReservation {
        WireReservation {
            id: reservation.id,
            reservation_id: reservation.reservation_id,
            promo_id: reservation.promo.id,
            status: reservation.status,
            occurrence_start: reservation.occurrence_start,
            created_at: reservation.created_at,
            expires_at: reservation.expires_at,
        }
    }

    /// The row it describes, for `user_id`.
    pub fn record(&self, user_id: i64) -> ReservationRecord {
        ReservationRecord {
            id: self.id,
            reservation_id: self.reservation_id,
            promo_id: self.promo_id,
            user_id,
            status: self.status,
            occurrence_start: self.occurrence_start,
            created_at: self.created_at,
            expires_at: self.expires_at,
        }
    }
}

/// Serves the calls other instances forward to this one, each in its own
/// task, until the process ends.
pub async fn serve(cluster: Cluster, engine: Engine) -> anyhow::Result<()> {
    let subject = calls_subject(&cluster, cluster.instance_id());
    let mut calls = cluster.client().subscribe(subject).await?;
    let client = cluster.client().clone();
    actix::spawn(async move {
        while let Some(message) = calls.next().await {
            let Some(reply) = message.reply.clone() else {
                continue;
            };
            let (engine, client) = (engine.clone(), client.clone());
            actix::spawn(async move {
                let answer = match serde_json::from_slice::<Call>(&message.payload) {
                    Ok(call) => engine.answer_forwarded(call).await,
                    Err(error) => {
                        tracing::warn!(%error, "unreadable forwarded call");
                        Answer::Refused {
                            error: WireError::Internal,
                        }
                    }
                };
                match serde_json::to_vec(&answer) {
                    Ok(payload) => {
                        if let Err(error) = client.publish(reply, Bytes::from(payload)).await {
                            tracing::warn!(%error, "answer to a forwarded call not sent");
                        }
                    }
                    Err(error) => tracing::error!(%error, "answer not encoded"),
                }
            });
        }
        tracing::warn!("the forwarded-calls subscription ended");
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through_the_wire(error: EngineError) -> EngineError {
        let encoded = serde_json::to_vec(&Answer::Refused {
            error: WireError::from(&error),
        })
        .unwrap();
        match serde_json::from_slice(&encoded).unwrap() {
            Answer::Refused { error } => error.into(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_refusal_keeps_its_code_and_retry_hint_across_instances() {
        let refusals = [
            EngineError::NotFound,
            EngineError::PromoNotRunning,
            EngineError::Ineligible(Ineligible::NotInSegment),
            EngineError::Ineligible(Ineligible::LocationUnknown),
            EngineError::Ineligible(Ineligible::TooFar),
            EngineError::Stock(ReserveError::AlreadyReserved),
            EngineError::Stock(ReserveError::AllUnitsHeld {
                retry_after_secs: 41,
            }),
            EngineError::Stock(ReserveError::SoldOut),
            EngineError::ReservationExpired,
            EngineError::ReservationCancelled,
            EngineError::AlreadyCompleted,
            EngineError::AlreadySubscribed,
            EngineError::CampaignClosed,
            EngineError::OutcomeUnknown,
            EngineError::Overloaded("busy"),
            EngineError::NotWritten("away"),
            EngineError::Busy("starting"),
            EngineError::Database(DbError::Violation(Violation::QuantityBelowCommitted)),
        ];
        for refusal in refusals {
            let (code, retry_after) = (refusal.code(), refusal.retry_after());
            let relayed = through_the_wire(refusal);
            assert_eq!(relayed.code(), code);
            assert_eq!(relayed.retry_after(), retry_after, "{code}");
        }
    }

    #[test]
    fn a_call_reads_back_as_sent() {
        let call = Call::Reserve {
            user_id: 7,
            promo_id: 9,
            origin: Some(CallOrigin {
                instance: "b".into(),
                session_id: 3,
                request_id: serde_json::json!("r-1"),
            }),
        };
        let encoded = serde_json::to_string(&call).unwrap();
        assert!(encoded.contains(r#""call":"reserve""#), "{encoded}");
        let decoded: Call = serde_json::from_str(&encoded).unwrap();
        assert!(matches!(
            decoded,
            Call::Reserve {
                user_id: 7,
                promo_id: 9,
                origin: Some(CallOrigin { session_id: 3, .. })
            }
        ));
    }
}
