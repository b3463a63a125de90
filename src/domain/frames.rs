//! The WebSocket protocol of API.md: one JSON object per text frame, each
//! with a `type`. Client frames parse through [`ClientFrame`]; the server
//! sends [`ServerFrame`]s.
//!
//! A promo start tells thousands of shoppers about the same promo, so
//! [`notification_text`] splices the per-shopper fields around a promo
//! serialized once ([`promo_json`]) instead of serializing it per shopper;
//! a unit test keeps the two spellings the same JSON.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::promo::{FlashPromo, PromoStatus};
use super::reservation::Reservation;

/// What a client may send.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum ClientFrame {
    /// The shopper's live location (same as `PATCH clients-profiles/me/`).
    #[serde(rename = "location")]
    Location { latitude: f64, longitude: f64 },
    /// A reservation (same rules as the REST call).
    #[serde(rename = "reserve")]
    Reserve { promo_id: i64, request_id: Value },
    /// Are you there?
    #[serde(rename = "ping")]
    Ping {
        #[serde(default)]
        request_id: Option<Value>,
    },
}

/// Why a promo stopped running, for `promo.ended`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    SoldOut,
    Ended,
    Deleted,
    Deactivated,
}

/// What the server sends.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type")]
pub enum ServerFrame {
    #[serde(rename = "hello")]
    Hello {
        user_id: i64,
        server_time: DateTime<Utc>,
    },
    #[serde(rename = "promo.notification")]
    PromoNotification {
        notification_id: i64,
        promo: FlashPromo,
        distance_km: f64,
    },
    #[serde(rename = "promo.stock")]
    PromoStock {
        promo_id: i64,
        available: u32,
        held: u32,
        sold: u32,
        status: PromoStatus,
    },
    #[serde(rename = "promo.ended")]
    PromoEnded { promo_id: i64, reason: EndReason },
    #[serde(rename = "reservation.held")]
    ReservationHeld {
        reservation: Reservation,
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<Value>,
    },
    #[serde(rename = "reservation.expired")]
    ReservationExpired { reservation: Reservation },
    #[serde(rename = "reservation.completed")]
    ReservationCompleted { reservation: Reservation },
    #[serde(rename = "reservation.cancelled")]
    ReservationCancelled { reservation: Reservation },
    #[serde(rename = "raffle.stats")]
    RaffleStats {
        campaign_id: i64,
        subscriber_count: i64,
        verified_count: i64,
    },
    #[serde(rename = "error")]
    Error {
        code: String,
        detail: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<Value>,
    },
    #[serde(rename = "pong")]
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<Value>,
    },
}

/// Every server frame `type`, for metrics labels.
const SERVER_FRAME_TYPES: [&str; 11] = [
    "hello",
    "promo.notification",
    "promo.stock",
    "promo.ended",
    "reservation.held",
    "reservation.expired",
    "reservation.completed",
    "reservation.cancelled",
    "raffle.stats",
    "error",
    "pong",
];

/// The `type` of a server frame already turned into text, as a `'static`
/// label: serde writes an internally tagged enum's tag first, so this reads
/// a prefix and parses nothing. Anything else is `"unknown"`.
pub fn frame_type_of(text: &str) -> &'static str {
    let named = text
        .strip_prefix(r#"{"type":""#)
        .and_then(|rest| rest.split('"').next());
    named
        .and_then(|name| SERVER_FRAME_TYPES.into_iter().find(|known| *known == name))
        .unwrap_or("unknown")
}

impl ServerFrame {
    /// The frame as JSON text.
    pub fn to_text(&self) -> String {
        // Serializing these plain structs cannot fail; an empty object is the
        // harmless answer if it ever did.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// A promo as the JSON object `promo.notification` frames carry.
pub fn promo_json(promo: &FlashPromo) -> Result<String, serde_json::Error> {
    serde_json::to_string(promo)
}

/// The text of a `promo.notification` frame around an already serialized
/// promo (see [`promo_json`]): the same JSON as
/// [`ServerFrame::PromoNotification`].
pub fn notification_text(notification_id: i64, promo_json: &str, distance_km: f64) -> String {
    // A distance is never NaN or infinite; `null` is what serde_json writes if it were.
    let distance = serde_json::Number::from_f64(distance_km)
        .map_or_else(|| "null".to_owned(), |number| number.to_string());
    format!(
        r#"{{"type":"promo.notification","notification_id":{notification_id},"promo":{promo_json},"distance_km":{distance}}}"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::entities::{Product, Store};
    use crate::domain::Money;
    use serde_json::json;

    #[test]
    fn client_frames_parse_by_type() {
        let frame: ClientFrame =
            serde_json::from_value(json!({"type": "location", "latitude": 1.5, "longitude": 2}))
                .unwrap();
        assert_eq!(
            frame,
            ClientFrame::Location {
                latitude: 1.5,
                longitude: 2.0
            }
        );
        let ping: ClientFrame = serde_json::from_value(json!({"type": "ping"})).unwrap();
        assert_eq!(ping, ClientFrame::Ping { request_id: None });
        assert!(serde_json::from_value::<ClientFrame>(json!({"type": "dance"})).is_err());
        assert!(
            serde_json::from_value::<ClientFrame>(json!({"type": "ping", "extra": 1})).is_err()
        );
    }

    #[test]
    fn frame_types_are_read_from_the_text() {
        let pong = ServerFrame::Pong { request_id: None }.to_text();
        assert_eq!(frame_type_of(&pong), "pong");
        let stock = ServerFrame::PromoStock {
            promo_id: 1,
            available: 1,
            held: 0,
            sold: 0,
            status: PromoStatus::Running,
        };
        assert_eq!(frame_type_of(&stock.to_text()), "promo.stock");
        assert_eq!(
            frame_type_of(&notification_text(1, "{}", 1.0)),
            "promo.notification"
        );
        assert_eq!(frame_type_of(r#"{"type":"dance"}"#), "unknown");
        assert_eq!(frame_type_of("nonsense"), "unknown");
    }

    #[test]
    fn server_frames_carry_their_type() {
        let text = ServerFrame::Pong {
            request_id: Some(json!("r1")),
        }
        .to_text();
        assert_eq!(text, r#"{"type":"pong","request_id":"r1"}"#);
        let text = ServerFrame::Pong { request_id: None }.to_text();
        assert_eq!(text, r#"{"type":"pong"}"#);
    }

    #[test]
    fn the_spliced_notification_frame_matches_the_serialized_one() {
        let promo = FlashPromo {
            id: 5,
            product: Product {
                id: 7,
                name: "Audífonos \"XYZ\"".into(),
                store: Store {
                    id: 1,
                    name: "TechShop".into(),
                    latitude: 19.4326,
                    longitude: -99.1332,
                },
                regular_price: Money::parse("999").unwrap(),
            },
            promo_price: Money::parse("499").unwrap(),
            start_time: Utc::now(),
            end_time: Utc::now(),
            segments: Vec::new(),
            max_distance_km: 2.0,
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
        };
        let spliced = notification_text(9, &promo_json(&promo).unwrap(), 0.25);
        let serialized = ServerFrame::PromoNotification {
            notification_id: 9,
            promo,
            distance_km: 0.25,
        }
        .to_text();
        let parsed = |text: &str| serde_json::from_str::<Value>(text).unwrap();
        assert_eq!(parsed(&spliced), parsed(&serialized));
    }
}
