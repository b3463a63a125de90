//! `SessionHub`: which WebSocket sessions are open, by user, and which users
//! watch which running promos.
//!
//! Knows nothing of WebSockets: sessions register a [`Recipient`] of
//! [`Push`] (a ready JSON text frame) and the hub hands frames to every open
//! session of a user. A promo's watchers are the connected users eligible for
//! it (set when they connect or move, and when the promo starts); they get its
//! `promo.stock` and `promo.ended` frames without asking. Each session's
//! mailbox is bounded; a session whose mailbox is full is not keeping up and is
//! told to close rather than letting frames pile up without bound (what it
//! missed stays in the REST inbox).
//!
//! Memory per idle session matters at 10,000 sessions: a user's open
//! sessions are a short list (almost always one), a fraction of the size of
//! a small hash map.
//!
//! Admin sessions also get every running promo's `promo.stock` and
//! `promo.ended` frames, for the console's live table of running promos (an
//! admin is never a watcher: it has no location).
//!
//! Sent by: WsSession (connect, disconnect, watches), the Notifier
//! (notifications, watchers of a starting promo), the registry (stock, ends),
//! promo actors (reservation events), campaign actors (`raffle.stats`
//! for admin sessions).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use actix::prelude::*;

use crate::domain::frames::{EndReason, ServerFrame};

/// One text frame for a session to send as it is.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Push {
    pub frame: Arc<str>,
}

/// Tells a session it fell behind and must close.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Evict;

/// A session's addresses, as the hub keeps them.
#[derive(Clone)]
pub struct SessionLink {
    pub push: Recipient<Push>,
    pub evict: Recipient<Evict>,
}

/// The hub.
#[derive(Default)]
pub struct SessionHub {
    /// user → (session id, link) of each open session.
    sessions: HashMap<i64, Vec<(u64, SessionLink)>>,
    /// promo → the users watching it.
    watchers: HashMap<i64, HashSet<i64>>,
    /// user → the promos they watch.
    watching: HashMap<i64, HashSet<i64>>,
    /// Admins with at least one open session (they get `raffle.stats`).
    admins: HashSet<i64>,
}

impl SessionHub {
    /// Sends `frame` to every open session of `user_id` (the `origin` session
    /// gets `origin_frame` instead); true if at least one took it.
    fn push_to_user(&mut self, user_id: i64, frame: &Arc<str>, origin: Option<&Origin>) -> bool {
        let Some(sessions) = self.sessions.get_mut(&user_id) else {
            return false;
        };
        let mut delivered = false;
        sessions.retain(|(session_id, link)| {
            let frame = match origin {
                Some(origin) if origin.instance.is_none() && origin.session_id == *session_id => {
                    origin.frame.clone()
                }
                _ => frame.clone(),
            };
            match link.push.try_send(Push { frame }) {
                Ok(()) => {
                    delivered = true;
                    true
                }
                Err(SendError::Full(_)) => {
                    link.evict.do_send(Evict);
                    false
                }
                Err(SendError::Closed(_)) => false,
            }
        });
        if sessions.is_empty() {
            self.forget_user(user_id);
        }
        delivered
    }

    fn forget_user(&mut self, user_id: i64) {
        self.sessions.remove(&user_id);
        self.admins.remove(&user_id);
        for promo_id in self.watching.remove(&user_id).unwrap_or_default() {
            if let Some(watchers) = self.watchers.get_mut(&promo_id) {
                watchers.remove(&user_id);
            }
        }
    }

    fn watch(&mut self, user_id: i64, promo_id: i64) {
        if self.sessions.contains_key(&user_id) {
            self.watchers.entry(promo_id).or_default().insert(user_id);
            self.watching.entry(user_id).or_default().insert(promo_id);
        }
    }

    fn push_to_admins(&mut self, frame: &Arc<str>) {
        let admins: Vec<i64> = self.admins.iter().copied().collect();
        for user_id in admins {
            self.push_to_user(user_id, frame, None);
        }
    }

    fn push_to_watchers(&mut self, promo_id: i64, frame: &Arc<str>) {
        let watchers: Vec<i64> = self
            .watchers
            .get(&promo_id)
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default();
        for user_id in watchers {
            self.push_to_user(user_id, frame, None);
        }
    }
}

impl Actor for SessionHub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(65_536);
    }
}

/// The session a frame answers, and the frame it gets (with its `request_id`).
#[derive(Clone)]
pub struct Origin {
    pub session_id: u64,
    pub frame: Arc<str>,
    /// The instance the session is on when it is another (cluster mode);
    /// `None`: this one.
    pub instance: Option<Arc<str>>,
}

