//! Calls another instance forwarded to this one (cluster mode,
//! `cluster::forward`): each is decided here or not at all (never forwarded
//! again), within the same outcome wait as a call made here, and answered
//! in the wire's terms.

use std::sync::Arc;

use super::deadlines::within_outcome_wait;
use super::reservations::{Release, Route};
use super::Engine;
use crate::actors::promo::WsOrigin;
use crate::cluster::forward::{Answer, Call, WireError, WireReservation};

impl Engine {
    /// Answers a forwarded call. Refusals are counted by the instance that
    /// took the request, successes by the actor that committed them.
    pub async fn answer_forwarded(&self, call: Call) -> Answer {
        let answer = match call {
            Call::Reserve {
                user_id,
                promo_id,
                origin,
            } => {
                let origin = origin.map(|origin| WsOrigin {
                    session_id: origin.session_id,
                    request_id: origin.request_id,
                    instance: Some(Arc::from(origin.instance)),
                });
                let reserving = self.ask_to_reserve(user_id, promo_id, origin, Route::HereOnly);
                within_outcome_wait(reserving).await
            }
            Call::Complete { user_id, id } => {
                let completing = self.release(user_id, id, Release::Complete, Route::HereOnly);
                within_outcome_wait(completing).await
            }
            Call::Cancel { user_id, id } => {
                let cancelling = self.release(user_id, id, Release::Cancel, Route::HereOnly);
                within_outcome_wait(cancelling).await
            }
            Call::PrepareQuantity { promo_id, quantity } => {
                return match self.prepare_quantity_here(promo_id, quantity).await {
                    Ok(()) => Answer::Prepared,
                    Err(error) => Answer::Refused {
                        error: WireError::from(&error),
                    },
                };
            }
            Call::Enter {
                campaign_id,
                email,
                data,
            } => {
                let entering = self.enter_here(campaign_id, email, data);
                return match within_outcome_wait(entering).await {
                    Ok(entry) => Answer::Entered { entry },
                    Err(error) => Answer::Refused {
                        error: WireError::from(&error),
                    },
                };
            }
        };
        match answer {
            Ok(reservation) => Answer::Done {
                reservation: WireReservation::of(&reservation),
            },
            Err(error) => Answer::Refused {
                error: WireError::from(&error),
            },
        }
    }
}
