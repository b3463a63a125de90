//! A shopper's place in the engine: where they are, which running promos
//! their sessions watch, the geofence notification when they move into a
//! promo's radius, and what a session missed while it was away.
//!
//! The in-memory audience is updated before the caller is answered, so
//! eligibility follows a new location or segment at once, and with it the
//! promos whose stock frames the shopper's sessions get. In cluster mode the
//! other instances are told ([`ClusterEvent::ShopperChanged`]) and follow
//! with [`Engine::follow_shopper`]; the geofence notification stays with the
//! instance that took the move.

use chrono::{DateTime, Utc};

use super::{Engine, EngineError};
use crate::actors::audience::{PutMember, RemoveMember};
use crate::actors::notifier::NotifyMember;
use crate::actors::session_hub::SetWatches;
use crate::cluster::events::ClusterEvent;
use crate::db::{self, JsonListing, Listing, PageWindow};
use crate::domain::eligibility::{check_eligibility, AudienceMember};
use crate::domain::entities::ClientProfile;
use crate::domain::frames::ServerFrame;
use crate::domain::promo::FlashPromo;
use crate::domain::GeoPoint;
use crate::telemetry::prometheus;

/// Every item: for reads whose whole answer is used.
const EVERY: PageWindow = PageWindow {
    limit: i64::MAX,
    offset: 0,
};

impl Engine {
    /// Moves the shopper `current` (REST `PATCH me/`): the row, the audience,
    /// the watches, and a geofence notification if they entered a running
    /// promo's radius — all before the caller is answered.
    pub async fn relocate(
        &self,
        current: &ClientProfile,
        location: Option<GeoPoint>,
    ) -> Result<ClientProfile, EngineError> {
        let profile = db::clients::update_location_of_user(&self.pool, current.user.id, location)
            .await?
            .ok_or(EngineError::NotFound)?;
        let eligible = self.publish_member(&profile).await?;
        self.notify_on_entry(current, &profile, &eligible);
        Ok(profile)
    }

    /// Moves the shopper `user_id` (a WebSocket `location` frame).
    pub async fn relocate_user(
        &self,
        user_id: i64,
        location: GeoPoint,
    ) -> Result<ClientProfile, EngineError> {
        let current = db::clients::find_profile_of_user(&self.pool, user_id)
            .await?
            .ok_or(EngineError::NotFound)?;
        self.relocate(&current, Some(location)).await
    }

    /// Makes a created or changed profile count at once: the audience and
    /// the watches. Returns the running promos the shopper may now reserve,
    /// nearest first.
    pub async fn publish_member(
        &self,
        profile: &ClientProfile,
    ) -> Result<Vec<(FlashPromo, f64)>, EngineError> {
        let member = AudienceMember::from(profile);
        self.tell_cluster(ClusterEvent::ShopperChanged {
            user_id: member.user_id,
            location: member
                .location
                .map(|point| (point.latitude.degrees(), point.longitude.degrees())),
            segment_ids: member.segment_ids.clone(),
        });
        self.put_member(member).await
    }

    /// Forgets a deleted shopper.
    pub async fn forget_member(&self, user_id: i64) -> Result<(), EngineError> {
        self.tell_cluster(ClusterEvent::ShopperRemoved { user_id });
        prometheus::awaiting("audience", self.audience.send(RemoveMember { user_id }))
            .await
            .map_err(EngineError::mailbox("audience index"))
    }

    /// Another instance changed a shopper: the audience takes what it
    /// published (queued in arrival order, before this returns) and their
    /// sessions here watch what they may now reserve.
    pub fn follow_member(&self, member: AudienceMember) {
        let eligible = self.eligible_for(&member, EVERY).items;
        let user_id = member.user_id;
        self.audience.do_send(PutMember { member });
        self.watch(user_id, &eligible);
    }

    /// Another instance deleted shopper `user_id`, or changed them in a way
    /// only PostgreSQL knows: reads them again into the audience, and
    /// refreshes what their sessions here watch.
    pub async fn follow_shopper(&self, user_id: i64) -> Result<(), EngineError> {
        let Some(member) = db::clients::find_audience_member(&self.pool, user_id).await? else {
            self.hub.do_send(SetWatches {
                user_id,
                promo_ids: Vec::new(),
            });
            return prometheus::awaiting("audience", self.audience.send(RemoveMember { user_id }))
                .await
                .map_err(EngineError::mailbox("audience index"));
        };
        self.put_member(member).await?;
        Ok(())
    }