/// A session opened.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Connect {
    pub user_id: i64,
    /// Admin sessions also get the raffle campaigns' live counts.
    pub is_admin: bool,
    /// Chosen by the session, unique in the process.
    pub session_id: u64,
    pub link: SessionLink,
}

/// A frame for every open admin session.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PushToAdmins {
    pub frame: Arc<str>,
}

impl Handler<PushToAdmins> for SessionHub {
    type Result = ();

    fn handle(&mut self, message: PushToAdmins, _: &mut Self::Context) {
        self.push_to_admins(&message.frame);
    }
}

/// A session closed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    pub user_id: i64,
    pub session_id: u64,
}

/// Frames for users; answers the keys of those that reached at least one session.
#[derive(Message)]
#[rtype(result = "Vec<i64>")]
pub struct PushToUsers {
    /// (key, user_id, frame): the key (e.g. a notification id) is echoed back if delivered.
    pub frames: Vec<(i64, i64, Arc<str>)>,
}

/// A frame for every session of one user.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PushToUser {
    pub user_id: i64,
    pub frame: Arc<str>,
    pub origin: Option<Origin>,
}

/// The running promos a connected user is eligible for now (replaces the old set).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetWatches {
    pub user_id: i64,
    pub promo_ids: Vec<i64>,
}

/// Users eligible for a promo that just started.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AddWatchers {
    pub promo_id: i64,
    pub user_ids: Vec<i64>,
}

/// A promo's stock changed: tell its watchers.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StockFrame {
    pub promo_id: i64,
    pub frame: ServerFrame,
}

/// A promo stopped running: tell its watchers (and `also`), then forget them.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PromoEnded {
    pub promo_id: i64,
    pub reason: EndReason,
    pub also: Vec<i64>,
}

/// How many sessions are open (for metrics and tests).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CountSessions;

impl Handler<Connect> for SessionHub {
    type Result = ();

    fn handle(&mut self, message: Connect, _: &mut Self::Context) {
        if message.is_admin {
            self.admins.insert(message.user_id);
        }
        self.sessions
            .entry(message.user_id)
            .or_insert_with(|| Vec::with_capacity(1))
            .push((message.session_id, message.link));
    }
}

impl Handler<Disconnect> for SessionHub {
    type Result = ();

    fn handle(&mut self, message: Disconnect, _: &mut Self::Context) {
        let now_empty = self
            .sessions
            .get_mut(&message.user_id)
            .is_some_and(|sessions| {
                sessions.retain(|(session_id, _)| *session_id != message.session_id);
                sessions.is_empty()
            });
        if now_empty {
            self.forget_user(message.user_id);
        }
    }
}

impl Handler<PushToUsers> for SessionHub {
    type Result = Vec<i64>;

    fn handle(&mut self, message: PushToUsers, _: &mut Self::Context) -> Vec<i64> {
        let started = std::time::Instant::now();
        let count = message.frames.len();
        let delivered: Vec<i64> = message
            .frames
            .into_iter()
            .filter(|(_, user_id, frame)| self.push_to_user(*user_id, frame, None))
            .map(|(key, _, _)| key)
            .collect();
        tracing::debug!(count, delivered = delivered.len(), elapsed = ?started.elapsed(), "frames handed to sessions");
        delivered
    }
}

impl Handler<PushToUser> for SessionHub {
    type Result = ();

    fn handle(&mut self, message: PushToUser, _: &mut Self::Context) {
        self.push_to_user(message.user_id, &message.frame, message.origin.as_ref());
    }
}

impl Handler<SetWatches> for SessionHub {
    type Result = ();

    fn handle(&mut self, message: SetWatches, _: &mut Self::Context) {
        for promo_id in self.watching.remove(&message.user_id).unwrap_or_default() {
            if let Some(watchers) = self.watchers.get_mut(&promo_id) {
                watchers.remove(&message.user_id);
            }
        }
        for promo_id in message.promo_ids {
            self.watch(message.user_id, promo_id);
        }
    }
}

impl Handler<AddWatchers> for SessionHub {
    type Result = ();

    fn handle(&mut self, message: AddWatchers, _: &mut Self::Context) {
        for user_id in message.user_ids {
            self.watch(user_id, message.promo_id);
        }
    }
}

impl Handler<StockFrame> for SessionHub {
    type Result = ();

    fn handle(&mut self, message: StockFrame, _: &mut Self::Context) {
        let watched = self
            .watchers
            .get(&message.promo_id)
            .is_some_and(|set| !set.is_empty());
        if watched || !self.admins.is_empty() {
            let frame: Arc<str> = Arc::from(message.frame.to_text());
            self.push_to_watchers(message.promo_id, &frame);
            self.push_to_admins(&frame);
        }
    }
}

impl Handler<PromoEnded> for SessionHub {
    type Result = ();

