//! `EngineError`: every way an engine call can fail, with the stable `code`
//! and the client-safe `detail` of API.md.
//!
//! The engine's actors refuse in their own terms ([`PromoRefusal`],
//! [`EntryRefusal`]); they are turned into an `EngineError` here, once. The
//! two edges then map it once each: `http/error.rs` to a status, the
//! WebSocket session to an `error` frame with the same `code` and `detail`.
//! A closed or full actor mailbox has its own variant, so a 503 says which
//! part of the engine did not answer instead of blaming the database.

use crate::actors::campaign::EntryRefusal;
use crate::actors::promo::PromoRefusal;
use crate::db::DbError;
use crate::domain::eligibility::Ineligible;
use crate::domain::stock::{ReleaseError, ReserveError};

/// A failed engine call.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No such reservation, profile or campaign, or one of someone else's.
    #[error("not found")]
    NotFound,
    /// The promo is inactive, not started or over.
    #[error("the promo is not running")]
    PromoNotRunning,
    /// The shopper may not reserve this promo.
    #[error(transparent)]
    Ineligible(Ineligible),
    /// No unit for this shopper now.
    #[error(transparent)]
    Stock(ReserveError),
    /// The hold ran out before it was completed or cancelled.
    #[error("the hold expired")]
    ReservationExpired,
    /// A complete of a cancelled reservation.
    #[error("the reservation was cancelled")]
    ReservationCancelled,
    /// A cancel of a completed purchase.
    #[error("the purchase is already complete")]
    AlreadyCompleted,
    /// The address already entered this campaign.
    #[error("the address already entered the campaign")]
    AlreadySubscribed,
    /// The campaign takes no more entries.
    #[error("the campaign is closed")]
    CampaignClosed,
    /// The decision could not be written (the database is away); nothing changed.
    #[error("not written: {0}")]
    NotWritten(&'static str),
    /// A promo or campaign actor is starting, reloading, or the database
    /// refused the one decision; nothing changed.
    #[error("engine busy: {0}")]
    Busy(&'static str),
    /// An actor did not take the message (its mailbox is closed or full).
    #[error("the {actor} did not answer: {error}")]
    Mailbox {
        actor: &'static str,
        error: actix::MailboxError,
    },
    /// A bounded queue is full, or an unconfirmed write is being settled;
    /// nothing changed. The text is safe to show.
    #[error("overloaded: {0}")]
    Overloaded(&'static str),
    /// The write was sent but its outcome is not known yet.
    #[error("outcome unknown")]
    OutcomeUnknown,
    /// Coordinates out of range.
    #[error("invalid location")]
    InvalidLocation,
    /// A database call failed.
    #[error(transparent)]
    Database(#[from] DbError),
}

/// The seconds a client should wait before retrying an unknown outcome.
pub const OUTCOME_RETRY_AFTER_SECS: u64 = 2;

impl EngineError {
    /// A mailbox failure of `actor` ("promo registry", "audience index", …).
    pub fn mailbox(actor: &'static str) -> impl FnOnce(actix::MailboxError) -> EngineError {
        move |error| EngineError::Mailbox { actor, error }
    }

    /// The stable machine-readable code of API.md.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::NotFound => "not_found",
            EngineError::PromoNotRunning => "promo_not_running",
            EngineError::Ineligible(Ineligible::NotInSegment) => "not_in_segment",
            EngineError::Ineligible(Ineligible::LocationUnknown) => "location_unknown",
            EngineError::Ineligible(Ineligible::TooFar) => "too_far",
            EngineError::Stock(ReserveError::AlreadyReserved) => "already_reserved",
            EngineError::Stock(ReserveError::AllUnitsHeld { .. }) => "all_units_held",
            EngineError::Stock(ReserveError::SoldOut) => "sold_out",
            EngineError::ReservationExpired => "reservation_expired",
            EngineError::ReservationCancelled => "reservation_cancelled",
            EngineError::AlreadyCompleted => "already_completed",
            EngineError::AlreadySubscribed => "already_subscribed",
            EngineError::CampaignClosed => "campaign_closed",
            EngineError::InvalidLocation => "validation_error",
            EngineError::OutcomeUnknown => "outcome_unknown",
            EngineError::Database(DbError::Unavailable(_))
            | EngineError::NotWritten(_)
            | EngineError::Busy(_)
            | EngineError::Mailbox { .. }
            | EngineError::Overloaded(_) => "unavailable",
            EngineError::Database(_) => "internal_error",
        }
    }

    /// What the client is told (generic for server-side failures).
    pub fn detail(&self) -> String {
        match self {
            EngineError::NotFound => "Not found.".into(),
            EngineError::PromoNotRunning => "The promo is inactive, not started or over.".into(),
            EngineError::Ineligible(why) => why.to_string(),
            EngineError::Stock(ReserveError::AlreadyReserved) => {
                "You already hold a unit of this promo.".into()
            }
            EngineError::Stock(ReserveError::AllUnitsHeld { .. }) => {
                "Every unit is held by other shoppers; one may come free.".into()
            }
            EngineError::Stock(ReserveError::SoldOut) => "Every unit is sold.".into(),
            EngineError::ReservationExpired => "The hold expired.".into(),
            EngineError::ReservationCancelled => "The reservation was cancelled.".into(),
            EngineError::AlreadyCompleted => "The purchase is already complete.".into(),
            EngineError::AlreadySubscribed => {
                "This address has already entered this campaign.".into()
            }
            EngineError::CampaignClosed => {
                "This campaign is finished and takes no more entries.".into()
            }
            EngineError::InvalidLocation => {
                "latitude must be in [-90, 90] and longitude in [-180, 180]".into()
            }
            EngineError::Database(DbError::Unavailable(_)) | EngineError::NotWritten(_) => {
                "The service cannot reach its database; nothing was changed. Retry shortly.".into()
            }
            EngineError::Busy(_) => "The engine could not take this request just now (a promo \
                or campaign is restarting, or the database refused the change); nothing was \
                changed. Retry shortly."
                .into(),
            EngineError::Mailbox { actor, .. } => format!(
                "The {actor} is restarting or overloaded and did not take the request; nothing \
                 was changed. Retry shortly."
            ),
            EngineError::Overloaded(detail) => (*detail).into(),
            EngineError::OutcomeUnknown => "The database did not confirm in time whether the \
                change was made. Retry with the same Idempotency-Key to learn the outcome."
                .into(),
            EngineError::Database(_) => "Internal server error.".into(),
        }
    }

    /// Seconds to wait before retrying, where the contract gives one.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            EngineError::Stock(ReserveError::AllUnitsHeld { retry_after_secs }) => {
                Some(*retry_after_secs)
            }
            EngineError::OutcomeUnknown => Some(OUTCOME_RETRY_AFTER_SECS),
            EngineError::Overloaded(_) => Some(1),
            _ => None,
        }
    }
}

