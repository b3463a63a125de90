//! `Notifier`: tells shoppers about flash promos, at most once a day each.
//!
//! When a promo starts running ([`AnnounceStart`], from the registry), the
//! Notifier asks the [`AudienceIndex`] for the clients of its segments within
//! its radius, claims each one's daily slot in PostgreSQL in large batches (the
//! unique (user, day) row is the claim: the database, not a cache, enforces
//! "once a day", also with several instances), and only then tells the winners.
//! A promo's start is marked announced after its audience was processed, so a
//! crash part-way re-runs it on the next boot and the daily claims absorb the
//! repeats. A shopper who moves into a running promo's radius is told the same
//! way ([`NotifyMember`]).
//!
//! Sent by: the PromoRegistry (starts; again on each resync while a promo runs
//! unannounced, and when a sold-out promo runs again) and the HTTP layer
//! (geofence entries).

use actix::prelude::*;
use chrono::Utc;
use chrono_tz::Tz;

use std::sync::Arc;

use super::audience::{AudienceIndex, FindWithinRadius};
use super::session_hub::{AddWatchers, PushToUsers, SessionHub};
use crate::db::notifications::ClaimedNotification;
use crate::db::{self, DbError, DbPool};
use crate::domain::eligibility::store_location;
use crate::domain::promo::FlashPromo;

/// Candidates claimed per statement: small enough that the first sessions are
/// told while later batches are still being claimed.
const CLAIM_BATCH: usize = 1_000;

/// The notifier.
pub struct Notifier {
    pool: DbPool,
    audience: Addr<AudienceIndex>,
    hub: Addr<SessionHub>,
    timezone: Tz,
}

impl Notifier {
    /// A notifier that counts days in `timezone`.
    pub fn new(
        pool: DbPool,
        audience: Addr<AudienceIndex>,
        hub: Addr<SessionHub>,
        timezone: Tz,
    ) -> Notifier {
        Notifier {
            pool,
            audience,
            hub,
            timezone,
        }
    }

    fn today(&self) -> chrono::NaiveDate {
        Utc::now().with_timezone(&self.timezone).date_naive()
    }
}

impl Actor for Notifier {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(16_384);
    }
}

/// A promo started running: tell its audience (unless already told).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AnnounceStart {
    pub promo: FlashPromo,
}

/// A shopper entered the radius of a running promo they may reserve.
#[derive(Message)]
#[rtype(result = "()")]
pub struct NotifyMember {
    pub user_id: i64,
    pub promo_id: i64,
    pub distance_km: f64,
}

impl Handler<AnnounceStart> for Notifier {
    type Result = ();

    fn handle(&mut self, message: AnnounceStart, ctx: &mut Self::Context) {
        let (pool, audience, day) = (self.pool.clone(), self.audience.clone(), self.today());
        let hub = self.hub.clone();
        let promo = message.promo;
        let announce = async move {
            if let Err(error) = announce_start(&pool, &audience, &hub, day, &promo).await {
                tracing::warn!(promo_id = promo.id, %error, "promo start announcement failed");
            }
        };
        ctx.spawn(announce.into_actor(self));
    }
}

impl Handler<NotifyMember> for Notifier {
    type Result = ();

    fn handle(&mut self, message: NotifyMember, ctx: &mut Self::Context) {
        let (pool, day, hub) = (self.pool.clone(), self.today(), self.hub.clone());
        let notify = async move {
            let told = async {
                let claimed = db::notifications::claim_daily_slots(
                    &pool,
                    message.promo_id,
                    day,
                    &[message.user_id],
                    &[message.distance_km],
                )
                .await?;
                if let Some(promo) = db::promos::find_promo(&pool, message.promo_id).await? {
                    deliver(&pool, &hub, &promo, &claimed).await?;
                }
                Ok::<_, DbError>(())
            };
            if let Err(error) = told.await {
                tracing::warn!(%error, "geofence notification failed");
            }
        };
        ctx.spawn(notify.into_actor(self));
    }
}

