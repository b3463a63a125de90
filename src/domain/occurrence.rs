//! Occurrences: the runs of a promo. A continuous promo has one,
//! `[start_time, end_time)`; a promo with a [`DailyWindow`] has one per
//! local day, `[day at start, day at end)` intersected with
//! `[start_time, end_time)` ([`Schedule`]).
//!
//! Occurrences come in time order and never overlap (see
//! [`crate::domain::daily_window`]); an occurrence's start is its identity
//! (the key of its stock). Pure and clock-free: every question takes the
//! instant it is about.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::daily_window::DailyWindow;

/// One run of a promo, half-open: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
pub struct Occurrence {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Occurrence {
    /// True when `now` lies in `[start, end)`.
    pub fn contains(&self, now: DateTime<Utc>) -> bool {
        self.start <= now && now < self.end
    }

    /// True when the two share an instant (touching ones do not).
    pub fn overlaps(&self, other: &Occurrence) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// When a promo runs: its date range and, optionally, its daily hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    start_time: DateTime<Utc>,
    end_time: DateTime<Utc>,
    daily: Option<DailyWindow>,
}

impl Schedule {
    /// The schedule of a promo with these terms.
    pub fn new(
        start_time: DateTime<Utc>,
        end_time: DateTime<Utc>,
        daily: Option<DailyWindow>,
    ) -> Schedule {
        Schedule {
            start_time,
            end_time,
            daily,
        }
    }

    /// Every occurrence, in time order.
    pub fn occurrences(&self) -> Occurrences {
        self.occurrences_ending_after(self.start_time)
    }

    /// The occurrences that end after `instant`, in time order.
    pub fn occurrences_ending_after(&self, instant: DateTime<Utc>) -> Occurrences {
        let from = instant.max(self.start_time);
        let (day, last_day) = match &self.daily {
            Some(window) => (
                window.local_date(from) - Duration::days(1),
                window.local_date(self.end_time) + Duration::days(1),
            ),
            None => (NaiveDate::MIN, NaiveDate::MIN),
        };
        Occurrences {
            schedule: *self,
            after: instant,
            day,
            last_day,
            done: false,
        }
    }

    /// The occurrence `now` lies in.
    pub fn occurrence_at(&self, now: DateTime<Utc>) -> Option<Occurrence> {
        self.current_or_next(now)
            .filter(|occurrence| occurrence.start <= now)
    }

    /// The occurrence `now` lies in, else the next one.
    pub fn current_or_next(&self, now: DateTime<Utc>) -> Option<Occurrence> {
        self.occurrences_ending_after(now).next()
    }

    /// The first occurrence that starts after `instant`.
    pub fn next_occurrence_after(&self, instant: DateTime<Utc>) -> Option<Occurrence> {
        self.occurrences_ending_after(instant)
            .find(|occurrence| occurrence.start > instant)
    }

    /// The last occurrence.
    pub fn last(&self) -> Option<Occurrence> {
        let Some(window) = &self.daily else {
            return self.clipped(None);
        };
        let first_day = window.local_date(self.start_time) - Duration::days(1);
        let mut day = window.local_date(self.end_time) + Duration::days(1);
        while day >= first_day {
            if let Some(occurrence) = self.clipped(Some(day)) {
                return Some(occurrence);
            }
            day = day.pred_opt()?;
        }
        None
    }

    /// The occurrence whose stock a promo shows at `now`: the current one,
    /// else the next, else (all are over) the last.
    pub fn counted_at(&self, now: DateTime<Utc>) -> Option<Occurrence> {
        self.current_or_next(now).or_else(|| self.last())
    }

    /// When a change from this schedule to `new` moves the start of the
    /// occurrence running at `now` (both have one containing `now`): its old
    /// and new start. It is the same occurrence under a new key, so its
    /// stock, sales and holds carry over; not a new one with fresh stock.
    pub fn rekeyed_at(
        &self,
        new: &Schedule,
        now: DateTime<Utc>,
    ) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        if self.daily.is_none() || new.daily.is_none() {
            return None;
        }
        let old = self.occurrence_at(now)?;
        let moved = new.occurrence_at(now)?;
        (old.start != moved.start).then_some((old.start, moved.start))
    }

    /// True when an occurrence of one overlaps an occurrence of the other.
    pub fn overlaps(&self, other: &Schedule) -> bool {
        let from = self.start_time.max(other.start_time);
        let until = self.end_time.min(other.end_time);
        if from >= until {
            return false;
        }
        let mut mine = self.occurrences_ending_after(from).peekable();
        let mut theirs = other.occurrences_ending_after(from).peekable();
        while let (Some(a), Some(b)) = (mine.peek().copied(), theirs.peek().copied()) {
            if a.start >= until || b.start >= until {
                return false;
            }
            if a.overlaps(&b) {
                return true;
            }
            // The one that ends first can overlap nothing later of the other.
            if a.end <= b.end {
                mine.next();
            } else {
                theirs.next();
            }
        }
        false
    }

    /// The run of local `day` (or the one continuous run) within the range.
    fn clipped(&self, day: Option<NaiveDate>) -> Option<Occurrence> {
        let (start, end) = match (&self.daily, day) {
            (Some(window), Some(day)) => window.on(day)?,
            _ => (self.start_time, self.end_time),
        };
        let occurrence = Occurrence {
            start: start.max(self.start_time),
            end: end.min(self.end_time),
        };
        (occurrence.start < occurrence.end).then_some(occurrence)
    }
}

/// The occurrences of a [`Schedule`] that end after an instant, in order.
#[derive(Debug, Clone)]
pub struct Occurrences {
    schedule: Schedule,
    after: DateTime<Utc>,
    day: NaiveDate,
    last_day: NaiveDate,
    done: bool,
}

impl Iterator for Occurrences {
    type Item = Occurrence;

    fn next(&mut self) -> Option<Occurrence> {
        if self.schedule.daily.is_none() {
            let once = !std::mem::replace(&mut self.done, true);
            return once
                .then(|| self.schedule.clipped(None))
                .flatten()
                .filter(|occurrence| occurrence.end > self.after);
        }
        while !self.done && self.day <= self.last_day {
            let day = self.day;
            match day.succ_opt() {
                Some(next) => self.day = next,
                None => self.done = true,
            }
            let found = self.schedule.clipped(Some(day));
            if let Some(occurrence) = found.filter(|occurrence| occurrence.end > self.after) {
                return Some(occurrence);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests;
