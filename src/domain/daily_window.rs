//! `DailyWindow`: "every day from 17:00 to 19:00 in America/Mexico_City" —
//! the checked write field, and each local day's run as instants.
//!
//! Local times follow the zone's rules (chrono-tz): a time that does not
//! exist that day (a DST gap) is read as the first valid instant after it,
//! and an ambiguous one (a DST overlap) as the earlier instant. That reading
//! never runs backwards (a later local time is never an earlier instant), so
//! the runs of consecutive days never overlap. Nothing here reads the clock.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Serialize, Serializer};
use utoipa::ToSchema;

/// Minutes in a day: the end `"24:00"` (midnight at the end of the day).
const MINUTES_PER_DAY: u16 = 24 * 60;
/// The longest gap a zone has ever skipped (Samoa skipped a whole day in
/// 2011), plus margin: how far a time in a gap is looked past.
const LONGEST_GAP_MINUTES: i64 = 26 * 60;

/// Why a daily window was refused; the message names the sub-field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DailyWindowError {
    #[error("start must be a time of day as HH:MM, from 00:00 to 23:59")]
    BadStart,
    #[error("end must be a time of day as HH:MM, from 00:01 to 24:00")]
    BadEnd,
    #[error("end must be after start on the same day")]
    EndNotAfterStart,
    #[error("timezone must be an IANA time zone name, such as America/Mexico_City")]
    BadTimezone,
}

/// A time of day in whole minutes, `00:00` to `24:00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LocalTime(u16);

impl LocalTime {
    /// Reads `HH:MM` (exactly two digits each); `24:00` only when `allow_midnight_end`.
    fn parse(text: &str, allow_midnight_end: bool) -> Option<LocalTime> {
        let bytes = text.as_bytes();
        if bytes.len() != 5 || bytes[2] != b':' {
            return None;
        }
        let digits = |range: std::ops::Range<usize>| -> Option<u16> {
            let part = text.get(range)?;
            part.bytes()
                .all(|byte| byte.is_ascii_digit())
                .then(|| part.parse().ok())?
        };
        let (hours, minutes) = (digits(0..2)?, digits(3..5)?);
        let total = hours * 60 + minutes;
        let fits = minutes < 60 && (total < MINUTES_PER_DAY || allow_midnight_end);
        (fits && total <= MINUTES_PER_DAY).then_some(LocalTime(total))
    }

    /// Minutes after the start of the day.
    pub fn minutes(self) -> u16 {
        self.0
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl Serialize for LocalTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The hours a promo runs each day, in one zone. Serializes as written:
/// `{"start": "17:00", "end": "19:00", "timezone": "America/Mexico_City"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct DailyWindow {
    /// `HH:MM`, local time.
    #[schema(value_type = String, pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$", example = "17:00")]
    start: LocalTime,
    /// `HH:MM` after `start`, or `24:00` (midnight at the end of the day).
    #[schema(value_type = String, pattern = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$", example = "19:00")]
    end: LocalTime,
    /// An IANA time zone name.
    #[schema(value_type = String, example = "America/Mexico_City")]
    #[serde(serialize_with = "zone_name")]
    timezone: Tz,
}

fn zone_name<S: Serializer>(zone: &Tz, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(zone.name())
}

impl DailyWindow {
    /// Checks the three sub-fields together; every problem is reported.
    pub fn parse(
        start: &str,
        end: &str,
        timezone: &str,
    ) -> Result<DailyWindow, Vec<DailyWindowError>> {
        let mut errors = Vec::new();
        let start = LocalTime::parse(start, false);
        let end = LocalTime::parse(end, true).filter(|end| end.0 > 0);
        if start.is_none() {
            errors.push(DailyWindowError::BadStart);
        }
        if end.is_none() {
            errors.push(DailyWindowError::BadEnd);
        }
        let timezone = Tz::from_str(timezone).ok();
        if timezone.is_none() {
            errors.push(DailyWindowError::BadTimezone);
        }
        match (start, end, timezone) {
            (Some(start), Some(end), Some(_)) if end <= start => {
                errors.push(DailyWindowError::EndNotAfterStart);
                Err(errors)
            }
            (Some(start), Some(end), Some(timezone)) => Ok(DailyWindow {
                start,
                end,
                timezone,
            }),
            _ => Err(errors),
        }
    }

    /// The local start time.
    pub fn start(&self) -> LocalTime {
        self.start
    }

    /// The local end time.
    pub fn end(&self) -> LocalTime {
        self.end
    }

    /// The zone the times are read in.
    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// The local date of `instant` in the window's zone.
    pub fn local_date(&self, instant: DateTime<Utc>) -> NaiveDate {
        instant.with_timezone(&self.timezone).date_naive()
    }

