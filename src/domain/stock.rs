//! `PromoStock`: the units of one promo and who holds them — the rules its
//! PromoActor applies, one decision at a time.
//!
//! Invariants: `held + sold <= quantity`; at most one hold per user; a hold
//! past its `expires_at` can no longer be completed. Decisions take `now`, so
//! the rules are tested without timers or a clock.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

/// One unit of one occurrence held for one user until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub reservation_id: Uuid,
    pub user_id: i64,
    /// The start of the occurrence whose stock the unit is taken from.
    pub occurrence_start: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Why a unit could not be held.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReserveError {
    #[error("this user already holds a unit of this promo")]
    AlreadyReserved,
    #[error("every unit is held by others; retry in {retry_after_secs} s")]
    AllUnitsHeld { retry_after_secs: u64 },
    #[error("every unit is sold")]
    SoldOut,
}

/// Why a hold could not be completed or cancelled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    #[error("the reservation is not held")]
    NotHeld,
    #[error("the hold expired")]
    Expired(Hold),
}

/// Lowering the quantity below what is held or sold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("quantity {requested} is below the {committed} units held or sold")]
pub struct QuantityBelowCommitted {
    pub requested: u32,
    pub committed: u32,
}

/// The stock of one promo occurrence.
#[derive(Debug, Clone, Default)]
pub struct PromoStock {
    /// The occurrence new holds are taken in.
    occurrence_start: DateTime<Utc>,
    quantity: u32,
    sold: u32,
    holds: HashMap<Uuid, Hold>,
    holder_of: HashMap<i64, Uuid>,
}

impl PromoStock {
    /// Stock with `sold` units gone and `holds` live (as reloaded after a restart).
    pub fn new(quantity: u32, sold: u32, holds: impl IntoIterator<Item = Hold>) -> PromoStock {
        let mut stock = PromoStock {
            quantity,
            sold,
            ..PromoStock::default()
        };
        for hold in holds {
            stock.insert(hold);
        }
        stock
    }

    /// The same stock, as the stock of the occurrence starting at `start`.
    pub fn in_occurrence(mut self, start: DateTime<Utc>) -> PromoStock {
        self.occurrence_start = start;
        self
    }

    /// The same stock under a new key: the occurrence it counts now starts
    /// at `start` (its start was moved), and so do its holds.
    pub fn rekeyed(mut self, start: DateTime<Utc>) -> PromoStock {
        self.occurrence_start = start;
        for hold in self.holds.values_mut() {
            hold.occurrence_start = start;
        }
        self
    }

    /// The occurrence new holds are taken in.
    pub fn occurrence_start(&self) -> DateTime<Utc> {
        self.occurrence_start
    }

    /// Units on offer.
    pub fn quantity(&self) -> u32 {
        self.quantity
    }

    /// Units sold.
    pub fn sold(&self) -> u32 {
        self.sold
    }

    /// Units held now.
    pub fn held(&self) -> u32 {
        u32::try_from(self.holds.len()).unwrap_or(u32::MAX)
    }

    /// Units nobody holds or bought.
    pub fn available(&self) -> u32 {
        self.quantity.saturating_sub(self.held() + self.sold)
    }

    /// The live hold of `reservation_id`.
    pub fn hold(&self, reservation_id: &Uuid) -> Option<&Hold> {
        self.holds.get(reservation_id)
    }

    /// True when `user_id` holds a unit of this stock.
    pub fn is_held_by(&self, user_id: i64) -> bool {
        self.holder_of.contains_key(&user_id)
    }

    /// Every live hold.
    pub fn holds(&self) -> impl Iterator<Item = &Hold> {
        self.holds.values()
    }

    /// Holds one unit for `user_id` until `now + hold_for`.
    pub fn reserve(
        &mut self,
        user_id: i64,
        reservation_id: Uuid,
        now: DateTime<Utc>,
        hold_for: Duration,
    ) -> Result<Hold, ReserveError> {
        if self.holder_of.contains_key(&user_id) {
            return Err(ReserveError::AlreadyReserved);
        }
        if self.available() == 0 {
            return Err(match self.next_expiry() {
                Some(expiry) => ReserveError::AllUnitsHeld {
                    retry_after_secs: whole_seconds_until(expiry, now),
                },
                None => ReserveError::SoldOut,
            });
        }
        let hold = Hold {
            reservation_id,
            user_id,
            occurrence_start: self.occurrence_start,
            created_at: now,
            expires_at: now + hold_for,
        };
        self.insert(hold.clone());
        Ok(hold)
    }

    /// Sells the held unit, unless its hold has expired (then it is released).
    pub fn complete(
        &mut self,
        reservation_id: &Uuid,
        now: DateTime<Utc>,
    ) -> Result<Hold, ReleaseError> {
        let hold = self.take_live(reservation_id, now)?;
        self.sold += 1;
        Ok(hold)
    }

    /// Releases the held unit at the holder's request.
    pub fn cancel(
        &mut self,
        reservation_id: &Uuid,
        now: DateTime<Utc>,
    ) -> Result<Hold, ReleaseError> {
        self.take_live(reservation_id, now)
    }

