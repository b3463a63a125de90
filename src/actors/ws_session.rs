//! `WsSession`: one shopper's (or the admin's) WebSocket connection.
//!
//! Owns the socket: says `hello`, answers `ping`, applies `location` and
//! `reserve` frames through the same [`Engine`] calls as the REST handlers
//! (an [`EngineError`] becomes an `error` frame, in one place), answers a bad
//! frame with an `error` frame (the connection stays), and relays what the
//! [`SessionHub`] pushes. It pings the client every [`HEARTBEAT_INTERVAL`] and
//! closes after [`CLIENT_TIMEOUT`] of silence. Its mailbox is bounded: when it
//! fills the hub evicts the session instead of queueing without limit. On
//! connect it is sent the undelivered notifications of still-running promos.
//!
//! A frame that starts async work (`reserve`, `location`) counts as in flight
//! until its answer; past [`MAX_IN_FLIGHT`] a frame is answered at once with
//! `too_many_requests` and not executed, so one socket writing frames as fast
//! as it can holds at most that many tasks and pool connections.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web_actors::ws;
use chrono::Utc;
use serde_json::Value;

use super::promo::WsOrigin;
use super::session_hub::{Connect, Disconnect, Evict, Push, SessionHub, SessionLink};
use crate::domain::frames::{frame_type_of, ClientFrame, ServerFrame};
use crate::domain::GeoPoint;
use crate::engine::deadlines::{within, REQUEST_DEADLINE};
use crate::engine::{Engine, EngineError};
use crate::telemetry::prometheus;

/// How often the server pings and checks for silence.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// Session ids, unique in this process; chosen by the session itself, so it
/// can always say which one to drop, even if it dies before the hub answers.
static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);
/// Silence after which the session is closed.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Frames that may wait for this session before it counts as too slow.
pub const OUTGOING_QUEUE: usize = 256;
/// Client requests (`reserve`, `location`) one session may have running at once.
pub const MAX_IN_FLIGHT: usize = 8;

/// One connection.
pub struct WsSession {
    user_id: i64,
    is_admin: bool,
    session_id: u64,
    engine: Engine,
    hub: Addr<SessionHub>,
    last_heard: Instant,
    /// Client requests started and not yet answered.
    in_flight: usize,
}

impl WsSession {
    /// A session for an authenticated user.
    pub fn new(user_id: i64, is_admin: bool, engine: Engine) -> WsSession {
        let hub = engine.hub().clone();
        WsSession {
            user_id,
            is_admin,
            session_id: NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed),
            engine,
            hub,
            last_heard: Instant::now(),
            in_flight: 0,
        }
    }

    fn send(&self, frame: &ServerFrame, ctx: &mut ws::WebsocketContext<Self>) {
        let text = frame.to_text();
        prometheus::ws_frame_sent(frame_type_of(&text));
        ctx.text(text);
    }

    fn heartbeat(&self, ctx: &mut ws::WebsocketContext<Self>) {
        ctx.run_interval(HEARTBEAT_INTERVAL, |session, ctx| {
            if session.last_heard.elapsed() > CLIENT_TIMEOUT {
                ctx.close(Some(ws::CloseReason {
                    code: ws::CloseCode::Away,
                    description: Some("no answer for 30 s".into()),
                }));
                ctx.stop();
            } else {
                ctx.ping(b"");
            }
        });
    }

    fn on_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        match serde_json::from_str::<ClientFrame>(text) {
            Ok(ClientFrame::Ping { request_id }) => {
                self.send(&ServerFrame::Pong { request_id }, ctx)
            }
            Ok(ClientFrame::Location {
                latitude,
                longitude,
            }) => self.relocate(latitude, longitude, ctx),
            Ok(ClientFrame::Reserve {
                promo_id,
                request_id,
            }) => self.reserve(promo_id, request_id, ctx),
            Err(error) => {
                let request_id = serde_json::from_str::<Value>(text)
                    .ok()
                    .and_then(|value| value.get("request_id").cloned());
                let frame = ServerFrame::Error {
                    code: "bad_frame".into(),
                    detail: format!("Unreadable frame: {error}"),
                    request_id,
                };
                self.send(&frame, ctx);
            }
        }
    }

    /// Counts one more request in flight, or refuses it with
    /// `too_many_requests` when [`MAX_IN_FLIGHT`] are already running.
    fn admit(&mut self, request_id: Option<&Value>, ctx: &mut ws::WebsocketContext<Self>) -> bool {
        if self.in_flight < MAX_IN_FLIGHT {
            self.in_flight += 1;
            return true;
        }
        let frame = ServerFrame::Error {
            code: "too_many_requests".into(),
            detail: format!(
                "{MAX_IN_FLIGHT} requests of this session are still running; \
                 wait for their answers, then send again."
            ),
            request_id: request_id.cloned(),
        };
        self.send(&frame, ctx);
        false
    }

    /// Marks one admitted request answered.
    fn finished(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    fn relocate(&mut self, latitude: f64, longitude: f64, ctx: &mut ws::WebsocketContext<Self>) {
        let Ok(location) = GeoPoint::parse(latitude, longitude) else {
            return self.send(&error_frame(&EngineError::InvalidLocation, None), ctx);
        };
        if !self.admit(None, ctx) {
            return;
        }
        let (engine, user_id) = (self.engine.clone(), self.user_id);
        let moved = async move { engine.relocate_user(user_id, location).await };
        // One move at a time, in the order sent: a later frame waits for this one.
        ctx.wait(moved.into_actor(self).map(|moved, session, ctx| {
            session.finished();
            if let Err(error) = moved {
                session.send(&error_frame(&error, None), ctx);
            }
        }));
    }

    /// A success is answered by the PromoActor's `reservation.held` frame,
    /// which reaches every session of the user, and this one with its
    /// `request_id`; only a refusal is answered here.
    fn reserve(&mut self, promo_id: i64, request_id: Value, ctx: &mut ws::WebsocketContext<Self>) {
        if !self.admit(Some(&request_id), ctx) {
            return;
        }
        let (engine, user_id) = (self.engine.clone(), self.user_id);
        let origin = WsOrigin {
            session_id: self.session_id,
            request_id: request_id.clone(),
            instance: None,
        };
        // The same deadline as a REST request: past it the frame says
        // `outcome_unknown`, and a hold that does commit still arrives as
        // `reservation.held`.
        let reserved = async move {
            let reserving = engine.reserve(user_id, promo_id, Some(origin));
            within(REQUEST_DEADLINE, reserving).await
        };
        ctx.spawn(
            reserved
                .into_actor(self)
                .map(move |reserved, session, ctx| {
                    session.finished();
                    if let Err(error) = reserved {
                        session.send(&error_frame(&error, Some(request_id)), ctx);
                    }
                }),
        );
    }

    /// Pushes the undelivered notifications of still-running promos.
    fn deliver_missed(&self, ctx: &mut ws::WebsocketContext<Self>) {
        let (engine, user_id) = (self.engine.clone(), self.user_id);
        let missed = async move { engine.take_missed_notifications(user_id).await };
        ctx.spawn(
            missed
                .into_actor(self)
                .map(|missed, session, ctx| match missed {
                    Ok(frames) => {
                        prometheus::notifications("push", frames.len());
                        frames.iter().for_each(|frame| session.send(frame, ctx));
                    }
                    Err(error) => tracing::warn!(%error, "could not deliver missed notifications"),
                }),
        );
    }
}

