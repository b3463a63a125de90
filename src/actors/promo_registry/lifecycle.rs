//! The registry's lifecycle decisions, as plain functions of a promo, whether
//! it has an actor, and `now`: when to start, close, deactivate or keep an
//! actor, when a promo can be forgotten, and when to look again.
//!
//! "Should it run" is [`FlashPromo::runs_at`] everywhere; the actor itself
//! decides nothing here. A promo with a daily window runs once per
//! occurrence: each start and end is a boundary like a continuous promo's.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::promo::FlashPromo;

/// What the registry does to a promo's actor now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// It should run and has no actor: start one (and announce the start).
    Start,
    /// A new occurrence started while its actor still settles the last
    /// one's holds: the actor moves on to it (and the start is announced).
    Begin,
    /// Outside its window with live holds and no actor (reloaded after a
    /// restart): start an actor that only settles them.
    Settle,
    /// Over or not yet started: live holds may still complete, no new ones.
    Close,
    /// Switched off: its holds are released.
    Deactivate,
    /// Nothing to change.
    Keep,
}

impl Step {
    /// The step for `promo` at `now`; `held` is its live holds (of any
    /// occurrence: without an actor, each needs one to settle it).
    pub fn at(promo: &FlashPromo, held: u32, has_actor: bool, now: DateTime<Utc>) -> Step {
        match (has_actor, promo.runs_at(now)) {
            (false, true) => Step::Start,
            (false, false) if promo.is_active && held > 0 => Step::Settle,
            (true, false) if promo.is_active => Step::Close,
            (true, false) => Step::Deactivate,
            _ => Step::Keep,
        }
    }

    /// [`Step::at`], for an actor that was started (or last moved on) for
    /// the occurrence beginning at `started`.
    pub fn for_occurrence(
        promo: &FlashPromo,
        held: u32,
        actor: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Step {
        let step = Step::at(promo, held, actor.is_some(), now);
        let current = promo.occurrence_at(now).map(|occurrence| occurrence.start);
        let moved_on = promo.daily_window.is_some() && current.is_some() && actor != current;
        match step {
            Step::Keep if actor.is_some() && promo.is_active && moved_on => Step::Begin,
            step => step,
        }
    }
}

/// Whether the registry still keeps `promo` after reconciling: while an actor
/// lives, or while it is switched on and not over.
pub fn keeps(promo: &FlashPromo, has_actor: bool, now: DateTime<Utc>) -> bool {
    has_actor || (promo.is_active && promo.end_time > now)
}

/// How long to sleep before the next start or end among `promos`, at most
/// `longest`.
pub fn next_check<'a>(
    promos: impl Iterator<Item = &'a FlashPromo>,
    now: DateTime<Utc>,
    longest: Duration,
) -> Duration {
    promos
        .filter_map(|promo| promo.next_change_after(now))
        .min()
        .and_then(|instant| (instant - now).to_std().ok())
        .map_or(longest, |delay| delay.min(longest))
}

/// At most one resync in flight; asking for one meanwhile asks for one more
/// right after it (however often it was asked).
#[derive(Debug, Default)]
pub struct ResyncGate {
    in_flight: bool,
    again: bool,
}

impl ResyncGate {
    /// True when a resync may start now; otherwise one more is owed.
    pub fn request(&mut self) -> bool {
        if self.in_flight {
            self.again = true;
            return false;
        }
        self.in_flight = true;
        true
    }