    /// The run on local `day`, `[day at start, day at end)`, as instants;
    /// `None` when the zone's rules leave nothing of it (a gap swallowed it).
    pub fn on(&self, day: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let start = resolve(self.timezone, day, self.start)?;
        let end = resolve(self.timezone, day, self.end)?;
        (start < end).then_some((start, end))
    }
}

/// The instant of local `time` on `day` in `zone`, by the rules in the module doc.
fn resolve(zone: Tz, day: NaiveDate, time: LocalTime) -> Option<DateTime<Utc>> {
    let midnight = day.and_hms_opt(0, 0, 0)?;
    let local = midnight + Duration::minutes(i64::from(time.minutes()));
    first_instant_from(zone, local)
}

/// The earliest instant showing `local`, or, when `local` falls in a gap,
/// the first valid instant after it. Zone transitions fall on whole
/// minutes, so the first valid local minute after the gap is that instant.
fn first_instant_from(zone: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    (0..=LONGEST_GAP_MINUTES).find_map(|minutes| {
        let candidate = local + Duration::minutes(minutes);
        match zone.from_local_datetime(&candidate) {
            LocalResult::Single(instant) => Some(instant.with_timezone(&Utc)),
            LocalResult::Ambiguous(earlier, _) => Some(earlier.with_timezone(&Utc)),
            LocalResult::None => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(start: &str, end: &str, zone: &str) -> DailyWindow {
        DailyWindow::parse(start, end, zone).unwrap()
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_window_serializes_as_it_was_written() {
        let written = window("17:00", "24:00", "America/Mexico_City");
        assert_eq!(
            serde_json::to_string(&written).unwrap(),
            r#"{"start":"17:00","end":"24:00","timezone":"America/Mexico_City"}"#
        );
    }

    #[test]
    fn bad_sub_fields_are_all_reported() {
        assert_eq!(
            DailyWindow::parse("7:00", "25:00", "Mars/Olympus"),
            Err(vec![
                DailyWindowError::BadStart,
                DailyWindowError::BadEnd,
                DailyWindowError::BadTimezone
            ])
        );
        for bad in [
            "24:00", "12:60", "ab:cd", "12:5", " 12:00", "+1:00", "１2:00",
        ] {
            assert!(DailyWindow::parse(bad, "23:00", "UTC").is_err(), "{bad}");
        }
        assert_eq!(
            DailyWindow::parse("10:00", "00:00", "UTC"),
            Err(vec![DailyWindowError::BadEnd])
        );
    }

    #[test]
    fn the_end_must_come_after_the_start() {
        assert_eq!(
            DailyWindow::parse("19:00", "17:00", "UTC"),
            Err(vec![DailyWindowError::EndNotAfterStart])
        );
        assert_eq!(
            DailyWindow::parse("17:00", "17:00", "UTC"),
            Err(vec![DailyWindowError::EndNotAfterStart])
        );
        assert!(DailyWindow::parse("00:00", "24:00", "UTC").is_ok());
    }

    #[test]
    fn a_day_runs_at_its_local_hours() {
        let run = window("17:00", "19:00", "America/Mexico_City").on(day("2026-11-23"));
        assert_eq!(
            run,
            Some((utc("2026-11-23T23:00:00Z"), utc("2026-11-24T01:00:00Z")))
        );
    }

    #[test]
    fn midnight_as_an_end_is_the_start_of_the_next_day() {
        let run = window("22:00", "24:00", "Europe/Berlin").on(day("2026-01-10"));
        assert_eq!(
            run,
            Some((utc("2026-01-10T21:00:00Z"), utc("2026-01-10T23:00:00Z")))
        );
    }

    #[test]
    fn a_start_in_a_spring_gap_begins_when_the_clocks_resume() {
        // New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00Z).
        let run = window("02:30", "04:00", "America/New_York").on(day("2026-03-08"));
        assert_eq!(
            run,
            Some((utc("2026-03-08T07:00:00Z"), utc("2026-03-08T08:00:00Z")))
        );
    }

    #[test]
    fn a_run_inside_a_gap_has_nothing_left_that_day() {
        let run = window("02:10", "02:50", "America/New_York");
        assert_eq!(run.on(day("2026-03-08")), None);
        assert!(run.on(day("2026-03-09")).is_some());
    }

    #[test]
    fn an_ambiguous_time_in_an_autumn_overlap_is_the_earlier_instant() {
        // New York, 2026-11-01: 02:00 EDT falls back to 01:00 EST.
        let run = window("01:30", "03:00", "America/New_York").on(day("2026-11-01"));
        assert_eq!(
            run,
            Some((utc("2026-11-01T05:30:00Z"), utc("2026-11-01T08:00:00Z")))
        );
    }

    #[test]
    fn southern_zones_change_the_other_way_round() {
        // Sydney, 2026-10-04: 02:00 AEST jumps to 03:00 AEDT (16:00Z on the 3rd).
        let sydney = window("02:15", "05:00", "Australia/Sydney");
        assert_eq!(
            sydney.on(day("2026-10-04")),
            Some((utc("2026-10-03T16:00:00Z"), utc("2026-10-03T18:00:00Z")))
        );
        // Sydney, 2026-04-05: 03:00 AEDT falls back to 02:00 AEST.
        let overlap = window("02:30", "04:00", "Australia/Sydney");
        assert_eq!(
            overlap.on(day("2026-04-05")),
            Some((utc("2026-04-04T15:30:00Z"), utc("2026-04-04T18:00:00Z")))
        );
    }

    #[test]
    fn a_gap_at_midnight_moves_a_midnight_start_and_end_alike() {
        // Santiago, 2026-09-06: 00:00 -04 jumps to 01:00 -03 (04:00Z).
        let santiago = window("00:00", "02:00", "America/Santiago");
        assert_eq!(
            santiago.on(day("2026-09-06")),
            Some((utc("2026-09-06T04:00:00Z"), utc("2026-09-06T05:00:00Z")))
        );
        let evening = window("22:00", "24:00", "America/Santiago");
        assert_eq!(
            evening.on(day("2026-09-05")),
            Some((utc("2026-09-06T02:00:00Z"), utc("2026-09-06T04:00:00Z")))
        );
    }
}
