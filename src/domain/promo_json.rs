//! A promo's JSON rendered once per change of its terms, with the live parts
//! (counts, status, a shopper's distance) written in at read time.
//!
//! The read path (`running/`, `eligible/`) answers the same promos thousands
//! of times a second while their terms rarely change; serializing the
//! product, segments and four timestamps on every request was most of its
//! cost. [`PromoJson::write`] gives exactly the bytes `serde_json` gives for
//! the [`FlashPromo`] with those counts (a test holds it to that).
//!
//! The occurrence is live too (it moves at each occurrence's end); the one
//! current when the terms were rendered is kept rendered, so a continuous
//! promo (one occurrence) never serializes it on the read path.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::daily_window::DailyWindow;
use super::entities::{Product, Segment};
use super::occurrence::Occurrence;
use super::promo::{FlashPromo, PromoStatus};
use super::Money;

/// The fixed parts of one promo's JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromoJson {
    /// `{"id":…,…,"daily_window":…` — everything before `quantity`.
    head: Box<str>,
    /// `"created_at":…,"updated_at":…` — everything after `occurrence`.
    tail: Box<str>,
    /// The occurrence current at rendering, and its JSON.
    occurrence: Option<(Occurrence, Box<str>)>,
}

/// The parts of a promo that change between two renderings of its terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveFields {
    pub quantity: u32,
    pub held: u32,
    pub sold: u32,
    pub sold_total: u32,
    pub status: PromoStatus,
    pub occurrence: Option<Occurrence>,
}

impl LiveFields {
    /// The live fields of `promo` as it stands.
    pub fn of(promo: &FlashPromo) -> LiveFields {
        LiveFields {
            quantity: promo.quantity,
            held: promo.held,
            sold: promo.sold,
            sold_total: promo.sold_total,
            status: promo.status,
            occurrence: promo.occurrence,
        }
    }
}

/// The fields before `quantity`, in `FlashPromo`'s order.
#[derive(Serialize)]
struct Head<'a> {
    id: i64,
    product: &'a Product,
    promo_price: Money,
    start_time: DateTime<Utc>,
    end_time: DateTime<Utc>,
    segments: &'a [Segment],
    max_distance_km: f64,
    is_active: bool,
    daily_window: Option<DailyWindow>,
}

