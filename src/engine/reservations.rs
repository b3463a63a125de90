//! Reserving, completing and cancelling a one-minute hold, for REST and
//! WebSocket alike.
//!
//! A reserve reads the shopper from the audience's published snapshot and
//! goes straight to the promo's actor (found in the registry's snapshot, no
//! mailbox hop on the way), which answers once the hold is committed. A complete or cancel reads the shopper's own reservation
//! first (another shopper's is `NotFound`), sends a live hold to its actor,
//! and answers anything else from the stored state, which makes repeats
//! idempotent. Every call waits at most [`OUTCOME_WAIT`] for its outcome.
//!
//! In cluster mode a promo whose actor runs on another instance has its
//! reserve, complete or cancel sent there (`cluster::forward`) and the
//! owner's answer relayed, with the promo embedded from this instance's
//! snapshot; a call forwarded here is decided here or not at all.
//!
//! [`OUTCOME_WAIT`]: super::deadlines::OUTCOME_WAIT

use chrono::Utc;

use super::deadlines::within_outcome_wait;
use super::{Engine, EngineError};
use crate::actors::promo::{Cancel, Complete, PromoRefusal, Reserve, WsOrigin};
use crate::cluster::forward::{Answer, Call, CallOrigin};
use crate::db;
use crate::db::leases::LeaseKey;
use crate::domain::promo::PromoStatus;
use crate::domain::reservation::{Reservation, ReservationRecord, ReservationStatus};
use crate::domain::stock::ReleaseError;
use crate::telemetry::prometheus;

/// Where a call may be decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    /// Here, or by the promo's owner elsewhere (cluster mode).
    AnyOwner,
    /// Here only: the call was forwarded here already.
    HereOnly,
}

/// What a release asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Release {
    Complete,
    Cancel,
}

impl Release {
    fn done(self) -> ReservationStatus {
        match self {
            Release::Complete => ReservationStatus::Completed,
            Release::Cancel => ReservationStatus::Cancelled,
        }
    }
}

impl Engine {
    /// Holds a unit of `promo_id` for `user_id`: the checks of API.md's table,
    /// in its order; answered once the hold is durable. `origin` names the
    /// WebSocket request this answers (its session gets the
    /// `reservation.held` frame with the `request_id`).
    pub async fn reserve(
        &self,
        user_id: i64,
        promo_id: i64,
        origin: Option<WsOrigin>,
    ) -> Result<Reservation, EngineError> {
        let reserving = self.ask_to_reserve(user_id, promo_id, origin, Route::AnyOwner);
        counted(within_outcome_wait(reserving).await)
    }

    /// Completes the purchase of reservation `id` of `user_id`.
    pub async fn complete(&self, user_id: i64, id: i64) -> Result<Reservation, EngineError> {
        let completing = self.release(user_id, id, Release::Complete, Route::AnyOwner);
        counted(within_outcome_wait(completing).await)
    }

    /// Cancels reservation `id` of `user_id`, freeing its unit.
    pub async fn cancel(&self, user_id: i64, id: i64) -> Result<Reservation, EngineError> {
        let cancelling = self.release(user_id, id, Release::Cancel, Route::AnyOwner);
        counted(within_outcome_wait(cancelling).await)
    }

    pub(super) async fn ask_to_reserve(
        &self,
        user_id: i64,
        promo_id: i64,
        origin: Option<WsOrigin>,
        route: Route,
    ) -> Result<Reservation, EngineError> {
        if let Some(actor) = self.live_promos.actor_of(promo_id) {
            let reserve = Reserve {
                user_id,
                member: self.members.get(user_id),
                origin: origin.clone(),
            };
            // An error means the actor stopped between the lookup and the
            // send: the message was not taken, nothing was decided.
            if let Ok(answer) = prometheus::awaiting("promo", actor.send(reserve)).await {
                return answer.map_err(EngineError::from);
            }
        }
        let Some(forwarder) = self.forwarder.as_ref().filter(|_| route == Route::AnyOwner) else {
            return Err(self.without_actor(promo_id).await);
        };
        let call = Call::Reserve {
            user_id,
            promo_id,
            origin: origin.map(|origin| CallOrigin {
                instance: forwarder.instance_id().to_string(),
                session_id: origin.session_id,
                request_id: origin.request_id,
            }),
        };
        let key = LeaseKey::promo(promo_id);
        let answer = match forwarder.call_if_owned(key, &call).await? {
            Some(answer) => answer,
            // Owned by nobody: either it does not run, or its owner is
            // being decided (it was just created or its owner died).
            None => match self.without_actor(promo_id).await {
                EngineError::Busy(_) => forwarder.call(key, &call).await?,
                why => return Err(why),
            },
        };
        self.relayed(answer, user_id).await
    }

