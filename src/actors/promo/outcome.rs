//! What a committed batch tells: each caller's answer, the holder's
//! `reservation.*` frame on every open session, and the new counts for the
//! registry. Nothing is told before the commit.

use std::sync::Arc;

use actix::prelude::*;
use uuid::Uuid;

use super::group_commit::Pending;
use super::messages::{ReleaseAnswer, ReleaseReply, WsOrigin};
use super::PromoActor;
use crate::actors::session_hub::Origin;
use crate::domain::frames::ServerFrame;
use crate::domain::promo::FlashPromo;
use crate::domain::reservation::{Reservation, ReservationRecord, ReservationStatus};
use crate::domain::stock::Hold;
use crate::telemetry::prometheus;

impl PromoActor {
    /// A batch that committed (`row_ids`: the row of each inserted hold).
    pub(super) fn confirm(
        &mut self,
        batch: Vec<Pending>,
        row_ids: Vec<Option<i64>>,
        ctx: &mut Context<Self>,
    ) {
        // Counts first: a caller answered below may read the registry's
        // snapshot at once, from another thread.
        self.report(ctx);
        let promo = self.snapshot();
        for (pending, row_id) in batch.into_iter().zip(row_ids) {
            match pending {
                Pending::Reserve {
                    hold,
                    origin,
                    reply,
                } => {
                    self.row_ids
                        .insert(hold.reservation_id, row_id.unwrap_or_default());
                    prometheus::reservation("held");
                    let reservation = self.reservation(&hold, ReservationStatus::Held, &promo);
                    let frame = ServerFrame::ReservationHeld {
                        reservation: reservation.clone(),
                        request_id: None,
                    };
                    self.tell_holder(&hold, frame, origin);
                    let _ = reply.send(Ok(reservation));
                }
                Pending::Complete { hold, reply } => {
                    self.tell_ended(&hold, ReservationStatus::Completed, &promo, Some(reply))
                }
                Pending::Cancel { hold, reply } => {
                    self.tell_ended(&hold, ReservationStatus::Cancelled, &promo, Some(reply))
                }
                Pending::Revoke { hold } => {
                    self.tell_ended(&hold, ReservationStatus::Cancelled, &promo, None)
                }
                Pending::Expire { hold } => {
                    self.tell_ended(&hold, ReservationStatus::Expired, &promo, None)
                }
            }
        }
    }

    /// A hold ended as `status` (committed): its holder is told, the request
    /// and its repeats are answered, its row id forgotten.
    fn tell_ended(
        &mut self,
        hold: &Hold,
        status: ReservationStatus,
        promo: &FlashPromo,
        reply: Option<ReleaseReply>,
    ) {
        prometheus::reservation(status_label(status));
        let reservation = self.reservation(hold, status, promo);
        let frame = match status {
            ReservationStatus::Completed => ServerFrame::ReservationCompleted {
                reservation: reservation.clone(),
            },
            ReservationStatus::Expired => ServerFrame::ReservationExpired {
                reservation: reservation.clone(),
            },
            ReservationStatus::Cancelled | ReservationStatus::Held => {
                ServerFrame::ReservationCancelled {
                    reservation: reservation.clone(),
                }
            }
        };
        self.tell_holder(hold, frame, None);
        self.answer_release(&hold.reservation_id, reply, Ok(reservation));
        self.row_ids.remove(&hold.reservation_id);
    }

    /// Answers a release request and every repeat waiting on it.
    pub(super) fn answer_release(
        &mut self,
        reservation_id: &Uuid,
        reply: Option<ReleaseReply>,
        answer: ReleaseAnswer,
    ) {
        let waiting = self.settling.remove(reservation_id).unwrap_or_default();
        for waiter in reply.into_iter().chain(waiting) {
            let _ = waiter.send(answer.clone());
        }
    }

    /// The reservation of `hold` as clients see it.
    fn reservation(
        &self,
        hold: &Hold,
        status: ReservationStatus,
        promo: &FlashPromo,
    ) -> Reservation {
        let record = ReservationRecord {
            id: self
                .row_ids
                .get(&hold.reservation_id)
                .copied()
                .unwrap_or_default(),
            reservation_id: hold.reservation_id,
            promo_id: promo.id,
            user_id: hold.user_id,
            status,
            occurrence_start: hold.occurrence_start,
            created_at: hold.created_at,
            expires_at: hold.expires_at,
        };
        Reservation::new(&record, promo.clone())
    }

    /// Sends a `reservation.*` frame to every open session of the holder; the
    /// session whose request caused it gets its `request_id` back.
    fn tell_holder(&self, hold: &Hold, frame: ServerFrame, origin: Option<WsOrigin>) {
        let origin = origin.map(|origin| Origin {
            session_id: origin.session_id,
            frame: Arc::from(with_request_id(&frame, origin.request_id).to_text()),
            instance: origin.instance,
        });
        self.sessions
            .push_to_user(hold.user_id, Arc::from(frame.to_text()), origin);
    }
}

/// The `outcome` label of a committed status.
fn status_label(status: ReservationStatus) -> &'static str {
    match status {
        ReservationStatus::Held => "held",
        ReservationStatus::Completed => "completed",
        ReservationStatus::Cancelled => "cancelled",
        ReservationStatus::Expired => "expired",
    }
}

/// The same frame answering a client message.
fn with_request_id(frame: &ServerFrame, request_id: serde_json::Value) -> ServerFrame {
    match frame {
        ServerFrame::ReservationHeld { reservation, .. } => ServerFrame::ReservationHeld {
            reservation: reservation.clone(),
            request_id: Some(request_id),
        },
        other => other.clone(),
    }
}