/// The fields after `occurrence`, in `FlashPromo`'s order.
#[derive(Serialize)]
struct Tail {
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl PromoJson {
    /// Renders the fixed parts of `promo`.
    pub fn of(promo: &FlashPromo) -> Result<PromoJson, serde_json::Error> {
        let head = serde_json::to_string(&Head {
            id: promo.id,
            product: &promo.product,
            promo_price: promo.promo_price,
            start_time: promo.start_time,
            end_time: promo.end_time,
            segments: &promo.segments,
            max_distance_km: promo.max_distance_km,
            is_active: promo.is_active,
            daily_window: promo.daily_window,
        })?;
        let tail = serde_json::to_string(&Tail {
            created_at: promo.created_at,
            updated_at: promo.updated_at,
        })?;
        let occurrence = match promo.occurrence {
            Some(occurrence) => Some((occurrence, serde_json::to_string(&occurrence)?.into())),
            None => None,
        };
        Ok(PromoJson {
            head: strip(&head, 0, 1).into(),
            tail: strip(&tail, 1, 1).into(),
            occurrence,
        })
    }

    /// Appends the promo's object with `live` to `out`, with a trailing
    /// `"distance_km"` when given (the `eligible/` item shape).
    pub fn write(&self, out: &mut Vec<u8>, live: LiveFields, distance_km: Option<f64>) {
        let available = live
            .quantity
            .saturating_sub(live.held.saturating_add(live.sold));
        out.extend_from_slice(self.head.as_bytes());
        out.extend_from_slice(b",\"quantity\":");
        write_integer(out, live.quantity);
        out.extend_from_slice(b",\"available\":");
        write_integer(out, available);
        out.extend_from_slice(b",\"held\":");
        write_integer(out, live.held);
        out.extend_from_slice(b",\"sold\":");
        write_integer(out, live.sold);
        out.extend_from_slice(b",\"sold_total\":");
        write_integer(out, live.sold_total);
        out.extend_from_slice(b",\"status\":\"");
        out.extend_from_slice(status_name(live.status).as_bytes());
        out.extend_from_slice(b"\",\"occurrence\":");
        self.write_occurrence(out, live.occurrence);
        out.push(b',');
        out.extend_from_slice(self.tail.as_bytes());
        if let Some(distance_km) = distance_km {
            out.extend_from_slice(b",\"distance_km\":");
            write_float(out, distance_km);
        }
        out.push(b'}');
    }
}

impl PromoJson {
    /// The occurrence as serde writes it: the rendered one when it is still
    /// current, else serialized now (two timestamps cannot fail to).
    fn write_occurrence(&self, out: &mut Vec<u8>, occurrence: Option<Occurrence>) {
        match (&self.occurrence, occurrence) {
            (_, None) => out.extend_from_slice(b"null"),
            (Some((rendered, json)), Some(live)) if *rendered == live => {
                out.extend_from_slice(json.as_bytes())
            }
            (_, Some(live)) => {
                if serde_json::to_writer(&mut *out, &live).is_err() {
                    out.extend_from_slice(b"null");
                }
            }
        }
    }
}

/// `text` without `front` bytes at the start and `back` at the end (the
/// braces of a serialized object; both are ASCII, so the cut is on a char
/// boundary).
fn strip(text: &str, front: usize, back: usize) -> &str {
    text.get(front..text.len().saturating_sub(back))
        .unwrap_or_default()
}

fn write_integer(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// As serde_json writes an `f64`: shortest round-trip digits, `null` when
/// not finite.
fn write_float(out: &mut Vec<u8>, value: f64) {
    if value.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(value).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// The `snake_case` name serde gives each status.
fn status_name(status: PromoStatus) -> &'static str {
    match status {
        PromoStatus::Inactive => "inactive",
        PromoStatus::Scheduled => "scheduled",
        PromoStatus::Running => "running",
        PromoStatus::SoldOut => "sold_out",
        PromoStatus::Ended => "ended",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::entities::Store;
    use chrono::TimeZone;
    use serde_json::Value;

    fn promo() -> FlashPromo {
        let at = |hour| Utc.with_ymd_and_hms(2026, 12, 1, hour, 0, 0).unwrap();
        FlashPromo {
            id: 7,
            product: Product {
                id: 3,
                name: "Audífonos \"XYZ\"".to_owned(),
                regular_price: Money::parse("999.00").unwrap(),
                store: Store {
                    id: 2,
                    name: "TechShop".to_owned(),
                    latitude: 19.4326,
                    longitude: -99.1332,
                },
            },
            promo_price: Money::parse("499.50").unwrap(),
            start_time: at(10),
            end_time: at(12),
            segments: vec![Segment {
                id: 1,
                name: "New users".to_owned(),
                description: "Joined this month".to_owned(),
            }],
            max_distance_km: 2.0,
            is_active: true,
            daily_window: None,
            quantity: 0,
            available: 0,
            held: 0,
            sold: 0,
            sold_total: 0,
            held_any: 0,
            status: PromoStatus::Scheduled,
            occurrence: None,
            created_at: at(2),
            updated_at: at(3),
        }
    }

    #[test]
    fn the_written_promo_is_byte_for_byte_what_serde_writes() {
        let json = PromoJson::of(&promo()).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 11, 0, 0).unwrap();
        for (held, sold) in [(0, 0), (2, 3), (0, 10)] {
            let mut live = promo();
            live.quantity = 10;
            let live = live.with_counts(held, sold, now);
            let mut written = Vec::new();
            json.write(&mut written, LiveFields::of(&live), None);
            assert_eq!(
                String::from_utf8(written).unwrap(),
                serde_json::to_string(&live).unwrap()
            );
        }
    }

    #[test]
    fn a_daily_promo_is_written_as_serde_writes_it_as_its_occurrences_pass() {
        let rendered_at = Utc.with_ymd_and_hms(2026, 12, 1, 11, 0, 0).unwrap();
        let mut daily = promo();
        daily.end_time = daily.start_time + chrono::Duration::days(2);
        daily.daily_window = Some(DailyWindow::parse("10:30", "24:00", "Europe/Berlin").unwrap());
        daily.quantity = 4;
        let json = PromoJson::of(&daily.clone().with_counts(0, 0, rendered_at)).unwrap();
        for hours_later in [0, 1, 13, 30, 60] {
            let now = rendered_at + chrono::Duration::hours(hours_later);
            let live = daily.clone().with_counts(1, 2, now).with_sold_total(9);
            let mut written = Vec::new();
            json.write(&mut written, LiveFields::of(&live), None);
            assert_eq!(
                String::from_utf8(written).unwrap(),
                serde_json::to_string(&live).unwrap(),
                "{hours_later} hours later"
            );
        }
    }

    #[test]
    fn every_status_is_named_as_serde_names_it() {
        for status in [
            PromoStatus::Inactive,
            PromoStatus::Scheduled,
            PromoStatus::Running,
            PromoStatus::SoldOut,
            PromoStatus::Ended,
        ] {
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                Value::from(status_name(status))
            );
        }
    }

    #[test]
    fn a_distance_is_appended_as_the_last_field() {
        let json = PromoJson::of(&promo()).unwrap();
        let mut written = Vec::new();
        let live = LiveFields::of(&promo());
        json.write(&mut written, live, Some(0.123_456_789));
        let value: Value = serde_json::from_slice(&written).unwrap();
        let mut expected = serde_json::to_value(promo()).unwrap();
        expected["distance_km"] = Value::from(0.123_456_789);
        assert_eq!(value, expected);
        assert!(String::from_utf8(written)
            .unwrap()
            .ends_with(r#","distance_km":0.123456789}"#));
    }
}