    /// Why a promo with no actor cannot be reserved.
    async fn without_actor(&self, promo_id: i64) -> EngineError {
        match db::promos::find_promo(&self.pool, promo_id).await {
            Err(error) => error.into(),
            Ok(None) => EngineError::NotFound,
            // Running but its actor is (re)starting: a moment's wait fixes it.
            Ok(Some(promo))
                if matches!(promo.status, PromoStatus::Running | PromoStatus::SoldOut) =>
            {
                EngineError::Busy("the promo's actor is starting")
            }
            Ok(Some(_)) => EngineError::PromoNotRunning,
        }
    }

    /// A live hold goes to its actor, which answers once the release (its
    /// own, or a repeat's that got there first) is durable; anything else is
    /// answered from the stored state.
    pub(super) async fn release(
        &self,
        user_id: i64,
        id: i64,
        release: Release,
        route: Route,
    ) -> Result<Reservation, EngineError> {
        let record = db::reservations::find_reservation(&self.pool, id, user_id)
            .await?
            .ok_or(EngineError::NotFound)?;
        if record.status == ReservationStatus::Held {
            if let Some(answer) = self.release_live(&record, release).await? {
                return outcome(answer, release);
            }
            if let (Some(forwarder), Route::AnyOwner) = (&self.forwarder, route) {
                if self.live_promos.actor_of(record.promo_id).is_none() {
                    let call = match release {
                        Release::Complete => Call::Complete { user_id, id },
                        Release::Cancel => Call::Cancel { user_id, id },
                    };
                    let answer = forwarder
                        .call(LeaseKey::promo(record.promo_id), &call)
                        .await?;
                    return outcome(self.relayed(answer, user_id).await?, release);
                }
            }
        }
        let record = db::reservations::find_reservation_by_uuid(&self.pool, record.reservation_id)
            .await?
            .ok_or(EngineError::NotFound)?;
        if record.status == ReservationStatus::Held {
            // Held in the database, yet its actor does not hold it: the actor
            // is (re)loading the promo's stock.
            return Err(EngineError::Busy("the reservation's promo is reloading"));
        }
        outcome(self.with_promo(&record).await?, release)
    }

    /// Asks the promo's actor to release a held reservation: `None` when the
    /// actor does not hold it (the stored state then answers).
    async fn release_live(
        &self,
        record: &ReservationRecord,
        release: Release,
    ) -> Result<Option<Reservation>, EngineError> {
        let Some(actor) = self.live_promos.actor_of(record.promo_id) else {
            return Ok(None);
        };
        let reservation_id = record.reservation_id;
        let answer = match release {
            Release::Complete => {
                prometheus::awaiting("promo", actor.send(Complete { reservation_id })).await
            }
            Release::Cancel => {
                prometheus::awaiting("promo", actor.send(Cancel { reservation_id })).await
            }
        };
        match answer {
            Ok(Ok(reservation)) => Ok(Some(reservation)),
            // Not in the actor's memory, or the actor stopped: the stored
            // state answers.
            Ok(Err(PromoRefusal::Release(ReleaseError::NotHeld))) | Err(_) => Ok(None),
            Ok(Err(refusal)) => Err(refusal.into()),
        }
    }

    /// An owner's answer, as this instance would have given it.
    async fn relayed(&self, answer: Answer, user_id: i64) -> Result<Reservation, EngineError> {
        match answer {
            Answer::Done { reservation } => {
                let record = reservation.record(user_id);
                match self.live_promos.promo(record.promo_id, Utc::now()) {
                    Some(promo) => Ok(Reservation::new(&record, promo)),
                    None => self.with_promo(&record).await,
                }
            }
            Answer::Refused { error } => Err(error.into()),
            Answer::Entered { .. } | Answer::Prepared => {
                Err(EngineError::Busy("the owning instance misunderstood"))
            }
        }
    }

    /// A stored reservation with its promo as it stands.
    pub async fn with_promo(&self, record: &ReservationRecord) -> Result<Reservation, EngineError> {
        let promo = db::promos::find_promo(&self.pool, record.promo_id)
            .await?
            .ok_or(EngineError::NotFound)?;
        Ok(Reservation::new(record, promo))
    }
}

/// Counts a refusal under its code. Successes are counted by the promo's
/// actor when they commit, so a repeated complete or cancel counts once.
fn counted(answer: Result<Reservation, EngineError>) -> Result<Reservation, EngineError> {
    if let Err(error) = &answer {
        prometheus::reservation(error.code());
    }
    answer
}

/// The answer to a release of `reservation` as it stands.
fn outcome(reservation: Reservation, release: Release) -> Result<Reservation, EngineError> {
    match (reservation.status, release) {
        (status, _) if status == release.done() => Ok(reservation),
        (ReservationStatus::Expired, _) => Err(EngineError::ReservationExpired),
        (ReservationStatus::Cancelled, Release::Complete) => Err(EngineError::ReservationCancelled),
        (ReservationStatus::Completed, Release::Cancel) => Err(EngineError::AlreadyCompleted),
        (_, _) => Err(EngineError::Busy("the reservation is changing")),
    }
}
