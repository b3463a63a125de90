//! `OccurrenceStock`: one promo's stock, kept per occurrence — the rules its
//! PromoActor applies, one decision at a time.
//!
//! New holds are taken from the current occurrence's [`PromoStock`]; moving
//! to the next occurrence ([`OccurrenceStock::roll_to`]) starts it with
//! `available = quantity`, and nothing carries over. Holds of an earlier
//! occurrence stay in that occurrence's stock: they may still complete,
//! cancel or expire, and never count against the current one (but their
//! holder may hold nothing else of the promo meanwhile). A continuous
//! promo has one occurrence, whose start moves with its `start_time`, so its
//! one stock is kept whatever the holds' `occurrence_start` says.
//!
//! The counts it shows (`quantity`, `held`, `sold`) are the current
//! occurrence's; `sold_total` counts every occurrence.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::stock::{Hold, PromoStock, QuantityBelowCommitted, ReleaseError, ReserveError};

/// The stock of every occurrence of one promo that still matters.
#[derive(Debug, Clone)]
pub struct OccurrenceStock {
    continuous: bool,
    quantity: u32,
    current: DateTime<Utc>,
    stocks: BTreeMap<DateTime<Utc>, PromoStock>,
    sold_total: u32,
}

/// How a promo's stock is reloaded: its kind, quantity, the occurrence it
/// counts now and that occurrence's sales, and its sales in all.
#[derive(Debug, Clone, Copy)]
pub struct StockTerms {
    pub continuous: bool,
    pub quantity: u32,
    pub current: DateTime<Utc>,
    pub sold: u32,
    pub sold_total: u32,
}

impl OccurrenceStock {
    /// The stock as reloaded: `holds` are filed under their occurrences.
    pub fn new(terms: StockTerms, holds: impl IntoIterator<Item = Hold>) -> OccurrenceStock {
        let mut grouped: BTreeMap<DateTime<Utc>, Vec<Hold>> = BTreeMap::new();
        for hold in holds {
            let key = if terms.continuous {
                terms.current
            } else {
                hold.occurrence_start
            };
            grouped.entry(key).or_default().push(hold);
        }
        let current_holds = grouped.remove(&terms.current).unwrap_or_default();
        let mut stocks = BTreeMap::new();
        let current = PromoStock::new(terms.quantity, terms.sold, current_holds);
        stocks.insert(terms.current, current.in_occurrence(terms.current));
        for (start, holds) in grouped {
            let quantity =
                u32::try_from(holds.len()).map_or(u32::MAX, |held| held.max(terms.quantity));
            stocks.insert(
                start,
                PromoStock::new(quantity, 0, holds).in_occurrence(start),
            );
        }
        OccurrenceStock {
            continuous: terms.continuous,
            quantity: terms.quantity,
            current: terms.current,
            stocks,
            sold_total: terms.sold_total,
        }
    }

    /// The occurrence new holds are taken in.
    pub fn current(&self) -> DateTime<Utc> {
        self.current
    }

    /// Moves on to the occurrence starting at `start` (fresh stock), keeping
    /// earlier occurrences only while they have holds; a continuous promo
    /// keeps its one stock under the new start. True when it moved.
    pub fn roll_to(&mut self, start: DateTime<Utc>) -> bool {
        if start == self.current {
            return false;
        }
        let previous = std::mem::replace(&mut self.current, start);
        if self.continuous {
            let stock = self.stocks.remove(&previous).unwrap_or_default();
            self.stocks.insert(start, stock.in_occurrence(start));
            return true;
        }
        self.stocks.retain(|_, stock| stock.held() > 0);
        self.current_mut();
        true
    }

    /// The occurrence counted now, starting at `from`, had its start moved
    /// to `to` ([`Schedule::rekeyed_at`](super::occurrence::Schedule::rekeyed_at)):
    /// its stock, sales and holds move under the new key. True when it moved.
    pub fn rekey(&mut self, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
        if self.current != from || from == to {
            return false;
        }
        let stock = self.stocks.remove(&from).unwrap_or_default();
        self.stocks.insert(to, stock.rekeyed(to));
        self.current = to;
        true
    }

