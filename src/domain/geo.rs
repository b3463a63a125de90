//! Coordinates, great-circle distance, and the one test of "within r km".
//!
//! `Latitude` and `Longitude` are checked degrees; `GeoPoint` pairs them and
//! measures distance on a sphere of the Earth's mean radius. "Within
//! `max_distance_km` of a store" is decided in one place, [`Disc::chord_to`]:
//! the straight-line (chord) distance between unit vectors is a monotonic
//! function of great-circle distance, so comparing chords is exact on the
//! sphere, costs no trigonometry per test, and is the same comparison an
//! R-tree of unit vectors makes. The reservation check, the `eligible/`
//! ranking and its spatial index all call it, so they cannot disagree at the
//! edge of a radius.

use std::fmt;

/// The Earth's mean radius in kilometres (IUGG).
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Why a coordinate was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CoordinateError {
    #[error("must be between -90 and 90")]
    LatitudeOutOfRange,
    #[error("must be between -180 and 180")]
    LongitudeOutOfRange,
}

/// Degrees north of the equator, in [-90, 90].
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Latitude(f64);

/// Degrees east of Greenwich, in [-180, 180].
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Longitude(f64);

impl Latitude {
    /// 0°, the equator.
    pub const EQUATOR: Latitude = Latitude(0.0);

    /// Accepts a finite value in [-90, 90].
    pub fn parse(degrees: f64) -> Result<Latitude, CoordinateError> {
        if degrees.is_finite() && (-90.0..=90.0).contains(&degrees) {
            Ok(Latitude(degrees))
        } else {
            Err(CoordinateError::LatitudeOutOfRange)
        }
    }

    /// The value in degrees.
    pub fn degrees(self) -> f64 {
        self.0
    }
}

impl Longitude {
    /// 0°, the prime meridian.
    pub const GREENWICH: Longitude = Longitude(0.0);

    /// Accepts a finite value in [-180, 180].
    pub fn parse(degrees: f64) -> Result<Longitude, CoordinateError> {
        if degrees.is_finite() && (-180.0..=180.0).contains(&degrees) {
            Ok(Longitude(degrees))
        } else {
            Err(CoordinateError::LongitudeOutOfRange)
        }
    }

    /// The value in degrees.
    pub fn degrees(self) -> f64 {
        self.0
    }
}

/// A point on the Earth's surface.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoPoint {
    pub latitude: Latitude,
    pub longitude: Longitude,
}

impl GeoPoint {
    /// Pairs two checked coordinates; cannot fail.
    pub fn new(latitude: Latitude, longitude: Longitude) -> GeoPoint {
        GeoPoint {
            latitude,
            longitude,
        }
    }

    /// Checks both coordinates.
    pub fn parse(latitude: f64, longitude: f64) -> Result<GeoPoint, CoordinateError> {
        Ok(GeoPoint::new(
            Latitude::parse(latitude)?,
            Longitude::parse(longitude)?,
        ))
    }

    /// Great-circle distance in kilometres (haversine; exact on the sphere,
    /// well-conditioned for short distances and across the antimeridian).
    pub fn distance_km(self, other: GeoPoint) -> f64 {
        let (lat1, lat2) = (self.latitude.0.to_radians(), other.latitude.0.to_radians());
        let half_dlat = (lat2 - lat1) / 2.0;
        let half_dlon = (other.longitude.0 - self.longitude.0).to_radians() / 2.0;
        let h = half_dlat.sin().powi(2) + lat1.cos() * lat2.cos() * half_dlon.sin().powi(2);
        2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
    }
}

impl GeoPoint {
    /// The point on the unit sphere, as (x, y, z). Straight-line (chord)
    /// distance between such vectors is a monotonic function of great-circle
    /// distance, with no distortion at the poles or the antimeridian.
    pub fn unit_vector(self) -> [f64; 3] {
        let (lat, lon) = (self.latitude.0.to_radians(), self.longitude.0.to_radians());
        [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
    }
}

/// The straight-line distance between two points of the unit sphere.
pub fn chord_between(a: [f64; 3], b: [f64; 3]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

/// The great-circle distance in km that a unit-sphere chord spans.
pub fn km_from_chord(chord: f64) -> f64 {
    2.0 * EARTH_RADIUS_KM * (chord / 2.0).min(1.0).asin()
}

/// The chord length on the unit sphere that spans `km` of great circle.
pub fn chord_for_km(km: f64) -> f64 {
    let angle = (km / EARTH_RADIUS_KM).min(std::f64::consts::PI);
    2.0 * (angle / 2.0).sin()
}

/// Every point within a great-circle radius of a centre, held as a unit
/// vector and a squared chord so membership needs no trigonometry (and no
/// square root unless the point is inside).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Disc {
    center: [f64; 3],
    radius_chord: f64,
    radius_squared: f64,
}

impl Disc {
    /// The points within `radius_km` of `center`.
    pub fn new(center: GeoPoint, radius_km: f64) -> Disc {
        let radius_chord = chord_for_km(radius_km);
        Disc {
            center: center.unit_vector(),
            radius_chord,
            radius_squared: radius_chord * radius_chord,
        }
    }

