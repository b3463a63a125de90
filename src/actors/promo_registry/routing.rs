//! The one request the registry still routes to a promo's actor: preparing
//! a quantity change, which must reach the actor the registry runs now.
//! Reads and reservations go through the published
//! [`LivePromos`](super::LivePromos) instead, without the mailbox hop.

use actix::prelude::*;
use futures_util::future::ready;

use super::PromoRegistry;
use crate::actors::promo::{PrepareQuantity, PromoActor};
use crate::domain::stock::QuantityBelowCommitted;

/// Asks the promo's actor (if any) to accept a lower quantity before it is written.
#[derive(Message)]
#[rtype(result = "Result<(), QuantityBelowCommitted>")]
pub struct PrepareQuantityChange {
    pub promo_id: i64,
    pub quantity: u32,
}

impl PromoRegistry {
    fn actor_of(&self, promo_id: i64) -> Option<Addr<PromoActor>> {
        self.catalogue.get(promo_id)?.actor.clone()
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