    /// Switches between one stock (continuous) and one per occurrence. Made
    /// continuous, every occurrence's holds and sales become its one stock's.
    pub fn set_continuous(&mut self, continuous: bool) {
        if continuous && !self.continuous {
            let holds: Vec<Hold> = self.holds().cloned().collect();
            let stock = PromoStock::new(self.quantity, self.sold_total, holds);
            self.stocks.clear();
            self.stocks
                .insert(self.current, stock.in_occurrence(self.current));
        }
        self.continuous = continuous;
    }

    fn current_stock(&self) -> Option<&PromoStock> {
        self.stocks.get(&self.current)
    }

    fn current_mut(&mut self) -> &mut PromoStock {
        let (current, quantity) = (self.current, self.quantity);
        self.stocks
            .entry(current)
            .or_insert_with(|| PromoStock::new(quantity, 0, []).in_occurrence(current))
    }

    /// The stock a hold of the occurrence `start` belongs to.
    fn stock_for(&mut self, start: DateTime<Utc>) -> &mut PromoStock {
        if self.continuous || start == self.current {
            return self.current_mut();
        }
        let quantity = self.quantity;
        self.stocks
            .entry(start)
            .or_insert_with(|| PromoStock::new(quantity, 0, []).in_occurrence(start))
    }

    /// The stock that holds `reservation_id`.
    fn holding(&mut self, reservation_id: &Uuid) -> Option<&mut PromoStock> {
        self.stocks
            .values_mut()
            .find(|stock| stock.hold(reservation_id).is_some())
    }

    /// Units on offer in the current occurrence.
    pub fn quantity(&self) -> u32 {
        self.current_stock()
            .map_or(self.quantity, PromoStock::quantity)
    }

    /// Units of the current occurrence held now.
    pub fn held(&self) -> u32 {
        self.current_stock().map_or(0, PromoStock::held)
    }

    /// Units of the current occurrence sold.
    pub fn sold(&self) -> u32 {
        self.current_stock().map_or(0, PromoStock::sold)
    }

    /// Units sold over every occurrence.
    pub fn sold_total(&self) -> u32 {
        self.sold_total
    }

    /// Units held now, in any occurrence.
    pub fn held_anywhere(&self) -> u32 {
        self.stocks.values().map(PromoStock::held).sum()
    }

    /// Every live hold, of any occurrence.
    pub fn holds(&self) -> impl Iterator<Item = &Hold> {
        self.stocks.values().flat_map(PromoStock::holds)
    }

    /// Holds one unit of the current occurrence for `user_id`, who may
    /// hold one unit of the promo at a time: not while a hold of an earlier
    /// occurrence is live.
    pub fn reserve(
        &mut self,
        user_id: i64,
        reservation_id: Uuid,
        now: DateTime<Utc>,
        hold_for: Duration,
    ) -> Result<Hold, ReserveError> {
        if self.stocks.values().any(|stock| stock.is_held_by(user_id)) {
            return Err(ReserveError::AlreadyReserved);
        }
        self.current_mut()
            .reserve(user_id, reservation_id, now, hold_for)
    }

    /// Sells the held unit (of whichever occurrence), unless its hold expired.
    pub fn complete(
        &mut self,
        reservation_id: &Uuid,
        now: DateTime<Utc>,
    ) -> Result<Hold, ReleaseError> {
        let stock = self.holding(reservation_id).ok_or(ReleaseError::NotHeld)?;
        let sold = stock.complete(reservation_id, now)?;
        self.sold_total = self.sold_total.saturating_add(1);
        Ok(sold)
    }

    /// Releases the held unit at the holder's request.
    pub fn cancel(
        &mut self,
        reservation_id: &Uuid,
        now: DateTime<Utc>,
    ) -> Result<Hold, ReleaseError> {
        let stock = self.holding(reservation_id).ok_or(ReleaseError::NotHeld)?;
        stock.cancel(reservation_id, now)
    }