    /// The centre, as a unit vector.
    pub fn center(&self) -> [f64; 3] {
        self.center
    }

    /// The radius, as a chord of the unit sphere.
    pub fn radius_chord(&self) -> f64 {
        self.radius_chord
    }

    /// The chord from the centre to `point` (a unit vector), when `point` lies
    /// in the disc: the one test of "within r km" (squared chords compared).
    pub fn chord_to(&self, point: [f64; 3]) -> Option<f64> {
        let [dx, dy, dz] = [
            self.center[0] - point[0],
            self.center[1] - point[1],
            self.center[2] - point[2],
        ];
        let squared = dx * dx + dy * dy + dz * dz;
        (squared <= self.radius_squared).then(|| squared.sqrt())
    }

    /// The same disc, as a key: discs with equal keys hold the same points.
    pub fn key(&self) -> [u64; 4] {
        let [x, y, z] = self.center;
        [
            x.to_bits(),
            y.to_bits(),
            z.to_bits(),
            self.radius_squared.to_bits(),
        ]
    }
}

impl fmt::Display for GeoPoint {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "({}, {})", self.latitude.0, self.longitude.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(latitude: f64, longitude: f64) -> GeoPoint {
        GeoPoint::parse(latitude, longitude).unwrap()
    }

    #[test]
    fn coordinates_outside_their_range_are_refused() {
        assert_eq!(
            Latitude::parse(90.0001),
            Err(CoordinateError::LatitudeOutOfRange)
        );
        assert_eq!(
            Longitude::parse(-180.5),
            Err(CoordinateError::LongitudeOutOfRange)
        );
        assert!(Latitude::parse(f64::NAN).is_err());
        assert!(Latitude::parse(-90.0).is_ok() && Longitude::parse(180.0).is_ok());
    }

    #[test]
    fn a_degree_of_latitude_is_about_111_km() {
        let distance = point(0.0, 0.0).distance_km(point(1.0, 0.0));
        assert!((distance - 111.195).abs() < 0.01, "{distance}");
    }

    #[test]
    fn distance_across_the_antimeridian_is_short() {
        let distance = point(0.0, 179.99).distance_km(point(0.0, -179.99));
        assert!((distance - 2.224).abs() < 0.01, "{distance}");
    }

    #[test]
    fn distance_near_the_pole_is_measured_on_the_sphere() {
        let distance = point(89.99, 0.0).distance_km(point(89.99, 180.0));
        assert!((distance - 2.224).abs() < 0.01, "{distance}");
    }

    #[test]
    fn chord_and_haversine_agree() {
        let (a, b) = (point(19.43, -99.13), point(19.44, -99.12));
        let [x1, y1, z1] = a.unit_vector();
        let [x2, y2, z2] = b.unit_vector();
        let chord = ((x1 - x2).powi(2) + (y1 - y2).powi(2) + (z1 - z2).powi(2)).sqrt();
        assert!((chord - chord_for_km(a.distance_km(b))).abs() < 1e-12);
    }

    #[test]
    fn a_disc_holds_what_lies_within_its_radius_across_the_antimeridian() {
        let disc = Disc::new(point(0.0, 179.995), 2.0);
        let across = disc.chord_to(point(0.0, -179.995).unit_vector());
        assert!(across.is_some_and(|chord| (km_from_chord(chord) - 1.112).abs() < 0.01));
        assert_eq!(disc.chord_to(point(0.0, -179.97).unit_vector()), None);
    }

    #[test]
    fn distance_to_itself_is_zero() {
        let here = point(19.4326, -99.1332);
        assert_eq!(here.distance_km(here), 0.0);
    }
}
