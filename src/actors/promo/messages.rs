//! What a [`PromoActor`](super::PromoActor) is asked and how it answers: the
//! messages the registry and the two edges (HTTP, WebSocket) send it, and
//! its refusals.

use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::domain::eligibility::{AudienceMember, Ineligible};
use crate::domain::promo::FlashPromo;
use crate::domain::reservation::Reservation;
use crate::domain::stock::{QuantityBelowCommitted, ReleaseError, ReserveError};

/// Why the actor refused or could not finish a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromoRefusal {
    /// The promo is switched off, outside its window, or closing.
    #[error("the promo is not running")]
    NotRunning,
    /// The shopper is not in the promo's audience.
    #[error(transparent)]
    Ineligible(#[from] Ineligible),
    /// No unit could be held.
    #[error(transparent)]
    Stock(#[from] ReserveError),
    /// The hold could not be completed or cancelled.
    #[error(transparent)]
    Release(#[from] ReleaseError),
    /// Nothing was written (the database is unreachable); nothing changed.
    #[error("the decision could not be made durable")]
    Unavailable,
    /// The database refused this one decision; nothing changed.
    #[error("the database refused the decision")]
    Refused,
    /// An earlier write's outcome is being settled; nothing changed.
    #[error("the promo is settling an unconfirmed write")]
    Settling,
    /// The decision's write was sent but its outcome is not known.
    #[error("the outcome of the decision is unknown")]
    OutcomeUnknown,
}

/// The answer to a complete or cancel: the reservation as it now stands.
pub type ReleaseAnswer = Result<Reservation, PromoRefusal>;
/// Where a complete or cancel (or a repeat of one) is answered.
pub(super) type ReleaseReply = oneshot::Sender<ReleaseAnswer>;

/// Holds one unit for a shopper, after the eligibility checks of API.md.
#[derive(Message)]
#[rtype(result = "Result<Reservation, PromoRefusal>")]
pub struct Reserve {
    /// The shopper asking.
    pub user_id: i64,
    /// The shopper's location and segments; `None` for an account without a profile.
    pub member: Option<AudienceMember>,
    /// The WebSocket session and request this answers, if any.
    pub origin: Option<WsOrigin>,
}

/// The WebSocket session whose `reserve` frame asked, and its `request_id`.
#[derive(Debug, Clone)]
pub struct WsOrigin {
    /// The session that sent the frame.
    pub session_id: u64,
    /// Echoed in the `reservation.held` frame that session gets.
    pub request_id: serde_json::Value,
    /// The instance the session is on, when it is another (a forwarded
    /// reserve, cluster mode); `None`: this one.
    pub instance: Option<Arc<str>>,
}

/// Buys the unit a hold keeps; answered with the reservation once the sale
/// (or the release that got there first) is durable.
#[derive(Message)]
#[rtype(result = "ReleaseAnswer")]
pub struct Complete {
    /// The hold to buy.
    pub reservation_id: Uuid,
}

/// Releases a hold at its holder's request; answered like [`Complete`].
#[derive(Message)]
#[rtype(result = "ReleaseAnswer")]
pub struct Cancel {
    /// The hold to release.
    pub reservation_id: Uuid,
}

/// Lowers the quantity in memory before the database is changed, so no
/// decision in between can use the units being removed.
#[derive(Message)]
#[rtype(result = "Result<(), QuantityBelowCommitted>")]
pub struct PrepareQuantity {
    /// The quantity about to be written.
    pub quantity: u32,
}

/// The promo's terms changed (after the change was committed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Redefine {
    /// The promo as now stored.
    pub promo: FlashPromo,
}

/// The promo ended: refuse new holds, let live ones run out or complete, then stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Close;

/// The promo was switched off: release every hold, then stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deactivate;

/// Another instance owns the promo now (cluster mode): stop at once, writing
/// nothing more (what is queued is answered unavailable; it was never sent).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StepDown;

/// The promo was deleted: stop at once.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;