    /// Releases the hold if it has expired by `now`.
    pub fn expire(&mut self, reservation_id: &Uuid, now: DateTime<Utc>) -> Option<Hold> {
        self.holding(reservation_id)?.expire(reservation_id, now)
    }

    /// Releases every hold of every occurrence (the promo was switched off).
    pub fn release_all(&mut self) -> Vec<Hold> {
        self.stocks
            .values_mut()
            .flat_map(PromoStock::release_all)
            .collect()
    }

    /// Undoes a hold whose write failed.
    pub fn undo_reserve(&mut self, reservation_id: &Uuid) {
        if let Some(stock) = self.holding(reservation_id) {
            stock.undo_reserve(reservation_id);
        }
    }

    /// Undoes a sale whose write failed ([`PromoStock::undo_complete`]).
    pub fn undo_complete(&mut self, hold: Hold) -> bool {
        let undone = self.stock_for(hold.occurrence_start).undo_complete(hold);
        if undone {
            self.sold_total = self.sold_total.saturating_sub(1);
        }
        undone
    }

    /// Undoes a release whose write failed ([`PromoStock::undo_release`]).
    pub fn undo_release(&mut self, hold: Hold) -> bool {
        self.stock_for(hold.occurrence_start).undo_release(hold)
    }

    /// Sets the quantity the database now has ([`PromoStock::force_quantity`]).
    pub fn force_quantity(&mut self, quantity: u32) {
        self.quantity = quantity;
        self.current_mut().force_quantity(quantity);
    }

    /// Changes the quantity of the current occurrence (and later ones);
    /// never below what it has held or sold.
    pub fn set_quantity(&mut self, quantity: u32) -> Result<(), QuantityBelowCommitted> {
        self.current_mut().set_quantity(quantity)?;
        self.quantity = quantity;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn day(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, 17, 0, 0).unwrap()
    }

    fn daily(quantity: u32) -> OccurrenceStock {
        let terms = StockTerms {
            continuous: false,
            quantity,
            current: day(23),
            sold: 0,
            sold_total: 0,
        };
        OccurrenceStock::new(terms, [])
    }

    fn reserve(stock: &mut OccurrenceStock, user_id: i64, now: DateTime<Utc>) -> Hold {
        stock
            .reserve(user_id, Uuid::new_v4(), now, Duration::seconds(60))
            .unwrap()
    }

    #[test]
    fn a_new_occurrence_starts_with_every_unit_and_nothing_carries_over() {
        let mut stock = daily(2);
        let sold = reserve(&mut stock, 1, day(23));
        stock.complete(&sold.reservation_id, day(23)).unwrap();
        reserve(&mut stock, 2, day(23));
        assert_eq!((stock.held(), stock.sold()), (1, 1));
        assert!(stock.roll_to(day(24)));
        assert_eq!((stock.quantity(), stock.held(), stock.sold()), (2, 0, 0));
        assert_eq!((stock.sold_total(), stock.held_anywhere()), (1, 1));
        let hold = reserve(&mut stock, 1, day(24));
        assert_eq!(
            hold.occurrence_start,
            day(24),
            "a buyer of the last occurrence may hold one of this one"
        );
    }

    #[test]
    fn a_user_holding_a_unit_of_the_last_occurrence_cannot_hold_one_of_this_one() {
        let mut stock = daily(2);
        let old = reserve(&mut stock, 1, day(23));
        stock.roll_to(day(24));
        let again = stock.reserve(1, Uuid::new_v4(), day(24), Duration::seconds(60));
        assert_eq!(again, Err(ReserveError::AlreadyReserved));
        assert_eq!(stock.held(), 0, "nothing taken from this occurrence");
        assert!(stock.expire(&old.reservation_id, day(24)).is_some());
        assert!(stock
            .reserve(1, Uuid::new_v4(), day(24), Duration::seconds(60))
            .is_ok());
    }

