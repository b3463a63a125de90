//! Flash promo rules: terms a promo must satisfy, its half-open window, its
//! occurrences (one, or one a day with a [`DailyWindow`]), and the status it
//! has at a given instant.
//!
//! Everything takes `now` as an argument; nothing here reads the clock.

use chrono::{DateTime, Months, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::daily_window::DailyWindow;
use super::entities::{Product, Segment};
use super::occurrence::{Occurrence, Schedule};
use super::Money;

/// The widest radius a promo may target, in km.
pub const MAX_RADIUS_KM: f64 = 100.0;
/// The radius when none is given, in km.
pub const DEFAULT_RADIUS_KM: f64 = 2.0;
/// The most units one promo may offer (bounds the memory of its actor).
pub const MAX_QUANTITY: u32 = 1_000_000;
/// The longest range of a promo with a daily window, in years: occurrences
/// are found a day at a time (the overlap check walks two such promos side
/// by side under the product's lock), so the range bounds that walk.
pub const MAX_DAILY_RANGE_YEARS: u32 = 5;

/// Why promo terms were refused; each names the field it concerns.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PromoTermsError {
    #[error("must be after start_time")]
    EndNotAfterStart,
    #[error("must be in the future")]
    EndInPast,
    #[error("must be lower than the product's regular price")]
    PriceNotBelowRegular,
    #[error("must be greater than 0 and at most {MAX_RADIUS_KM}")]
    RadiusOutOfRange,
    #[error("must be between 1 and {MAX_QUANTITY}")]
    QuantityOutOfRange,
    #[error("must name at least one segment")]
    NoSegments,
    #[error("has no occurrence between start_time and end_time")]
    NoOccurrence,
    #[error("has no occurrence left: every one ended before now")]
    NoFutureOccurrence,
    #[error("a promo with a daily window may run at most {MAX_DAILY_RANGE_YEARS} years after start_time")]
    DailyRangeTooLong,
}

impl PromoTermsError {
    /// The request field this error belongs to.
    pub fn field(&self) -> &'static str {
        match self {
            PromoTermsError::EndNotAfterStart
            | PromoTermsError::EndInPast
            | PromoTermsError::DailyRangeTooLong => "end_time",
            PromoTermsError::PriceNotBelowRegular => "promo_price",
            PromoTermsError::RadiusOutOfRange => "max_distance_km",
            PromoTermsError::QuantityOutOfRange => "quantity",
            PromoTermsError::NoSegments => "segment_ids",
            PromoTermsError::NoOccurrence | PromoTermsError::NoFutureOccurrence => "daily_window",
        }
    }
}

/// A checked radius in km, in (0, 100].
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct RadiusKm(f64);

impl RadiusKm {
    /// Accepts a finite radius in (0, [`MAX_RADIUS_KM`]].
    pub fn parse(km: f64) -> Result<RadiusKm, PromoTermsError> {
        if km.is_finite() && km > 0.0 && km <= MAX_RADIUS_KM {
            Ok(RadiusKm(km))
        } else {
            Err(PromoTermsError::RadiusOutOfRange)
        }
    }

    /// The radius in km.
    pub fn km(self) -> f64 {
        self.0
    }
}

/// Checks a unit count.
pub fn parse_quantity(units: i64) -> Result<u32, PromoTermsError> {
    u32::try_from(units)
        .ok()
        .filter(|units| (1..=MAX_QUANTITY).contains(units))
        .ok_or(PromoTermsError::QuantityOutOfRange)
}

/// The complete terms of a promo, checked together (the cross-field rules).
#[derive(Debug, Clone, PartialEq)]
pub struct PromoTerms {
    pub product_id: i64,
    pub promo_price: Money,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub segment_ids: Vec<i64>,
    pub max_distance_km: RadiusKm,
    pub is_active: bool,
    pub quantity: u32,
    pub daily_window: Option<DailyWindow>,
}

