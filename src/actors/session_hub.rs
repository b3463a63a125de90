//! `SessionHub`: which WebSocket sessions are open, by user.
//!
//! Knows nothing of WebSockets: sessions register a [`Recipient`] of
//! [`Push`] (a ready JSON text frame) and the hub hands frames to every open
//! session of a user. Each session's mailbox is bounded; a session whose
//! mailbox is full is not keeping up and is told to close, rather than letting
//! frames pile up without bound (what it missed stays in the REST inbox).
//!
//! Sent by: WsSession (connect, disconnect), the Notifier (notifications).

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;

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
    sessions: HashMap<i64, HashMap<u64, SessionLink>>,
    next_session_id: u64,
}

impl SessionHub {
    /// Sends `frame` to every open session of `user_id`; true if at least one took it.
    fn push_to_user(&mut self, user_id: i64, frame: &Arc<str>) -> bool {
        let Some(sessions) = self.sessions.get_mut(&user_id) else {
            return false;
        };
        let mut delivered = false;
        sessions.retain(|_, link| {
            match link.push.try_send(Push {
                frame: frame.clone(),
            }) {
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
            self.sessions.remove(&user_id);
        }
        delivered
    }
}

impl Actor for SessionHub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(65_536);
    }
}

/// A session opened; answers its id.
#[derive(Message)]
#[rtype(result = "u64")]
pub struct Connect {
    pub user_id: i64,
    pub link: SessionLink,
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

/// How many sessions are open (for metrics and tests).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CountSessions;

impl Handler<Connect> for SessionHub {
    type Result = u64;

    fn handle(&mut self, message: Connect, _: &mut Self::Context) -> u64 {
        self.next_session_id += 1;
        self.sessions
            .entry(message.user_id)
            .or_default()
            .insert(self.next_session_id, message.link);
        self.next_session_id
    }
}

impl Handler<Disconnect> for SessionHub {
    type Result = ();

    fn handle(&mut self, message: Disconnect, _: &mut Self::Context) {
        if let Some(sessions) = self.sessions.get_mut(&message.user_id) {
            sessions.remove(&message.session_id);
            if sessions.is_empty() {
                self.sessions.remove(&message.user_id);
            }
        }
    }
}

impl Handler<PushToUsers> for SessionHub {
    type Result = Vec<i64>;

    fn handle(&mut self, message: PushToUsers, _: &mut Self::Context) -> Vec<i64> {
        message
            .frames
            .into_iter()
            .filter(|(_, user_id, frame)| self.push_to_user(*user_id, frame))
            .map(|(key, _, _)| key)
            .collect()
    }
}

impl Handler<CountSessions> for SessionHub {
    type Result = usize;

    fn handle(&mut self, _: CountSessions, _: &mut Self::Context) -> usize {
        self.sessions.values().map(HashMap::len).sum()
    }
}
