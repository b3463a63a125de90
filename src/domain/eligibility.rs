//! Who may reserve a running promo: a client in one of its segments, with a
//! known location within its radius of the store (great-circle distance).
//!
//! This is the one eligibility rule: the reservation check
//! ([`check_eligibility`]) and the `eligible/` ranking both go through
//! [`Shopper::check`] or, inside the spatial index, the same
//! [`Disc::chord_to`] on the same precomputed [`reach_of`], so a shopper at
//! the edge of a radius is eligible in both or in neither.

use super::entities::ClientProfile;
use super::geo::{km_from_chord, Disc};
use super::promo::FlashPromo;
use super::GeoPoint;

/// What eligibility needs to know about a client.
#[derive(Debug, Clone, PartialEq)]
pub struct AudienceMember {
    pub user_id: i64,
    pub location: Option<GeoPoint>,
    pub segment_ids: Vec<i64>,
}

impl From<&ClientProfile> for AudienceMember {
    fn from(profile: &ClientProfile) -> Self {
        let location = match (profile.latitude, profile.longitude) {
            (Some(latitude), Some(longitude)) => GeoPoint::parse(latitude, longitude).ok(),
            _ => None,
        };
        AudienceMember {
            user_id: profile.user.id,
            location,
            segment_ids: profile.segments.iter().map(|segment| segment.id).collect(),
        }
    }
}

/// Why a client may not reserve, in API.md's order of checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Ineligible {
    #[error("you are in none of this promo's segments")]
    NotInSegment,
    #[error("your location is unknown; share it first")]
    LocationUnknown,
    #[error("you are farther from the store than this promo reaches")]
    TooFar,
}

/// A member prepared for many checks: its location as a unit vector,
/// computed once rather than once per promo.
#[derive(Debug, Clone, Copy)]
pub struct Shopper<'a> {
    member: &'a AudienceMember,
    origin: Option<[f64; 3]>,
}

impl<'a> Shopper<'a> {
    /// Prepares `member` for checks.
    pub fn new(member: &'a AudienceMember) -> Shopper<'a> {
        Shopper {
            member,
            origin: member.location.map(GeoPoint::unit_vector),
        }
    }

    /// The member's location as a unit vector, if known.
    pub fn origin(&self) -> Option<[f64; 3]> {
        self.origin
    }

    /// True when the member is in one of the promo's segments.
    pub fn in_segments(&self, promo: &FlashPromo) -> bool {
        promo
            .segment_ids()
            .any(|id| self.member.segment_ids.contains(&id))
    }

    /// The rule, in API.md's order of checks: segments, location, reach.
    /// `reach` is [`reach_of`] the promo (precomputed by callers that check
    /// often). Answers the chord to the store, which orders like distance.
    pub fn check(&self, promo: &FlashPromo, reach: Option<&Disc>) -> Result<f64, Ineligible> {
        if !self.in_segments(promo) {
            return Err(Ineligible::NotInSegment);
        }
        let origin = self.origin.ok_or(Ineligible::LocationUnknown)?;
        reach
            .and_then(|reach| reach.chord_to(origin))
            .ok_or(Ineligible::TooFar)
    }
}

/// The distance in km from `member` to the promo's store, if `member` is eligible.
pub fn check_eligibility(promo: &FlashPromo, member: &AudienceMember) -> Result<f64, Ineligible> {
    Shopper::new(member)
        .check(promo, reach_of(promo).as_ref())
        .map(km_from_chord)
}

/// Where a promo reaches: its radius around its store.
pub fn reach_of(promo: &FlashPromo) -> Option<Disc> {
    store_location(promo).map(|store| Disc::new(store, promo.max_distance_km))
}

/// The store's location (stored coordinates are always in range).
pub fn store_location(promo: &FlashPromo) -> Option<GeoPoint> {
    GeoPoint::parse(promo.product.store.latitude, promo.product.store.longitude).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::entities::{Product, Segment, Store};
    use crate::domain::promo::PromoStatus;
    use crate::domain::Money;
    use chrono::Utc;

    fn promo_at(latitude: f64, longitude: f64, radius: f64) -> FlashPromo {
        FlashPromo {
            id: 1,
            product: Product {
                id: 1,
                name: "P".into(),
                store: Store {
                    id: 1,
                    name: "S".into(),
                    latitude,
                    longitude,
                },
                regular_price: Money::parse("10").unwrap(),
            },
            promo_price: Money::parse("5").unwrap(),
            start_time: Utc::now(),
            end_time: Utc::now(),
            segments: vec![Segment {
                id: 7,
                name: "New users".into(),
                description: String::new(),
            }],
            max_distance_km: radius,
            is_active: true,
            daily_window: None,
            quantity: 1,
            available: 1,
            held: 0,
            sold: 0,
            sold_total: 0,
            held_any: 0,
            status: PromoStatus::Running,
            occurrence: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn member(location: Option<(f64, f64)>, segments: &[i64]) -> AudienceMember {
        AudienceMember {
            user_id: 1,
            location: location.map(|(lat, lon)| GeoPoint::parse(lat, lon).unwrap()),
            segment_ids: segments.to_vec(),
        }
    }

    #[test]
    fn checks_run_in_the_contracts_order() {
        let promo = promo_at(0.0, 0.0, 2.0);
        assert_eq!(
            check_eligibility(&promo, &member(None, &[1])),
            Err(Ineligible::NotInSegment)
        );
        assert_eq!(
            check_eligibility(&promo, &member(None, &[7])),
            Err(Ineligible::LocationUnknown)
        );
        assert_eq!(
            check_eligibility(&promo, &member(Some((0.1, 0.0)), &[7])),
            Err(Ineligible::TooFar)
        );
    }

    #[test]
    fn just_inside_the_radius_is_eligible_and_just_outside_is_not() {
        let promo = promo_at(19.4326, -99.1332, 2.0);
        // 0.01797° of latitude ≈ 1.998 km; 0.01800° ≈ 2.0015 km.
        let inside = check_eligibility(&promo, &member(Some((19.4326 + 0.01797, -99.1332)), &[7]));
        assert!(inside.is_ok_and(|distance| distance < 2.0));
        let outside = check_eligibility(&promo, &member(Some((19.4326 + 0.01800, -99.1332)), &[7]));
        assert_eq!(outside, Err(Ineligible::TooFar));
    }

    #[test]
    fn the_distance_reported_is_the_great_circle_distance() {
        let promo = promo_at(19.4326, -99.1332, 2.0);
        let here = (19.4326 + 0.01, -99.1332 + 0.005);
        let distance = check_eligibility(&promo, &member(Some(here), &[7])).unwrap();
        let haversine = GeoPoint::parse(here.0, here.1)
            .unwrap()
            .distance_km(store_location(&promo).unwrap());
        assert!(
            (distance - haversine).abs() < 1e-9,
            "{distance} vs {haversine}"
        );
    }

    #[test]
    fn distance_wraps_across_the_antimeridian() {
        let promo = promo_at(0.0, 179.995, 2.0);
        let distance = check_eligibility(&promo, &member(Some((0.0, -179.995)), &[7])).unwrap();
        assert!((distance - 1.112).abs() < 0.01, "{distance}");
    }
}
