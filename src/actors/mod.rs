//! The realtime engine's actors.
//!
//! - [`promo_registry::PromoRegistry`] — knows every live promo, starts and
//!   stops one [`promo::PromoActor`] per running promo, routes reservation
//!   messages and answers `running/` and `eligible/` from memory.
//! - [`promo::PromoActor`] — the single writer of one promo's stock, holds and
//!   hold timers.
//! - [`audience::AudienceIndex`] — every shopper's location and segments.
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
