//! `DbError`: what a database call can fail with, classified once.
//!
//! A dead or unreachable server becomes [`DbError::Unavailable`] (503, nothing
//! changed); a violated named constraint becomes a [`Violation`] the API can
//! explain; anything else is a bug, logged and answered 500.

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

/// A named constraint that a write ran into, as a domain fact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// `users.username` is taken.
    DuplicateUsername,
    /// A segment with this name (ignoring case) exists.
    DuplicateSegmentName,
    /// A product names a store that does not exist.
    UnknownStore,
    /// A segment id that does not exist.
    UnknownSegment,
    /// A segment still targeted by a promo cannot be deleted.
    SegmentInUse,
    /// A promo names a product that does not exist.
    UnknownProduct,
    /// Two promos of one product with overlapping windows.
    PromoOverlap,
    /// The quantity would drop below the units held or sold.
    QuantityBelowCommitted,
    /// A promo's price is not below its product's regular price.
    PromoPriceNotBelowRegular,
    /// A product's new regular price is not above a live promo's price.
    RegularPriceNotAbovePromos,
    /// A fenced write of an instance that no longer holds the lease of its
    /// promo or campaign at the epoch it wrote with (cluster mode).
    StaleLease,
    /// Another constraint, by name.
    Other(String),
}

/// A failed database call.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The server could not be reached, or the connection broke.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A named constraint refused the write.
    #[error("constraint violated: {0:?}")]
    Violation(Violation),
    /// A stored value broke an invariant the schema should have kept.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Anything else: a bug or an unexpected server error.
    #[error("database error: {0}")]
    Query(#[source] tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for DbError {
    fn from(error: tokio_postgres::Error) -> Self {
        if let Some(db_error) = error.as_db_error() {
            let code = db_error.code();
            if is_connection_failure(code) {
                return DbError::Unavailable(db_error.message().to_owned());
            }
            if let Some(constraint) = db_error.constraint() {
                let is_violation = [
                    SqlState::UNIQUE_VIOLATION,
                    SqlState::FOREIGN_KEY_VIOLATION,
                    SqlState::EXCLUSION_VIOLATION,
                    SqlState::CHECK_VIOLATION,
                ]
                .contains(code);
                if is_violation {
                    return DbError::Violation(classify(constraint));
                }
            }
            return DbError::Query(error);
        }
        // No server error: the socket closed, timed out or never opened.
        DbError::Unavailable(error.to_string())
    }
}

impl From<PoolError> for DbError {
    fn from(error: PoolError) -> Self {
        match error {
            PoolError::Backend(inner) => DbError::from(inner),
            other => DbError::Unavailable(other.to_string()),
        }
    }
}

impl DbError {
    /// True for a foreign-key violation (used where the direction matters).
    pub fn is_foreign_key_violation(error: &tokio_postgres::Error) -> bool {
        error.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION)
    }
}

/// Server states that mean "the database is not there right now", or that
/// the same statement may well pass if tried again: nothing was written.
fn is_connection_failure(code: &SqlState) -> bool {
    let class = &code.code()[..2];
    class == "08" // connection exception
        || class == "57" // operator intervention: shutdown, crash recovery
        || class == "40" // transaction rollback: serialization failure, deadlock
        || class == "53" // insufficient resources: disk full, out of memory
        || code == &SqlState::LOCK_NOT_AVAILABLE
        || code == &SqlState::TOO_MANY_CONNECTIONS
        || code == &SqlState::CANNOT_CONNECT_NOW
}

fn classify(constraint: &str) -> Violation {
    match constraint {
        "users_username_key" => Violation::DuplicateUsername,
        "user_segments_name_key" => Violation::DuplicateSegmentName,
        "products_store_id_fkey" => Violation::UnknownStore,
        "flash_promos_product_id_fkey" => Violation::UnknownProduct,
        "flash_promos_no_overlap" => Violation::PromoOverlap,
        "flash_promos_sold_within_quantity" | "promo_occurrences_sold_within_quantity" => {
            Violation::QuantityBelowCommitted
        }
        "flash_promos_price_below_regular" => Violation::PromoPriceNotBelowRegular,
        "products_regular_price_above_promos" => Violation::RegularPriceNotAbovePromos,
        "client_segments_segment_id_fkey" | "flash_promo_segments_segment_id_fkey" => {
            Violation::UnknownSegment
        }
        "ownership_lease_current" => Violation::StaleLease,
        other => Violation::Other(other.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraint_names_become_domain_violations() {
        assert_eq!(classify("users_username_key"), Violation::DuplicateUsername);
        assert_eq!(classify("products_store_id_fkey"), Violation::UnknownStore);
        assert_eq!(
            classify("something_else"),
            Violation::Other("something_else".into())
        );
    }

    #[test]
    fn connection_states_count_as_unavailable() {
        assert!(is_connection_failure(&SqlState::ADMIN_SHUTDOWN));
        assert!(is_connection_failure(&SqlState::CONNECTION_FAILURE));
        assert!(is_connection_failure(&SqlState::T_R_DEADLOCK_DETECTED));
        assert!(is_connection_failure(&SqlState::LOCK_NOT_AVAILABLE));
        assert!(!is_connection_failure(&SqlState::UNIQUE_VIOLATION));
    }
}
