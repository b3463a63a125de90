//! Hold expiry for one promo actor: the deadlines of its live holds in time
//! order ([`Deadlines`], plain and unit-tested) and the actor's one alarm,
//! set for the earliest of them.
//!
//! One alarm per actor rather than a timer per hold: thousands of timers
//! would be polled by the actor's context on every message. Waking up with
//! nothing due (the hold was sold or released meanwhile) only re-arms it.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::group_commit::Pending;
use super::PromoActor;
use crate::domain::stock::Hold;

/// The expiry of each live hold, earliest first.
#[derive(Debug, Default)]
pub(super) struct Deadlines {
    order: BTreeSet<(DateTime<Utc>, Uuid)>,
    of: HashMap<Uuid, DateTime<Utc>>,
}

impl Deadlines {
    /// Sets the expiry of `reservation_id` to `at` (replacing an earlier one).
    pub(super) fn schedule(&mut self, reservation_id: Uuid, at: DateTime<Utc>) {
        if let Some(old) = self.of.insert(reservation_id, at) {
            self.order.remove(&(old, reservation_id));
        }
        self.order.insert((at, reservation_id));
    }

    /// Forgets the expiry of a hold that was sold or released.
    pub(super) fn forget(&mut self, reservation_id: &Uuid) {
        if let Some(at) = self.of.remove(reservation_id) {
            self.order.remove(&(at, *reservation_id));
        }
    }

    /// The earliest deadline.
    pub(super) fn earliest(&self) -> Option<DateTime<Utc>> {
        self.order.first().map(|&(at, _)| at)
    }

    /// Takes the earliest hold whose deadline is at or before `now`.
    pub(super) fn pop_due(&mut self, now: DateTime<Utc>) -> Option<Uuid> {
        let &(at, reservation_id) = self.order.first()?;
        if at > now {
            return None;
        }
        self.order.pop_first();
        self.of.remove(&reservation_id);
        Some(reservation_id)
    }
}

impl PromoActor {
    /// Schedules the expiry of `hold` (replacing an earlier schedule of it).
    pub(super) fn arm_timer(&mut self, hold: &Hold, ctx: &mut Context<Self>) {
        self.deadlines
            .schedule(hold.reservation_id, hold.expires_at);
        self.set_alarm(ctx);
    }

    /// Forgets the expiry of a hold that was sold or released. The alarm is
    /// left as it is.
    pub(super) fn disarm_timer(&mut self, reservation_id: &Uuid) {
        self.deadlines.forget(reservation_id);
    }

    /// Makes sure the single alarm rings at the earliest deadline.
    fn set_alarm(&mut self, ctx: &mut Context<Self>) {
        let Some(next) = self.deadlines.earliest() else {
            return;
        };
        if self.alarm.as_ref().is_some_and(|(at, _)| *at <= next) {
            return;
        }
        if let Some((_, handle)) = self.alarm.take() {
            ctx.cancel_future(handle);
        }
        let delay = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        let handle = ctx.run_later(delay, |actor, ctx| actor.on_alarm(ctx));
        self.alarm = Some((next, handle));
    }

    /// Releases every hold whose deadline has passed, then re-arms.
    fn on_alarm(&mut self, ctx: &mut Context<Self>) {
        self.alarm = None;
        // The alarm may ring a hair early (monotonic and wall clocks differ):
        // what is not yet due waits for the next one.
        let now = Utc::now();
        while let Some(reservation_id) = self.deadlines.pop_due(now) {
            if let Some(hold) = self.stock.expire(&reservation_id, now) {
                self.settling.entry(hold.reservation_id).or_default();
                self.writes.push(Pending::Expire { hold });
            }
        }
        self.flush(ctx);
        self.set_alarm(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 17, 0, second).unwrap()
    }

    #[test]
    fn holds_fall_due_in_deadline_order_and_not_before() {
        let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
        let mut deadlines = Deadlines::default();
        deadlines.schedule(second, at(20));
        deadlines.schedule(first, at(10));
        assert_eq!(deadlines.earliest(), Some(at(10)));
        assert_eq!(deadlines.pop_due(at(9)), None);
        assert_eq!(deadlines.pop_due(at(20)), Some(first));
        assert_eq!(deadlines.pop_due(at(20)), Some(second));
        assert_eq!(deadlines.pop_due(at(59)), None);
    }

    #[test]
    fn rescheduling_a_hold_replaces_its_deadline() {
        let hold = Uuid::new_v4();
        let mut deadlines = Deadlines::default();
        deadlines.schedule(hold, at(10));
        deadlines.schedule(hold, at(30));
        assert_eq!(deadlines.earliest(), Some(at(30)));
        assert_eq!(deadlines.pop_due(at(29)), None);
        assert_eq!(deadlines.pop_due(at(30)), Some(hold));
    }

    #[test]
    fn a_forgotten_hold_never_falls_due() {
        let (sold, live) = (Uuid::new_v4(), Uuid::new_v4());
        let mut deadlines = Deadlines::default();
        deadlines.schedule(sold, at(10));
        deadlines.schedule(live, at(20));
        deadlines.forget(&sold);
        assert_eq!(deadlines.pop_due(at(30)), Some(live));
        assert_eq!(deadlines.earliest(), None);
    }
}