/// The one place an engine failure becomes an `error` frame.
fn error_frame(error: &EngineError, request_id: Option<Value>) -> ServerFrame {
    ServerFrame::Error {
        code: error.code().into(),
        detail: error.detail(),
        request_id,
    }
}

impl Actor for WsSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        prometheus::ws_sessions_changed(1.0);
        ctx.set_mailbox_capacity(OUTGOING_QUEUE);
        self.heartbeat(ctx);
        let link = SessionLink {
            push: ctx.address().recipient(),
            evict: ctx.address().recipient(),
        };
        let (hub, engine, user_id) = (self.hub.clone(), self.engine.clone(), self.user_id);
        let is_admin = self.is_admin;
        let session_id = self.session_id;
        // Registered and watching before `hello`: a client that has its hello
        // misses no frame meant for it.
        let join = async move {
            hub.send(Connect {
                user_id,
                is_admin,
                session_id,
                link,
            })
            .await
            .ok()?;
            if let Err(error) = engine.refresh_watches(user_id).await {
                tracing::warn!(%error, "could not compute the promos a session watches");
            }
            Some(())
        };
        ctx.wait(
            join.into_actor(self)
                .map(|joined, session, ctx| match joined {
                    Some(()) => {
                        let hello = ServerFrame::Hello {
                            user_id: session.user_id,
                            server_time: Utc::now(),
                        };
                        session.send(&hello, ctx);
                        session.deliver_missed(ctx);
                    }
                    None => ctx.stop(),
                }),
        );
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        prometheus::ws_sessions_changed(-1.0);
        self.hub.do_send(Disconnect {
            user_id: self.user_id,
            session_id: self.session_id,
        });
    }
}

impl Handler<Push> for WsSession {
    type Result = ();

    fn handle(&mut self, message: Push, ctx: &mut Self::Context) {
        let frame: Arc<str> = message.frame;
        prometheus::ws_frame_sent(frame_type_of(&frame));
        ctx.text(&*frame);
    }
}

impl Handler<Evict> for WsSession {
    type Result = ();

    fn handle(&mut self, _: Evict, ctx: &mut Self::Context) {
        ctx.close(Some(ws::CloseReason {
            code: ws::CloseCode::Again,
            description: Some("too slow: missed frames are in /api/users/notifications/".into()),
        }));
        ctx.stop();
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsSession {
    fn handle(&mut self, message: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        let message = match message {
            Ok(message) => message,
            Err(error) => {
                // The stream cannot be read past a broken frame: say why, then close.
                let code = match error {
                    ws::ProtocolError::Overflow => ws::CloseCode::Size,
                    _ => ws::CloseCode::Protocol,
                };
                ctx.close(Some(ws::CloseReason {
                    code,
                    description: Some(error.to_string()),
                }));
                ctx.stop();
                return;
            }
        };
        self.last_heard = Instant::now();
        match message {
            ws::Message::Text(text) => self.on_text(&text, ctx),
            ws::Message::Ping(bytes) => ctx.pong(&bytes),
            ws::Message::Binary(_) => {
                let frame = ServerFrame::Error {
                    code: "bad_frame".into(),
                    detail: "Send JSON text frames.".into(),
                    request_id: None,
                };
                self.send(&frame, ctx);
            }
            ws::Message::Close(reason) => {
                ctx.close(reason);
                ctx.stop();
            }
            ws::Message::Continuation(_) => {
                let frame = ServerFrame::Error {
                    code: "bad_frame".into(),
                    detail: "Fragmented messages are not supported; send each frame whole.".into(),
                    request_id: None,
                };
                self.send(&frame, ctx);
            }
            ws::Message::Pong(_) | ws::Message::Nop => {}
        }
    }
}