    /// Puts a member into the audience and refreshes what their sessions
    /// here watch; answers the running promos they may now reserve.
    async fn put_member(
        &self,
        member: AudienceMember,
    ) -> Result<Vec<(FlashPromo, f64)>, EngineError> {
        let user_id = member.user_id;
        prometheus::awaiting(
            "audience",
            self.audience.send(PutMember {
                member: member.clone(),
            }),
        )
        .await
        .map_err(EngineError::mailbox("audience index"))?;
        let eligible = self.eligible_for(&member, EVERY).items;
        self.watch(user_id, &eligible);
        Ok(eligible)
    }

    /// Tells the session hub which running promos the user is eligible for
    /// now (a WebSocket session does this as it opens).
    pub async fn refresh_watches(&self, user_id: i64) -> Result<(), EngineError> {
        let eligible = self.eligible(user_id, EVERY).await?.items;
        self.watch(user_id, &eligible);
        Ok(())
    }

    /// The running promos `user_id` may reserve, nearest first, with their
    /// distance in km; empty while their location is unknown.
    pub async fn eligible(
        &self,
        user_id: i64,
        window: PageWindow,
    ) -> Result<Listing<(FlashPromo, f64)>, EngineError> {
        match self.members.get(user_id) {
            Some(member) => Ok(self.eligible_for(&member, window)),
            None => Ok(Listing::empty()),
        }
    }

    /// One page of [`Engine::eligible`] as JSON, each item with its
    /// `distance_km` (the `eligible/` body).
    pub fn eligible_json(&self, user_id: i64, window: PageWindow) -> JsonListing {
        match self.members.get(user_id) {
            Some(member) if member.location.is_some() => {
                self.live_promos.eligible_json(&member, Utc::now(), window)
            }
            _ => JsonListing {
                total: 0,
                results: Vec::new(),
            },
        }
    }

    fn eligible_for(
        &self,
        member: &AudienceMember,
        window: PageWindow,
    ) -> Listing<(FlashPromo, f64)> {
        if member.location.is_none() {
            return Listing::empty();
        }
        self.live_promos.eligible(member, Utc::now(), window)
    }

    fn watch(&self, user_id: i64, eligible: &[(FlashPromo, f64)]) {
        let promo_ids = eligible.iter().map(|(promo, _)| promo.id).collect();
        self.hub.do_send(SetWatches { user_id, promo_ids });
    }

    /// Geofence: when a move brings the shopper inside the radius of running
    /// promos they may reserve, they are told of the nearest one as on a
    /// start, still at most once a day (the notifier's daily claim decides).
    fn notify_on_entry(
        &self,
        before: &ClientProfile,
        after: &ClientProfile,
        eligible_now: &[(FlashPromo, f64)],
    ) {
        let was = AudienceMember::from(before);
        let entered = eligible_now
            .iter()
            .find(|(promo, _)| check_eligibility(promo, &was).is_err());
        if let Some((promo, distance_km)) = entered {
            self.notifier.do_send(NotifyMember {
                user_id: after.user.id,
                promo_id: promo.id,
                distance_km: *distance_km,
                until: promo
                    .occurrence
                    .map_or(promo.end_time, |occurrence| occurrence.end),
            });
        }
    }

    /// The undelivered notifications of still-running promos, as frames,
    /// taken (marked delivered) before they are returned: never sent twice.
    pub async fn take_missed_notifications(
        &self,
        user_id: i64,
    ) -> Result<Vec<ServerFrame>, EngineError> {
        let running = self.live_promos.running(Utc::now(), EVERY);
        // A daily promo's notification is of one occurrence: the current one's.
        let promos: Vec<(i64, Option<DateTime<Utc>>)> = running
            .items
            .iter()
            .map(|promo| {
                let since = promo.daily_window.and(promo.occurrence);
                (promo.id, since.map(|occurrence| occurrence.start))
            })
            .collect();
        let records = db::notifications::take_undelivered(&self.pool, user_id, &promos).await?;
        let frames = records
            .into_iter()
            .filter_map(|record| {
                let promo = running
                    .items
                    .iter()
                    .find(|promo| promo.id == record.promo_id)?
                    .clone();
                Some(ServerFrame::PromoNotification {
                    notification_id: record.id,
                    promo,
                    distance_km: record.distance_km,
                })
            })
            .collect();
        Ok(frames)
    }
}