    /// Releases the hold if it has expired by `now`; `None` if it is gone or still live.
    pub fn expire(&mut self, reservation_id: &Uuid, now: DateTime<Utc>) -> Option<Hold> {
        let expired = self.holds.get(reservation_id)?.expires_at <= now;
        expired.then(|| self.remove(reservation_id)).flatten()
    }

    /// Releases every hold (the promo was switched off).
    pub fn release_all(&mut self) -> Vec<Hold> {
        self.holder_of.clear();
        self.holds.drain().map(|(_, hold)| hold).collect()
    }

    /// Undoes a hold whose write failed.
    pub fn undo_reserve(&mut self, reservation_id: &Uuid) {
        self.remove(reservation_id);
    }

    /// Undoes a sale whose write failed: the sold unit is held again
    /// (returns true), which leaves `available` as it was. Not while its user
    /// holds another unit of the promo (returns false): then the sale stands
    /// and still counts as sold, and the caller writes it again.
    pub fn undo_complete(&mut self, hold: Hold) -> bool {
        if self.holder_of.contains_key(&hold.user_id) {
            return false;
        }
        self.sold = self.sold.saturating_sub(1);
        self.insert(hold);
        true
    }

    /// Undoes a release whose write failed, if the unit is still free and its
    /// user holds nothing else (returns true). Otherwise the release stands:
    /// restoring it would hold one unit twice.
    pub fn undo_release(&mut self, hold: Hold) -> bool {
        self.try_restore(hold)
    }

    fn try_restore(&mut self, hold: Hold) -> bool {
        if self.available() == 0 || self.holder_of.contains_key(&hold.user_id) {
            return false;
        }
        self.insert(hold);
        true
    }

    /// Sets the quantity the database now has, even below what memory holds
    /// (a decision still in flight): `available` then stays at 0 until enough
    /// holds end, so nothing is oversold.
    pub fn force_quantity(&mut self, quantity: u32) {
        self.quantity = quantity;
    }

    /// Changes the quantity; never below what is held or sold.
    pub fn set_quantity(&mut self, quantity: u32) -> Result<(), QuantityBelowCommitted> {
        let committed = self.held() + self.sold;
        if quantity < committed {
            return Err(QuantityBelowCommitted {
                requested: quantity,
                committed,
            });
        }
        self.quantity = quantity;
        Ok(())
    }

    /// The earliest expiry among live holds.
    pub fn next_expiry(&self) -> Option<DateTime<Utc>> {
        self.holds.values().map(|hold| hold.expires_at).min()
    }

    fn take_live(
        &mut self,
        reservation_id: &Uuid,
        now: DateTime<Utc>,
    ) -> Result<Hold, ReleaseError> {
        let hold = self.remove(reservation_id).ok_or(ReleaseError::NotHeld)?;
        if hold.expires_at <= now {
            return Err(ReleaseError::Expired(hold));
        }
        Ok(hold)
    }

    fn insert(&mut self, hold: Hold) {
        self.holder_of.insert(hold.user_id, hold.reservation_id);
        self.holds.insert(hold.reservation_id, hold);
    }

    fn remove(&mut self, reservation_id: &Uuid) -> Option<Hold> {
        let hold = self.holds.remove(reservation_id)?;
        self.holder_of.remove(&hold.user_id);
        Some(hold)
    }
}

