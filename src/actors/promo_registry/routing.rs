//! The registry's query and routing messages, kept for callers that still
//! send them: listings answer from the published snapshot (the same answers
//! [`LivePromos`](super::LivePromos) gives without the mailbox hop), and
//! reservation messages are forwarded to the promo's actor.

use actix::prelude::*;
use chrono::Utc;
use futures_util::future::ready;

use super::PromoRegistry;
use crate::actors::promo::{Cancel, Complete, PrepareQuantity, PromoActor, PromoRefusal, Reserve};
use crate::db::{Listing, PageWindow};
use crate::domain::eligibility::AudienceMember;
use crate::domain::promo::FlashPromo;
use crate::domain::reservation::Reservation;
use crate::domain::stock::QuantityBelowCommitted;

/// One page of the promos running now, in id order.
#[derive(Message)]
#[rtype(result = "Listing<FlashPromo>")]
pub struct GetRunning {
    pub window: PageWindow,
}

/// One page of the running promos a member may reserve, nearest first, with
/// distances in km.
#[derive(Message)]
#[rtype(result = "Listing<(FlashPromo, f64)>")]
pub struct FindEligible {
    pub member: AudienceMember,
    pub window: PageWindow,
}

/// Routes a reservation to the promo's actor.
#[derive(Message)]
#[rtype(result = "Result<Reservation, RoutedRefusal>")]
pub struct ReserveUnit {
    pub promo_id: i64,
    pub reserve: Reserve,
}

/// Routes a completion or cancellation to the promo's actor.
#[derive(Message)]
#[rtype(result = "Result<Reservation, RoutedRefusal>")]
pub struct ReleaseUnit {
    pub promo_id: i64,
    pub reservation_id: uuid::Uuid,
    pub sell: bool,
}

/// Asks the promo's actor (if any) to accept a lower quantity before it is written.
#[derive(Message)]
#[rtype(result = "Result<(), QuantityBelowCommitted>")]
pub struct PrepareQuantityChange {
    pub promo_id: i64,
    pub quantity: u32,
}

/// Why a routed message got no actor's answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutedRefusal {
    /// The registry has no actor for this promo (not running, or unknown).
    #[error("no running promo with this id")]
    NoActor,
    /// The actor refused or failed.
    #[error(transparent)]
    Refused(#[from] PromoRefusal),
}

impl PromoRegistry {
    fn actor_of(&self, promo_id: i64) -> Option<Addr<PromoActor>> {
        self.catalogue.get(promo_id)?.actor.clone()
    }
}

impl Handler<GetRunning> for PromoRegistry {
    type Result = MessageResult<GetRunning>;

    fn handle(&mut self, message: GetRunning, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.published.running(Utc::now(), message.window))
    }
}

impl Handler<FindEligible> for PromoRegistry {
    type Result = MessageResult<FindEligible>;

    fn handle(&mut self, message: FindEligible, _: &mut Self::Context) -> Self::Result {
        let now = Utc::now();
        MessageResult(
            self.published
                .eligible(&message.member, now, message.window),
        )
    }
}

/// Sends to a promo's actor; a message it never read means it stopped.
async fn ask<M>(actor: Addr<PromoActor>, message: M) -> Result<Reservation, RoutedRefusal>
where
    M: Message<Result = Result<Reservation, PromoRefusal>> + Send + 'static,
    PromoActor: Handler<M>,
{
    match actor.send(message).await {
        Ok(answer) => answer.map_err(RoutedRefusal::from),
        Err(_) => Err(RoutedRefusal::NoActor),
    }
}

impl Handler<ReserveUnit> for PromoRegistry {
    type Result = ResponseFuture<Result<Reservation, RoutedRefusal>>;

    fn handle(&mut self, message: ReserveUnit, _: &mut Self::Context) -> Self::Result {
        let Some(actor) = self.actor_of(message.promo_id) else {
            return Box::pin(ready(Err(RoutedRefusal::NoActor)));
        };
        Box::pin(ask(actor, message.reserve))
    }
}

impl Handler<ReleaseUnit> for PromoRegistry {
    type Result = ResponseFuture<Result<Reservation, RoutedRefusal>>;

    fn handle(&mut self, message: ReleaseUnit, _: &mut Self::Context) -> Self::Result {
        let Some(actor) = self.actor_of(message.promo_id) else {
            return Box::pin(ready(Err(RoutedRefusal::NoActor)));
        };
        let reservation_id = message.reservation_id;
        if message.sell {
            Box::pin(ask(actor, Complete { reservation_id }))
        } else {
            Box::pin(ask(actor, Cancel { reservation_id }))
        }
    }
}

impl Handler<PrepareQuantityChange> for PromoRegistry {
    type Result = ResponseFuture<Result<(), QuantityBelowCommitted>>;

    fn handle(&mut self, message: PrepareQuantityChange, _: &mut Self::Context) -> Self::Result {
        let Some(actor) = self.actor_of(message.promo_id) else {
            return Box::pin(ready(Ok(())));
        };
        Box::pin(async move {
            actor
                .send(PrepareQuantity {
                    quantity: message.quantity,
                })
                .await
                .unwrap_or(Ok(()))
        })
    }
}