impl From<PromoRefusal> for EngineError {
    fn from(refusal: PromoRefusal) -> Self {
        match refusal {
            PromoRefusal::NotRunning => EngineError::PromoNotRunning,
            PromoRefusal::Ineligible(why) => EngineError::Ineligible(why),
            PromoRefusal::Stock(why) => EngineError::Stock(why),
            PromoRefusal::Release(ReleaseError::Expired(_)) => EngineError::ReservationExpired,
            PromoRefusal::Release(ReleaseError::NotHeld) => {
                EngineError::Busy("the hold is not in its promo's memory")
            }
            PromoRefusal::Unavailable => {
                EngineError::NotWritten("the promo could not record the decision")
            }
            PromoRefusal::Refused => EngineError::Busy("the database refused the decision"),
            PromoRefusal::Settling => EngineError::Overloaded(
                "This promo is confirming an earlier write whose answer was lost; nothing was \
                 changed. Retry in a moment.",
            ),
            PromoRefusal::OutcomeUnknown => EngineError::OutcomeUnknown,
        }
    }
}

impl From<EntryRefusal> for EngineError {
    fn from(refusal: EntryRefusal) -> Self {
        match refusal {
            EntryRefusal::AlreadySubscribed => EngineError::AlreadySubscribed,
            EntryRefusal::CampaignClosed => EngineError::CampaignClosed,
            EntryRefusal::NotLoaded => EngineError::NotFound,
            EntryRefusal::Unavailable => EngineError::NotWritten("campaign entry not written"),
            EntryRefusal::Failed => EngineError::Busy("the database refused the campaign entry"),
            EntryRefusal::Settling => EngineError::Overloaded(
                "This campaign is confirming an earlier write whose answer was lost; nothing \
                 was changed. Retry in a moment.",
            ),
            EntryRefusal::OutcomeUnknown => EngineError::OutcomeUnknown,
            EntryRefusal::Busy => EngineError::Overloaded(
                "Too many entries are waiting to be written; nothing was changed. Retry in a \
                 moment.",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_of_a_promo_gets_the_contracts_code() {
        let code = |refusal| EngineError::from(refusal).code();
        assert_eq!(code(PromoRefusal::NotRunning), "promo_not_running");
        assert_eq!(code(PromoRefusal::Stock(ReserveError::SoldOut)), "sold_out");
        assert_eq!(code(PromoRefusal::Settling), "unavailable");
        assert_eq!(code(PromoRefusal::OutcomeUnknown), "outcome_unknown");
        assert_eq!(
            code(PromoRefusal::Ineligible(Ineligible::LocationUnknown)),
            "location_unknown"
        );
    }

    #[test]
    fn a_closed_mailbox_names_the_actor_not_the_database() {
        let error = EngineError::mailbox("promo registry")(actix::MailboxError::Closed);
        assert_eq!(error.code(), "unavailable");
        assert!(error.detail().contains("promo registry"));
        assert!(!error.detail().contains("database"));
    }

    #[test]
    fn retry_hints_follow_the_contract() {
        let held = EngineError::Stock(ReserveError::AllUnitsHeld {
            retry_after_secs: 17,
        });
        assert_eq!(held.retry_after(), Some(17));
        assert_eq!(EngineError::OutcomeUnknown.retry_after(), Some(2));
        assert_eq!(EngineError::PromoNotRunning.retry_after(), None);
    }
}
