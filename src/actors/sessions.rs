//! `Sessions`: the way to users' WebSocket sessions wherever they are
//! connected — this instance's [`SessionHub`] and, in cluster mode, every
//! other instance's through the cluster's events.
//!
//! Notifications, `reservation.*` frames, the watchers of a starting promo
//! and `raffle.stats` go through here rather than straight to the hub: each
//! is handed to the local hub as before and, with a [`Cluster`], also
//! published for the other instances, whose listeners give it to their own
//! hubs (and never publish it again). With one instance it is the local hub
//! and nothing more, at no extra cost.
//!
//! What only concerns the local hub (connects, watches of a session, stock
//! and end frames, which each instance's registry sends for itself) goes to
//! [`Sessions::local`].

use std::sync::Arc;

use actix::{Addr, MailboxError};

use super::session_hub::{AddWatchers, Origin, PushToAdmins, PushToUser, PushToUsers, SessionHub};
use crate::cluster::events::{ClusterEvent, Notice, RemoteOrigin};
use crate::cluster::Cluster;
use crate::db::notifications::ClaimedNotification;
use crate::domain::frames::notification_text;

/// Items per published event at most, so one event stays far below NATS's
/// message size limit (1 MB by default) whatever the audience.
const ITEMS_PER_EVENT: usize = 2_000;

/// The local hub and, in cluster mode, the other instances; cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    hub: Addr<SessionHub>,
    cluster: Option<Cluster>,
}

impl Sessions {
    /// Sessions of this instance, and of the others when `cluster` is set.
    pub fn new(hub: Addr<SessionHub>, cluster: Option<Cluster>) -> Sessions {
        Sessions { hub, cluster }
    }

    /// This instance's hub only.
    pub fn local(&self) -> &Addr<SessionHub> {
        &self.hub
    }

    /// Pushes claimed notifications of one promo (serialised once as
    /// `promo_json`); answers the ids of those that reached a session here.
    /// Other instances mark delivered the ones they push.
    pub async fn notify(
        &self,
        promo_json: &str,
        claimed: &[ClaimedNotification],
    ) -> Result<Vec<i64>, MailboxError> {
        if let Some(cluster) = &self.cluster {
            publish_notifications(cluster, promo_json, claimed);
        }
        let frames = claimed
            .iter()
            .map(|notification| {
                let frame =
                    notification_text(notification.id, promo_json, notification.distance_km);
                (notification.id, notification.user_id, Arc::from(frame))
            })
            .collect();
        self.hub.send(PushToUsers { frames }).await
    }

    /// A frame for every session of `user_id`; the `origin` session, on
    /// whichever instance it is, gets the origin's frame instead.
    pub fn push_to_user(&self, user_id: i64, frame: Arc<str>, origin: Option<Origin>) {
        if let Some(cluster) = &self.cluster {
            let origin = origin.as_ref().map(|origin| RemoteOrigin {
                instance: origin
                    .instance
                    .as_deref()
                    .unwrap_or(cluster.instance_id().as_ref())
                    .to_owned(),
                session_id: origin.session_id,
                frame: origin.frame.to_string(),
            });
            cluster.publish(ClusterEvent::UserFrame {
                user_id,
                frame: frame.to_string(),
                origin,
            });
        }
        self.hub.do_send(PushToUser {
            user_id,
            frame,
            origin,
        });
    }

    /// Users eligible for a promo that just started watch it, on every instance.
    pub fn add_watchers(&self, promo_id: i64, user_ids: Vec<i64>) {
        if let Some(cluster) = &self.cluster {
            for chunk in user_ids.chunks(ITEMS_PER_EVENT) {
                cluster.publish(ClusterEvent::Watchers {
                    promo_id,
                    user_ids: chunk.to_vec(),
                });
            }
        }
        self.hub.do_send(AddWatchers { promo_id, user_ids });
    }

    /// A frame for every admin session, on every instance.
    pub fn push_to_admins(&self, frame: Arc<str>) {
        if let Some(cluster) = &self.cluster {
            cluster.publish(ClusterEvent::AdminFrame {
                frame: frame.to_string(),
            });
        }
        self.hub.do_send(PushToAdmins { frame });
    }
}

/// Tells the other instances of claimed notifications, in events of at most
/// [`ITEMS_PER_EVENT`].
fn publish_notifications(cluster: &Cluster, promo_json: &str, claimed: &[ClaimedNotification]) {
    for chunk in claimed.chunks(ITEMS_PER_EVENT) {
        let notices = chunk
            .iter()
            .map(|notification| Notice {
                id: notification.id,
                user_id: notification.user_id,
                distance_km: notification.distance_km,
            })
            .collect();
        cluster.publish(ClusterEvent::Notifications {
            promo_json: promo_json.to_owned(),
            notices,
        });
    }
}

/// The local hub's frames for notifications another instance published.
pub fn notification_frames(promo_json: &str, notices: &[Notice]) -> Vec<(i64, i64, Arc<str>)> {
    notices
        .iter()
        .map(|notice| {
            let frame = notification_text(notice.id, promo_json, notice.distance_km);
            (notice.id, notice.user_id, Arc::from(frame))
        })
        .collect()
}

/// The origin of a frame another instance published, as the local hub takes
/// it: `instance: None` when the session is on this instance (`me`).
pub fn local_origin(origin: RemoteOrigin, me: &str) -> Origin {
    Origin {
        session_id: origin.session_id,
        frame: Arc::from(origin.frame),
        instance: (origin.instance != me).then(|| Arc::from(origin.instance)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(instance: &str) -> RemoteOrigin {
        RemoteOrigin {
            instance: instance.to_owned(),
            session_id: 7,
            frame: "with request id".to_owned(),
        }
    }

    #[test]
    fn an_origin_on_this_instance_becomes_local_and_any_other_stays_remote() {
        assert!(local_origin(remote("a"), "a").instance.is_none());
        assert_eq!(
            local_origin(remote("b"), "a").instance.as_deref(),
            Some("b")
        );
    }

    #[test]
    fn remote_notifications_become_the_same_frames_as_local_ones() {
        let notices = [Notice {
            id: 3,
            user_id: 9,
            distance_km: 1.5,
        }];
        let frames = notification_frames("{}", &notices);
        assert_eq!(frames.len(), 1);
        assert_eq!((frames[0].0, frames[0].1), (3, 9));
        assert_eq!(&*frames[0].2, notification_text(3, "{}", 1.5));
    }
}
