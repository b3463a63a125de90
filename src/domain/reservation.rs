//! Reservations as clients see them: a hold, a sale, or how a hold ended.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::promo::FlashPromo;

/// Where a reservation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    Held,
    Completed,
    Expired,
    Cancelled,
}

impl ReservationStatus {
    /// Reads the stored status; a `held` row past its expiry reads as expired
    /// (the row may not have been updated yet, e.g. across a restart).
    pub fn from_stored(
        stored: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<Self> {
        Some(match stored {
            "held" if expires_at <= now => ReservationStatus::Expired,
            "held" => ReservationStatus::Held,
            "completed" => ReservationStatus::Completed,
            "expired" => ReservationStatus::Expired,
            "cancelled" => ReservationStatus::Cancelled,
            _ => return None,
        })
    }
}

/// A reservation row, without its promo.
#[derive(Debug, Clone, PartialEq)]
pub struct ReservationRecord {
    pub id: i64,
    pub reservation_id: Uuid,
    pub promo_id: i64,
    pub user_id: i64,
    pub status: ReservationStatus,
    /// The start of the occurrence whose unit it holds or bought.
    pub occurrence_start: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A reservation with its promo embedded (API.md's shape).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Reservation {
    pub id: i64,
    pub reservation_id: Uuid,
    pub promo: FlashPromo,
    pub status: ReservationStatus,
    pub completed: bool,
    /// The start of the occurrence whose unit it holds or bought (for a
    /// continuous promo, its `start_time`).
    pub occurrence_start: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl Reservation {
    /// Joins a record with its promo.
    pub fn new(record: &ReservationRecord, promo: FlashPromo) -> Reservation {
        Reservation {
            id: record.id,
            reservation_id: record.reservation_id,
            promo,
            status: record.status,
            completed: record.status == ReservationStatus::Completed,
            occurrence_start: record.occurrence_start,
            created_at: record.created_at,
            expires_at: record.expires_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_row_past_its_expiry_reads_as_expired() {
        let now = Utc::now();
        let past = now - chrono::Duration::seconds(1);
        assert_eq!(
            ReservationStatus::from_stored("held", past, now),
            Some(ReservationStatus::Expired)
        );
        assert_eq!(
            ReservationStatus::from_stored("held", now + chrono::Duration::seconds(1), now),
            Some(ReservationStatus::Held)
        );
        assert_eq!(
            ReservationStatus::from_stored("completed", past, now),
            Some(ReservationStatus::Completed)
        );
        assert_eq!(ReservationStatus::from_stored("bogus", past, now), None);
    }
}