/// Whole seconds from `now` until `instant`, rounded up, at least 1.
pub fn whole_seconds_until(instant: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    let millis = (instant - now).num_milliseconds().max(0);
    u64::try_from((millis + 999) / 1000).unwrap_or(1).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 17, 0, 0).unwrap()
    }

    fn minute() -> Duration {
        Duration::seconds(60)
    }

    fn reserve(stock: &mut PromoStock, user_id: i64) -> Result<Hold, ReserveError> {
        stock.reserve(user_id, Uuid::new_v4(), now(), minute())
    }

    #[test]
    fn reserving_holds_one_unit_for_a_minute() {
        let mut stock = PromoStock::new(3, 0, []);
        let hold = reserve(&mut stock, 1).unwrap();
        assert_eq!(hold.expires_at, now() + minute());
        assert_eq!((stock.available(), stock.held(), stock.sold()), (2, 1, 0));
    }

    #[test]
    fn a_user_holds_at_most_one_unit() {
        let mut stock = PromoStock::new(3, 0, []);
        reserve(&mut stock, 1).unwrap();
        assert_eq!(reserve(&mut stock, 1), Err(ReserveError::AlreadyReserved));
    }

    #[test]
    fn when_every_unit_is_held_others_are_told_when_to_retry() {
        let mut stock = PromoStock::new(1, 0, []);
        reserve(&mut stock, 1).unwrap();
        let later = now() + Duration::milliseconds(20_500);
        assert_eq!(
            stock.reserve(2, Uuid::new_v4(), later, minute()),
            Err(ReserveError::AllUnitsHeld {
                retry_after_secs: 40
            })
        );
    }

    #[test]
    fn reserving_the_last_unit_then_buying_it_sells_the_promo_out() {
        let mut stock = PromoStock::new(1, 0, []);
        let hold = reserve(&mut stock, 1).unwrap();
        stock.complete(&hold.reservation_id, now()).unwrap();
        assert_eq!((stock.available(), stock.held(), stock.sold()), (0, 0, 1));
        assert_eq!(reserve(&mut stock, 2), Err(ReserveError::SoldOut));
    }

    #[test]
    fn an_expired_hold_cannot_be_completed_and_frees_its_unit() {
        let mut stock = PromoStock::new(1, 0, []);
        let hold = reserve(&mut stock, 1).unwrap();
        let too_late = hold.expires_at;
        assert!(matches!(
            stock.complete(&hold.reservation_id, too_late),
            Err(ReleaseError::Expired(_))
        ));
        assert_eq!((stock.available(), stock.sold()), (1, 0));
        assert!(stock.reserve(2, Uuid::new_v4(), too_late, minute()).is_ok());
    }

    #[test]
    fn expiry_waits_for_the_deadline() {
        let mut stock = PromoStock::new(1, 0, []);
        let hold = reserve(&mut stock, 1).unwrap();
        assert!(stock.expire(&hold.reservation_id, now()).is_none());
        assert_eq!(stock.held(), 1);
        assert!(stock
            .expire(&hold.reservation_id, hold.expires_at)
            .is_some());
        assert_eq!(stock.available(), 1);
    }

    #[test]
    fn cancelling_frees_the_unit_and_the_user() {
        let mut stock = PromoStock::new(1, 0, []);
        let hold = reserve(&mut stock, 1).unwrap();
        stock.cancel(&hold.reservation_id, now()).unwrap();
        assert_eq!(stock.available(), 1);
        assert!(reserve(&mut stock, 1).is_ok());
        assert_eq!(
            stock.cancel(&hold.reservation_id, now()),
            Err(ReleaseError::NotHeld)
        );
    }

    #[test]
    fn undoing_decisions_restores_the_stock() {
        let mut stock = PromoStock::new(2, 0, []);
        let hold = reserve(&mut stock, 1).unwrap();
        stock.undo_reserve(&hold.reservation_id);
        assert_eq!((stock.available(), stock.held()), (2, 0));
        let hold = reserve(&mut stock, 1).unwrap();
        let sold = stock.complete(&hold.reservation_id, now()).unwrap();
        assert!(stock.undo_complete(sold));
        assert_eq!((stock.held(), stock.sold()), (1, 0));
        assert_eq!(reserve(&mut stock, 1), Err(ReserveError::AlreadyReserved));
    }

    #[test]
    fn a_sale_that_cannot_be_undone_still_counts_as_sold() {
        let mut stock = PromoStock::new(2, 0, []);
        let hold = reserve(&mut stock, 1).unwrap();
        let sold = stock.complete(&hold.reservation_id, now()).unwrap();
        reserve(&mut stock, 1).unwrap();
        assert!(!stock.undo_complete(sold));
        assert_eq!((stock.sold(), stock.held(), stock.available()), (1, 1, 0));
    }

    #[test]
    fn a_release_is_not_undone_once_its_unit_was_taken() {
        let mut stock = PromoStock::new(1, 0, []);
        let first = reserve(&mut stock, 1).unwrap();
        let released = stock.cancel(&first.reservation_id, now()).unwrap();
        reserve(&mut stock, 2).unwrap();
        assert!(!stock.undo_release(released));
        assert_eq!((stock.held(), stock.available()), (1, 0));
    }

    #[test]
    fn a_release_is_not_undone_when_its_user_holds_again() {
        let mut stock = PromoStock::new(2, 0, []);
        let first = reserve(&mut stock, 1).unwrap();
        let released = stock.cancel(&first.reservation_id, now()).unwrap();
        reserve(&mut stock, 1).unwrap();
        assert!(!stock.undo_release(released));
        assert_eq!(stock.held(), 1);
    }

    #[test]
    fn quantity_never_drops_below_what_is_committed() {
        let mut stock = PromoStock::new(3, 1, []);
        reserve(&mut stock, 1).unwrap();
        assert_eq!(
            stock.set_quantity(1),
            Err(QuantityBelowCommitted {
                requested: 1,
                committed: 2
            })
        );
        assert!(stock.set_quantity(2).is_ok());
        assert_eq!(stock.available(), 0);
    }

    #[test]
    fn reloaded_holds_count_and_block_their_users() {
        let hold = Hold {
            reservation_id: Uuid::new_v4(),
            user_id: 9,
            occurrence_start: now(),
            created_at: now(),
            expires_at: now() + minute(),
        };
        let mut stock = PromoStock::new(2, 1, [hold]);
        assert_eq!((stock.available(), stock.held(), stock.sold()), (0, 1, 1));
        assert_eq!(reserve(&mut stock, 9), Err(ReserveError::AlreadyReserved));
    }

    #[test]
    fn retry_after_is_rounded_up_to_at_least_one_second() {
        assert_eq!(whole_seconds_until(now(), now()), 1);
        assert_eq!(
            whole_seconds_until(now() + Duration::milliseconds(1001), now()),
            2
        );
        assert_eq!(whole_seconds_until(now() - minute(), now()), 1);
    }
}
