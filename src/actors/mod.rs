//! The realtime engine's actors.
//!
//! - [`promo_registry::PromoRegistry`] — knows every live promo, starts and
//!   stops one [`promo::PromoActor`] per running promo, and publishes the
//!   snapshot ([`promo_registry::LivePromos`]) that `running/`, `eligible/`
//!   and reservation routing read without a mailbox hop.
//! - [`promo::PromoActor`] — the single writer of one promo's stock, holds and
//!   hold timers.
//! - [`audience::AudienceIndex`] — every shopper's location and segments,
//!   published as [`audience::Members`].
//! - [`notifier::Notifier`] — tells a promo's audience it started, once a day each.
//! - [`session_hub::SessionHub`] — the open WebSocket sessions, by user.
//! - [`ws_session::WsSession`] — one WebSocket connection.
//! - [`campaign_registry::CampaignRegistry`] — starts and stops one
//!   [`campaign::CampaignActor`] per open raffle campaign and routes entries.
//! - [`campaign::CampaignActor`] — the entered addresses of one open campaign,
//!   its group-committed entries and live counts.
//! - [`mailer::Mailer`] — delivers the durable email outbox.

pub mod audience;
pub mod campaign;
pub mod campaign_registry;
pub mod mailer;
pub mod notifier;
pub mod promo;
pub mod promo_registry;
pub mod session_hub;
pub mod ws_session;

use actix::Addr;

/// The addresses of the long-lived actors, shared by every HTTP worker.
#[derive(Clone)]
pub struct Engine {
    pub registry: Addr<promo_registry::PromoRegistry>,
    /// What the registry publishes: read directly, no mailbox hop.
    pub live_promos: promo_registry::LivePromos,
    pub audience: Addr<audience::AudienceIndex>,
    /// What the audience index publishes: read directly, no mailbox hop.
    pub members: audience::Members,
    pub notifier: Addr<notifier::Notifier>,
    pub hub: Addr<session_hub::SessionHub>,
    pub campaigns: Addr<campaign_registry::CampaignRegistry>,
    pub mailer: Addr<mailer::Mailer>,
}