impl PromoTerms {
    /// Checks the rules that involve several fields or the product's price.
    /// `end_must_be_future` is set when the write sets `end_time`.
    pub fn check(
        &self,
        regular_price: Money,
        end_must_be_future: bool,
        now: DateTime<Utc>,
    ) -> Vec<PromoTermsError> {
        let mut errors = Vec::new();
        if self.end_time <= self.start_time {
            errors.push(PromoTermsError::EndNotAfterStart);
        } else if end_must_be_future && self.end_time <= now {
            errors.push(PromoTermsError::EndInPast);
        }
        if self.promo_price >= regular_price {
            errors.push(PromoTermsError::PriceNotBelowRegular);
        }
        if self.segment_ids.is_empty() {
            errors.push(PromoTermsError::NoSegments);
        }
        if self.end_time > self.start_time && self.daily_window.is_some() {
            self.check_occurrences(end_must_be_future, now, &mut errors);
        }
        errors
    }

    /// The rules of a daily promo's occurrences (its range is not empty):
    /// a bounded range with at least one occurrence, and when `end_time`
    /// must be in the future, one that ends after `now`.
    fn check_occurrences(
        &self,
        end_must_be_future: bool,
        now: DateTime<Utc>,
        errors: &mut Vec<PromoTermsError>,
    ) {
        let longest = Months::new(MAX_DAILY_RANGE_YEARS * 12);
        if self
            .start_time
            .checked_add_months(longest)
            .is_some_and(|latest| self.end_time > latest)
        {
            errors.push(PromoTermsError::DailyRangeTooLong);
            return;
        }
        let schedule = self.schedule();
        if schedule.occurrences().next().is_none() {
            errors.push(PromoTermsError::NoOccurrence);
        } else if end_must_be_future
            && self.end_time > now
            && schedule.occurrences_ending_after(now).next().is_none()
        {
            errors.push(PromoTermsError::NoFutureOccurrence);
        }
    }

    /// When a promo with these terms runs.
    pub fn schedule(&self) -> Schedule {
        Schedule::new(self.start_time, self.end_time, self.daily_window)
    }

    /// True when `now` lies in the half-open window `[start_time, end_time)`.
    pub fn window_contains(&self, now: DateTime<Utc>) -> bool {
        in_window(self.start_time, self.end_time, now)
    }
}

/// True when `now` lies in the half-open window `[start, end)`.
fn in_window(start: DateTime<Utc>, end: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    start <= now && now < end
}

/// Where a promo stands (its current or next occurrence, or the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PromoStatus {
    /// Switched off by the admin.
    Inactive,
    /// Active, before its first occurrence or between two.
    Scheduled,
    /// Active, inside an occurrence, units of it left to sell.
    Running,
    /// Active, inside an occurrence, every unit of it sold.
    SoldOut,
    /// Past its last occurrence.
    Ended,
}

/// The status of a promo at `now`, given its current or next occurrence
/// ([`Schedule::current_or_next`]) and that occurrence's counts.
pub fn status_at(
    is_active: bool,
    occurrence: Option<Occurrence>,
    quantity: u32,
    sold: u32,
    now: DateTime<Utc>,
) -> PromoStatus {
    match occurrence {
        _ if !is_active => PromoStatus::Inactive,
        None => PromoStatus::Ended,
        Some(occurrence) if now >= occurrence.end => PromoStatus::Ended,
        Some(occurrence) if now < occurrence.start => PromoStatus::Scheduled,
        Some(_) if sold >= quantity => PromoStatus::SoldOut,
        Some(_) => PromoStatus::Running,
    }
}

