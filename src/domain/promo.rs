//! Flash promo rules: terms a promo must satisfy, its half-open window, and the
//! status it has at a given instant.
//!
//! Everything takes `now` as an argument; nothing here reads the clock.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::entities::{Product, Segment};
use super::Money;

/// The widest radius a promo may target, in km.
pub const MAX_RADIUS_KM: f64 = 100.0;
/// The radius when none is given, in km.
pub const DEFAULT_RADIUS_KM: f64 = 2.0;
/// The most units one promo may offer (bounds the memory of its actor).
pub const MAX_QUANTITY: u32 = 1_000_000;

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
}

impl PromoTermsError {
    /// The request field this error belongs to.
    pub fn field(&self) -> &'static str {
        match self {
            PromoTermsError::EndNotAfterStart | PromoTermsError::EndInPast => "end_time",
            PromoTermsError::PriceNotBelowRegular => "promo_price",
            PromoTermsError::RadiusOutOfRange => "max_distance_km",
            PromoTermsError::QuantityOutOfRange => "quantity",
            PromoTermsError::NoSegments => "segment_ids",
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
        errors
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

/// Where a promo stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PromoStatus {
    /// Switched off by the admin.
    Inactive,
    /// Active, before its start.
    Scheduled,
    /// Active, inside its window, units left to sell.
    Running,
    /// Active, inside its window, every unit sold.
    SoldOut,
    /// Past its end.
    Ended,
}

/// The status of a promo at `now`.
pub fn status_at(
    is_active: bool,
    start_time: DateTime<Utc>,
    end_time: DateTime<Utc>,
    quantity: u32,
    sold: u32,
    now: DateTime<Utc>,
) -> PromoStatus {
    if !is_active {
        PromoStatus::Inactive
    } else if now >= end_time {
        PromoStatus::Ended
    } else if now < start_time {
        PromoStatus::Scheduled
    } else if sold >= quantity {
        PromoStatus::SoldOut
    } else {
        PromoStatus::Running
    }
}

/// A flash promo as clients see it: terms, embedded product and segments, and
/// the live counts (`available + held + sold = quantity`).
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
    pub quantity: u32,
    pub available: u32,
    pub held: u32,
    pub sold: u32,
    pub status: PromoStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl FlashPromo {
    /// Sets the counts and recomputes `available` and `status` at `now`.
    pub fn with_counts(mut self, held: u32, sold: u32, now: DateTime<Utc>) -> FlashPromo {
        self.held = held;
        self.sold = sold;
        self.available = self.quantity.saturating_sub(held + sold);
        self.status = status_at(
            self.is_active,
            self.start_time,
            self.end_time,
            self.quantity,
            sold,
            now,
        );
        self
    }

    /// True when the promo is switched on and `now` lies in its half-open
    /// window `[start_time, end_time)`, whatever its stock: the one rule for
    /// "should this promo's actor be taking decisions now".
    pub fn runs_at(&self, now: DateTime<Utc>) -> bool {
        self.is_active && in_window(self.start_time, self.end_time, now)
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
        let status = |active, sold, now| status_at(active, at(17), at(19), 3, sold, now);
        assert_eq!(status(false, 0, at(18)), PromoStatus::Inactive);
        assert_eq!(status(true, 0, at(16)), PromoStatus::Scheduled);
        assert_eq!(status(true, 2, at(18)), PromoStatus::Running);
        assert_eq!(status(true, 3, at(18)), PromoStatus::SoldOut);
        assert_eq!(status(true, 3, at(19)), PromoStatus::Ended);
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