    #[test]
    fn a_hold_of_the_last_occurrence_completes_without_counting_against_this_one() {
        let mut stock = daily(1);
        let old = reserve(&mut stock, 1, day(23));
        // The next occurrence began before the old hold ran out.
        let soon = day(23) + Duration::seconds(30);
        stock.roll_to(soon);
        reserve(&mut stock, 2, soon);
        assert_eq!(stock.sold(), 0);
        stock.complete(&old.reservation_id, soon).unwrap();
        assert_eq!((stock.held(), stock.sold(), stock.sold_total()), (1, 0, 1));
        assert!(stock.undo_complete(old));
        assert_eq!(
            (stock.held(), stock.held_anywhere(), stock.sold_total()),
            (1, 2, 0)
        );
    }

    #[test]
    fn reloaded_holds_are_filed_under_their_occurrences() {
        let old = Hold {
            reservation_id: Uuid::new_v4(),
            user_id: 4,
            occurrence_start: day(22),
            created_at: day(22),
            expires_at: day(23),
        };
        let terms = StockTerms {
            continuous: false,
            quantity: 3,
            current: day(23),
            sold: 2,
            sold_total: 7,
        };
        let stock = OccurrenceStock::new(terms, [old.clone()]);
        assert_eq!(
            (stock.held(), stock.sold(), stock.held_anywhere()),
            (0, 2, 1)
        );
        let continuous = OccurrenceStock::new(
            StockTerms {
                continuous: true,
                ..terms
            },
            [old],
        );
        assert_eq!(continuous.held(), 1, "a continuous promo has one stock");
    }

    #[test]
    fn a_continuous_promo_keeps_its_stock_when_its_start_moves() {
        let terms = StockTerms {
            continuous: true,
            quantity: 2,
            current: day(23),
            sold: 1,
            sold_total: 1,
        };
        let mut stock = OccurrenceStock::new(terms, []);
        reserve(&mut stock, 1, day(23));
        assert!(stock.roll_to(day(22)));
        assert_eq!((stock.held(), stock.sold(), stock.quantity()), (1, 1, 2));
    }

    #[test]
    fn a_rekeyed_occurrence_keeps_its_sales_and_holds_under_its_new_start() {
        let mut stock = daily(2);
        let sold = reserve(&mut stock, 1, day(23));
        stock.complete(&sold.reservation_id, day(23)).unwrap();
        let held = reserve(&mut stock, 2, day(23));
        let earlier = day(23) - Duration::hours(1);
        assert!(stock.rekey(day(23), earlier));
        assert!(
            !stock.roll_to(earlier),
            "the same occurrence: no fresh stock"
        );
        assert_eq!((stock.quantity(), stock.held(), stock.sold()), (2, 1, 1));
        assert!(stock.holds().all(|hold| hold.occurrence_start == earlier));
        stock.complete(&held.reservation_id, day(23)).unwrap();
        assert_eq!((stock.sold(), stock.sold_total()), (2, 2));
        assert!(!stock.rekey(day(23), day(22)), "not the counted occurrence");
    }

    #[test]
    fn made_continuous_every_occurrence_is_one_stock_again() {
        let mut stock = daily(3);
        let sold = reserve(&mut stock, 1, day(23));
        stock.complete(&sold.reservation_id, day(23)).unwrap();
        reserve(&mut stock, 2, day(23));
        stock.roll_to(day(24));
        reserve(&mut stock, 3, day(24));
        stock.set_continuous(true);
        assert_eq!((stock.held(), stock.sold(), stock.sold_total()), (2, 1, 1));
    }

    #[test]
    fn switching_off_releases_the_holds_of_every_occurrence() {
        let mut stock = daily(1);
        reserve(&mut stock, 1, day(23));
        stock.roll_to(day(24));
        reserve(&mut stock, 2, day(24));
        assert_eq!(stock.release_all().len(), 2);
        assert_eq!(stock.held_anywhere(), 0);
    }
}