/// A flash promo as clients see it: terms, embedded product and segments, and
/// the live counts of its current or next occurrence (`available + held +
/// sold = quantity`; after the last occurrence, those of the last).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FlashPromo {
    pub id: i64,
    pub product: Product,
    pub promo_price: Money,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub segments: Vec<Segment>,
    pub max_distance_km: f64,
    pub is_active: bool,
    /// `null` for a continuous promo.
    pub daily_window: Option<DailyWindow>,
    pub quantity: u32,
    pub available: u32,
    pub held: u32,
    pub sold: u32,
    /// Units sold over every occurrence.
    pub sold_total: u32,
    /// Live holds in any occurrence (not shown): what a restarted registry
    /// must settle, even when the occurrence shown is a later one.
    #[serde(skip)]
    pub held_any: u32,
    pub status: PromoStatus,
    /// The current occurrence, else the next; `null` when none is left.
    pub occurrence: Option<Occurrence>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl FlashPromo {
    /// Sets the counts (of the occurrence [`Schedule::counted_at`] `now`)
    /// and recomputes `available`, `occurrence` and `status` at `now`.
    pub fn with_counts(mut self, held: u32, sold: u32, now: DateTime<Utc>) -> FlashPromo {
        self.held = held;
        self.sold = sold;
        self.available = self.quantity.saturating_sub(held + sold);
        self.occurrence = self.schedule().current_or_next(now);
        self.status = status_at(self.is_active, self.occurrence, self.quantity, sold, now);
        self
    }

    /// Sets the units sold over every occurrence.
    pub fn with_sold_total(mut self, sold_total: u32) -> FlashPromo {
        self.sold_total = sold_total;
        self
    }

    /// When the promo runs.
    pub fn schedule(&self) -> Schedule {
        Schedule::new(self.start_time, self.end_time, self.daily_window)
    }

    /// True when the promo is switched on and `now` lies in one of its
    /// occurrences, whatever its stock: the one rule for "should this
    /// promo's actor be taking decisions now".
    pub fn runs_at(&self, now: DateTime<Utc>) -> bool {
        self.is_active && self.occurrence_at(now).is_some()
    }

    /// The occurrence `now` lies in, if any (switched on or not).
    pub fn occurrence_at(&self, now: DateTime<Utc>) -> Option<Occurrence> {
        if self.daily_window.is_none() {
            // The common case, without building an iterator.
            let only = Occurrence {
                start: self.start_time,
                end: self.end_time,
            };
            return only.contains(now).then_some(only);
        }
        self.schedule().occurrence_at(now)
    }

    /// The start of the occurrence whose stock the promo shows at `now`
    /// ([`Schedule::counted_at`]); `start_time` when it has none.
    pub fn counted_start(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self.daily_window {
            None => self.start_time,
            Some(_) => self
                .schedule()
                .counted_at(now)
                .map_or(self.start_time, |occurrence| occurrence.start),
        }
    }

    /// The next instant after `now` at which an occurrence starts or ends.
    pub fn next_change_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let occurrence = self.schedule().current_or_next(now)?;
        Some(if occurrence.start > now {
            occurrence.start
        } else {
            occurrence.end
        })
    }

    /// The ids of the targeted segments.
    pub fn segment_ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.segments.iter().map(|segment| segment.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, hour, 0, 0).unwrap()
    }

    fn terms() -> PromoTerms {
        PromoTerms {
            product_id: 1,
            promo_price: Money::parse("499.00").unwrap(),
            start_time: at(17),
            end_time: at(19),
            segment_ids: vec![1],
            max_distance_km: RadiusKm::parse(2.0).unwrap(),
            is_active: true,
            quantity: 1,
            daily_window: None,
        }
    }

    #[test]
    fn the_window_is_half_open() {
        let terms = terms();
        assert!(!terms.window_contains(at(16)));
        assert!(terms.window_contains(at(17)));
        assert!(terms.window_contains(at(18)));
        assert!(!terms.window_contains(at(19)));
    }

    #[test]
    fn status_follows_activity_window_and_stock() {
        let schedule = Schedule::new(at(17), at(19), None);
        let status =
            |active, sold, now| status_at(active, schedule.current_or_next(now), 3, sold, now);
        assert_eq!(status(false, 0, at(18)), PromoStatus::Inactive);
        assert_eq!(status(true, 0, at(16)), PromoStatus::Scheduled);
        assert_eq!(status(true, 2, at(18)), PromoStatus::Running);
        assert_eq!(status(true, 3, at(18)), PromoStatus::SoldOut);
        assert_eq!(status(true, 3, at(19)), PromoStatus::Ended);
    }

    #[test]
    fn a_daily_promo_is_scheduled_between_occurrences_and_ended_after_the_last() {
        let mut terms = terms();
        terms.start_time = at(0);
        terms.end_time = at(0) + chrono::Duration::days(2);
        terms.daily_window = Some(DailyWindow::parse("17:00", "19:00", "UTC").unwrap());
        let schedule = terms.schedule();
        let status = |now| status_at(true, schedule.current_or_next(now), 3, 0, now);
        let next_day = |hour| at(hour) + chrono::Duration::days(1);
        assert_eq!(status(at(18)), PromoStatus::Running);
        assert_eq!(status(at(19)), PromoStatus::Scheduled);
        assert_eq!(status(next_day(17)), PromoStatus::Running);
        assert_eq!(status(next_day(19)), PromoStatus::Ended);
    }

    #[test]
    fn a_daily_window_that_misses_the_range_is_refused() {
        let regular = Money::parse("999.00").unwrap();
        let mut terms = terms();
        terms.daily_window = Some(DailyWindow::parse("08:00", "09:00", "UTC").unwrap());
        assert_eq!(
            terms.check(regular, true, at(10)),
            vec![PromoTermsError::NoOccurrence]
        );
        terms.daily_window = Some(DailyWindow::parse("18:00", "24:00", "UTC").unwrap());
        assert!(terms.check(regular, true, at(10)).is_empty());
    }

    #[test]
    fn a_daily_range_longer_than_five_years_is_refused_on_end_time() {
        let regular = Money::parse("999.00").unwrap();
        let mut terms = terms();
        terms.daily_window = Some(DailyWindow::parse("17:00", "19:00", "UTC").unwrap());
        terms.end_time = terms.start_time + chrono::Duration::days(5 * 365);
        assert!(terms.check(regular, true, at(10)).is_empty());
        terms.end_time = terms.start_time + chrono::Duration::days(5 * 366);
        let errors = terms.check(regular, true, at(10));
        assert_eq!(errors, vec![PromoTermsError::DailyRangeTooLong]);
        assert_eq!(errors[0].field(), "end_time");
        terms.end_time = Utc.with_ymd_and_hms(9999, 12, 31, 0, 0, 0).unwrap();
        assert_eq!(
            terms.check(regular, true, at(10)),
            vec![PromoTermsError::DailyRangeTooLong]
        );
        terms.daily_window = None;
        assert!(terms.check(regular, true, at(10)).is_empty(), "continuous");
    }

    #[test]
    fn a_daily_promo_whose_occurrences_all_ended_is_refused_when_end_time_must_be_future() {
        let regular = Money::parse("999.00").unwrap();
        let mut terms = terms();
        terms.start_time = at(0);
        terms.end_time = at(20);
        terms.daily_window = Some(DailyWindow::parse("17:00", "19:00", "UTC").unwrap());
        let errors = terms.check(regular, true, at(19));
        assert_eq!(errors, vec![PromoTermsError::NoFutureOccurrence]);
        assert_eq!(errors[0].field(), "daily_window");
        assert!(terms.check(regular, true, at(18)).is_empty(), "one runs");
        assert!(
            terms.check(regular, false, at(19)).is_empty(),
            "end_time not written"
        );
    }

    #[test]
    fn terms_are_checked_together() {
        let regular = Money::parse("999.00").unwrap();
        assert!(terms().check(regular, true, at(10)).is_empty());
        let mut bad = terms();
        bad.end_time = at(17);
        bad.promo_price = regular;
        bad.segment_ids.clear();
        assert_eq!(
            bad.check(regular, true, at(10)),
            vec![
                PromoTermsError::EndNotAfterStart,
                PromoTermsError::PriceNotBelowRegular,
                PromoTermsError::NoSegments
            ]
        );
    }

    #[test]
    fn an_end_in_the_past_is_refused_only_when_it_is_being_set() {
        let regular = Money::parse("999.00").unwrap();
        assert_eq!(
            terms().check(regular, true, at(20)),
            vec![PromoTermsError::EndInPast]
        );
        assert!(terms().check(regular, false, at(20)).is_empty());
    }

    #[test]
    fn radius_and_quantity_have_bounds() {
        assert!(RadiusKm::parse(0.0).is_err());
        assert!(RadiusKm::parse(100.0).is_ok());
        assert!(RadiusKm::parse(100.01).is_err());
        assert_eq!(parse_quantity(0), Err(PromoTermsError::QuantityOutOfRange));
        assert_eq!(parse_quantity(3), Ok(3));
        assert!(parse_quantity(i64::from(MAX_QUANTITY) + 1).is_err());
    }
}
