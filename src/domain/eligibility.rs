//! Who may reserve a running promo: a client in one of its segments, with a
//! known location within its radius of the store (great-circle distance).

use super::entities::ClientProfile;
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

/// The distance from `member` to the promo's store, if `member` is eligible.
pub fn check_eligibility(promo: &FlashPromo, member: &AudienceMember) -> Result<f64, Ineligible> {
    if !promo
        .segment_ids()
        .any(|id| member.segment_ids.contains(&id))
    {
        return Err(Ineligible::NotInSegment);
    }
    let location = member.location.ok_or(Ineligible::LocationUnknown)?;
    let store = store_location(promo).ok_or(Ineligible::TooFar)?;
    let distance = location.distance_km(store);
    if distance <= promo.max_distance_km {
        Ok(distance)
    } else {
        Err(Ineligible::TooFar)
    }
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
            quantity: 1,
            available: 1,
            held: 0,
            sold: 0,
            status: PromoStatus::Running,
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
    fn distance_wraps_across_the_antimeridian() {
        let promo = promo_at(0.0, 179.995, 2.0);
        let distance = check_eligibility(&promo, &member(Some((0.0, -179.995)), &[7])).unwrap();
        assert!((distance - 1.112).abs() < 0.01, "{distance}");
    }
}
