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
//! - [`sessions::Sessions`] — not an actor: the way to users' sessions on
//!   this instance and, in cluster mode, on the others.
//! - [`ws_session::WsSession`] — one WebSocket connection.
//! - [`campaign_registry::CampaignRegistry`] — starts and stops one
//!   [`campaign::CampaignActor`] per open raffle campaign and routes entries.
//! - [`campaign::CampaignActor`] — the entered addresses of one open campaign,
//!   its group-committed entries and live counts.
//! - [`mailer::Mailer`] — delivers the durable email outbox.

pub mod audience;
pub mod campaign;
pub mod campaign_registry;
pub mod lease_keeper;
pub mod mailer;
pub mod notifier;
pub mod promo;
pub mod promo_registry;
pub mod session_hub;
pub mod sessions;
pub mod ws_session;