async fn announce_start(
    pool: &DbPool,
    audience: &Addr<AudienceIndex>,
    hub: &Addr<SessionHub>,
    day: chrono::NaiveDate,
    promo: &FlashPromo,
) -> Result<(), DbError> {
    let Some(center) = store_location(promo) else {
        return Ok(());
    };
    let candidates = audience
        .send(FindWithinRadius {
            center,
            radius_km: promo.max_distance_km,
            segment_ids: promo.segment_ids().collect(),
        })
        .await
        .map_err(|error| DbError::Unavailable(error.to_string()))?;
    // Connected eligible shoppers watch its stock, whether or not they are told now.
    hub.do_send(AddWatchers {
        promo_id: promo.id,
        user_ids: candidates.iter().map(|(user_id, _)| *user_id).collect(),
    });
    if db::notifications::is_announced(pool, promo.id).await? {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let mut told = 0;
    for chunk in candidates.chunks(CLAIM_BATCH) {
        let user_ids: Vec<i64> = chunk.iter().map(|(user_id, _)| *user_id).collect();
        let distances: Vec<f64> = chunk.iter().map(|(_, distance)| *distance).collect();
        let claimed =
            db::notifications::claim_daily_slots(pool, promo.id, day, &user_ids, &distances)
                .await?;
        told += claimed.len();
        deliver(pool, hub, promo, &claimed).await?;
    }
    db::notifications::mark_promo_announced(pool, promo.id).await?;
    tracing::info!(
        promo_id = promo.id,
        candidates = candidates.len(),
        told,
        elapsed = ?started.elapsed(),
        "promo start announced"
    );
    Ok(())
}

/// Pushes claimed notifications to their users' open sessions and marks the
/// ones that reached a session as delivered. Offline users find them in their
/// inbox, and get them pushed when they next connect.
pub async fn deliver(
    pool: &DbPool,
    hub: &Addr<SessionHub>,
    promo: &FlashPromo,
    claimed: &[ClaimedNotification],
) -> Result<(), DbError> {
    if claimed.is_empty() {
        return Ok(());
    }
    // The promo is the bulk of each frame: serialize it once, not per shopper.
    let promo_json =
        serde_json::to_string(promo).map_err(|error| DbError::Corrupt(error.to_string()))?;
    let frames = claimed
        .iter()
        .map(|notification| {
            let frame = notification_frame(notification.id, &promo_json, notification.distance_km);
            (notification.id, notification.user_id, Arc::from(frame))
        })
        .collect();
    let delivered = hub
        .send(PushToUsers { frames })
        .await
        .map_err(|error| DbError::Unavailable(error.to_string()))?;
    if !delivered.is_empty() {
        // A missing mark only means a later session gets the notification again.
        if let Err(error) = db::notifications::mark_delivered(pool, &delivered).await {
            tracing::warn!(%error, "could not mark notifications delivered");
        }
    }
    Ok(())
}

/// The text of a `promo.notification` frame around an already serialized promo
/// (the same JSON as `ServerFrame::PromoNotification`).
fn notification_frame(notification_id: i64, promo_json: &str, distance_km: f64) -> String {
    let distance = serde_json::Number::from_f64(distance_km)
        .map_or("null".to_owned(), |number| number.to_string());
    format!(
        r#"{{"type":"promo.notification","notification_id":{notification_id},"promo":{promo_json},"distance_km":{distance}}}"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::entities::{Product, Store};
    use crate::domain::frames::ServerFrame;
    use crate::domain::promo::PromoStatus;
    use crate::domain::Money;

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
            quantity: 1,
            available: 1,
            held: 0,
            sold: 0,
            status: PromoStatus::Running,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        let spliced = notification_frame(9, &serde_json::to_string(&promo).unwrap(), 0.25);
        let serialized = ServerFrame::PromoNotification {
            notification_id: 9,
            promo,
            distance_km: 0.25,
        }
        .to_text();
        let parsed = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
        assert_eq!(parsed(&spliced), parsed(&serialized));
    }
}