    /// The resync in flight ended: true when the one owed starts now.
    pub fn finish(&mut self) -> bool {
        self.in_flight = std::mem::take(&mut self.again);
        self.in_flight
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::domain::entities::{Product, Segment, Store};
    use crate::domain::promo::PromoStatus;
    use crate::domain::Money;
    use chrono::TimeZone;

    pub fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, hour, 0, 0).unwrap()
    }

    /// A promo of store (0, 0), radius 2 km, segment 7, running 17:00–19:00.
    pub fn promo(id: i64) -> FlashPromo {
        FlashPromo {
            id,
            product: Product {
                id,
                name: "P".into(),
                store: Store {
                    id: 1,
                    name: "S".into(),
                    latitude: 0.0,
                    longitude: 0.0,
                },
                regular_price: Money::parse("10").unwrap(),
            },
            promo_price: Money::parse("5").unwrap(),
            start_time: at(17),
            end_time: at(19),
            segments: vec![Segment {
                id: 7,
                name: "S7".into(),
                description: String::new(),
            }],
            max_distance_km: 2.0,
            is_active: true,
            daily_window: None,
            quantity: 5,
            available: 5,
            held: 0,
            sold: 0,
            sold_total: 0,
            held_any: 0,
            status: PromoStatus::Running,
            occurrence: None,
            created_at: at(10),
            updated_at: at(10),
        }
    }

    #[test]
    fn a_promo_gets_an_actor_from_its_start_and_is_closed_at_its_end() {
        let promo = promo(1);
        assert_eq!(Step::at(&promo, 0, false, at(16)), Step::Keep);
        assert_eq!(Step::at(&promo, 0, false, at(17)), Step::Start);
        assert_eq!(Step::at(&promo, 0, true, at(18)), Step::Keep);
        assert_eq!(Step::at(&promo, 0, true, at(19)), Step::Close);
    }

    #[test]
    fn each_occurrence_of_a_daily_promo_begins_and_closes() {
        let mut promo = promo(1);
        promo.start_time = at(0);
        promo.end_time = at(0) + chrono::Duration::days(2);
        promo.daily_window =
            Some(crate::domain::daily_window::DailyWindow::parse("17:00", "19:00", "UTC").unwrap());
        let next_day = |hour| at(hour) + chrono::Duration::days(1);
        let step = |actor, now| Step::for_occurrence(&promo, 1, actor, now);
        assert_eq!(step(None, at(17)), Step::Start);
        assert_eq!(step(Some(at(17)), at(18)), Step::Keep);
        assert_eq!(step(Some(at(17)), at(19)), Step::Close);
        assert_eq!(step(None, at(20)), Step::Settle);
        assert_eq!(step(Some(at(17)), next_day(17)), Step::Begin);
        assert_eq!(step(Some(next_day(17)), next_day(18)), Step::Keep);
        assert_eq!(step(None, next_day(17)), Step::Start);
        assert_eq!(
            next_check(std::iter::once(&promo), at(19), Duration::from_secs(86_400)),
            Duration::from_secs(22 * 3_600)
        );
    }

    #[test]
    fn a_continuous_promo_whose_start_moved_keeps_its_actor() {
        let promo = promo(1);
        let moved = Some(at(16));
        assert_eq!(Step::for_occurrence(&promo, 0, moved, at(18)), Step::Keep);
    }

    #[test]
    fn a_switched_off_promo_is_deactivated_and_never_started() {
        let mut promo = promo(1);
        promo.is_active = false;
        assert_eq!(Step::at(&promo, 0, true, at(18)), Step::Deactivate);
        assert_eq!(Step::at(&promo, 3, false, at(18)), Step::Keep);
    }

    #[test]
    fn holds_outside_the_window_without_an_actor_get_one_to_settle_them() {
        let promo = promo(1);
        assert_eq!(Step::at(&promo, 2, false, at(20)), Step::Settle);
        assert_eq!(Step::at(&promo, 0, false, at(20)), Step::Keep);
    }

    #[test]
    fn an_over_promo_is_forgotten_once_its_actor_is_gone() {
        let promo = promo(1);
        assert!(keeps(&promo, false, at(18)));
        assert!(keeps(&promo, true, at(20)));
        assert!(!keeps(&promo, false, at(19)));
    }

    #[test]
    fn the_registry_wakes_at_the_next_start_or_end_but_not_later_than_its_longest_sleep() {
        let (early, mut late) = (promo(1), promo(2));
        late.start_time = at(18);
        late.end_time = at(21);
        let longest = Duration::from_secs(30);
        let now = at(17) + chrono::Duration::seconds(3_590);
        let promos = [early.clone(), late.clone()];
        assert_eq!(
            next_check(promos.iter(), now, longest),
            Duration::from_secs(10)
        );
        assert_eq!(next_check(promos.iter(), at(16), longest), longest);
        assert_eq!(next_check(promos.iter(), at(21), longest), longest);
    }

    #[test]
    fn a_resync_asked_for_while_one_runs_waits_and_many_asks_make_one_more() {
        let mut gate = ResyncGate::default();
        assert!(gate.request());
        assert!(!gate.request());
        assert!(!gate.request());
        assert!(gate.finish(), "one more is owed");
        assert!(!gate.request(), "the owed one is in flight");
        assert!(gate.finish(), "asked for again while the owed one ran");
        assert!(!gate.finish());
        assert!(gate.request(), "idle again");
    }
}