    fn handle(&mut self, message: PromoEnded, _: &mut Self::Context) {
        let frame: Arc<str> = Arc::from(
            ServerFrame::PromoEnded {
                promo_id: message.promo_id,
                reason: message.reason,
            }
            .to_text(),
        );
        let mut told: HashSet<i64> = self.watchers.remove(&message.promo_id).unwrap_or_default();
        told.extend(message.also);
        told.extend(self.admins.iter().copied());
        for user_id in told {
            if let Some(watching) = self.watching.get_mut(&user_id) {
                watching.remove(&message.promo_id);
            }
            self.push_to_user(user_id, &frame, None);
        }
    }
}

impl Handler<CountSessions> for SessionHub {
    type Result = usize;

    fn handle(&mut self, _: CountSessions, _: &mut Self::Context) -> usize {
        self.sessions.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in session that keeps the frames it is pushed.
    #[derive(Default)]
    struct Probe {
        frames: Vec<String>,
    }

    impl Actor for Probe {
        type Context = Context<Self>;
    }

    impl Handler<Push> for Probe {
        type Result = ();

        fn handle(&mut self, message: Push, _: &mut Self::Context) {
            self.frames.push(message.frame.to_string());
        }
    }

    impl Handler<Evict> for Probe {
        type Result = ();

        fn handle(&mut self, _: Evict, ctx: &mut Self::Context) {
            ctx.stop();
        }
    }

    /// Answered after every push sent before it (one mailbox, in order).
    #[derive(Message)]
    #[rtype(result = "Vec<String>")]
    struct TakeFrames;

    impl Handler<TakeFrames> for Probe {
        type Result = Vec<String>;

        fn handle(&mut self, _: TakeFrames, _: &mut Self::Context) -> Vec<String> {
            std::mem::take(&mut self.frames)
        }
    }

    fn connect(user_id: i64, session_id: u64, probe: &Addr<Probe>) -> Connect {
        Connect {
            user_id,
            is_admin: false,
            session_id,
            link: SessionLink {
                push: probe.clone().recipient(),
                evict: probe.clone().recipient(),
            },
        }
    }

    fn admin(user_id: i64, session_id: u64, probe: &Addr<Probe>) -> Connect {
        Connect {
            is_admin: true,
            ..connect(user_id, session_id, probe)
        }
    }

    fn frame_for(key: i64, user_id: i64, text: &str) -> PushToUsers {
        PushToUsers {
            frames: vec![(key, user_id, Arc::from(text))],
        }
    }

    #[actix_web::test]
    async fn every_session_of_a_user_gets_its_frames_until_it_closes() {
        let hub = SessionHub::default().start();
        let (first, second) = (Probe::default().start(), Probe::default().start());
        hub.send(connect(1, 10, &first)).await.unwrap();
        hub.send(connect(1, 11, &second)).await.unwrap();

        assert_eq!(hub.send(frame_for(7, 1, "a")).await.unwrap(), vec![7]);
        hub.send(Disconnect {
            user_id: 1,
            session_id: 10,
        })
        .await
        .unwrap();
        assert_eq!(hub.send(frame_for(8, 1, "b")).await.unwrap(), vec![8]);
        assert_eq!(hub.send(CountSessions).await.unwrap(), 1);
        assert_eq!(first.send(TakeFrames).await.unwrap(), vec!["a"]);
        assert_eq!(second.send(TakeFrames).await.unwrap(), vec!["a", "b"]);

        hub.send(Disconnect {
            user_id: 1,
            session_id: 11,
        })
        .await
        .unwrap();
        assert!(hub.send(frame_for(9, 1, "c")).await.unwrap().is_empty());
        assert_eq!(hub.send(CountSessions).await.unwrap(), 0);
    }

    #[actix_web::test]
    async fn admin_sessions_get_every_promos_stock_and_end_frames() {
        let hub = SessionHub::default().start();
        let console = Probe::default().start();
        hub.send(admin(1, 10, &console)).await.unwrap();
        let frame = ServerFrame::PromoStock {
            promo_id: 5,
            available: 2,
            held: 1,
            sold: 0,
            status: crate::domain::promo::PromoStatus::Running,
        };
        hub.send(StockFrame { promo_id: 5, frame }).await.unwrap();
        hub.send(PromoEnded {
            promo_id: 5,
            reason: EndReason::SoldOut,
            also: Vec::new(),
        })
        .await
        .unwrap();
        let frames = console.send(TakeFrames).await.unwrap();
        assert_eq!(frames.len(), 2, "{frames:?}");
        assert!(frames[0].contains("promo.stock"), "{frames:?}");
        assert!(frames[1].contains("promo.ended"), "{frames:?}");
    }
}
