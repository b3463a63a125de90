//! The events instances tell each other, as they travel on the events
//! subject (JSON, one per message, tagged by `type`).
//!
//! An event says what changed, never more than a reader needs to act on
//! it; when the change is bulky or must be read consistently, the event
//! names it and the receiver reads PostgreSQL. Every event is also healed by
//! the periodic resyncs, so a lost one delays a change but never loses it.

use serde::{Deserialize, Serialize};

/// An event as published: who sent it, and what it says.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    /// The sending instance (receivers skip their own events).
    pub from: String,
    pub event: ClusterEvent,
}

/// One thing every other instance should hear of.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClusterEvent {
    /// A promo's owner committed a change of its stock.
    PromoStock {
        promo_id: i64,
        quantity: u32,
        held: u32,
        sold: u32,
        sold_total: u32,
    },
    /// A promo was created or its terms changed: read it again.
    PromoChanged { promo_id: i64 },
    /// A promo was deleted.
    PromoRemoved { promo_id: i64 },
    /// A store or a product changed (which changes live promos' terms):
    /// reload the live promos.
    CatalogueChanged,
    /// Notifications of one promo for users' sessions, wherever they are
    /// connected: the receiver builds each frame from `promo_json` (sent
    /// once, not once per shopper) and marks delivered the ones it pushed.
    Notifications {
        promo_json: String,
        notices: Vec<Notice>,
    },
    /// One frame for every session of one user; the `origin` session (on
    /// `origin.instance`) gets `origin.frame` instead.
    UserFrame {
        user_id: i64,
        frame: String,
        origin: Option<RemoteOrigin>,
    },
    /// Users eligible for a promo that just started now watch it.
    Watchers { promo_id: i64, user_ids: Vec<i64> },
    /// A frame for every admin session (`raffle.stats`).
    AdminFrame { frame: String },
    /// A shopper's location, profile or segments changed: what the
    /// audience now holds of them (applied in the order published, with no
    /// database read, so the last move wins everywhere).
    ShopperChanged {
        user_id: i64,
        /// `(latitude, longitude)`, or `None` when the location is unknown.
        location: Option<(f64, f64)>,
        segment_ids: Vec<i64>,
    },
    /// A shopper was deleted.
    ShopperRemoved { user_id: i64 },
    /// An account's password, tokens or role changed, or it was deleted:
    /// forget every credential of it that was verified before.
    CredentialsChanged { user_id: i64 },
    /// A raffle campaign was created or edited: read it again.
    CampaignChanged { campaign_id: i64 },
    /// An address was confirmed: a campaign's counts after it.
    CampaignCounts {
        campaign_id: i64,
        subscriber_count: i64,
        verified_count: i64,
    },
    /// A raffle campaign was finished, cancelled or deleted.
    CampaignClosed { campaign_id: i64 },
}

/// One notification of [`ClusterEvent::Notifications`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Notice {
    /// The notification's id (marked delivered by whoever pushes it).
    pub id: i64,
    pub user_id: i64,
    pub distance_km: f64,
}

/// The WebSocket request a frame answers, on whichever instance it came in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteOrigin {
    pub instance: String,
    pub session_id: u64,
    pub frame: String,
}
