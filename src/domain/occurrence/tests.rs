//! Occurrence arithmetic across DST changes in a northern and a southern
//! zone, `24:00` ends, and the first and last days of a range.

use super::*;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn run(start: &str, end: &str) -> Occurrence {
    Occurrence {
        start: utc(start),
        end: utc(end),
    }
}

fn daily(range: (&str, &str), hours: (&str, &str), zone: &str) -> Schedule {
    let window = DailyWindow::parse(hours.0, hours.1, zone).unwrap();
    Schedule::new(utc(range.0), utc(range.1), Some(window))
}

fn continuous(start: &str, end: &str) -> Schedule {
    Schedule::new(utc(start), utc(end), None)
}

#[test]
fn a_continuous_promo_has_one_occurrence_its_window() {
    let schedule = continuous("2026-11-23T17:00:00Z", "2026-11-23T19:00:00Z");
    let only = run("2026-11-23T17:00:00Z", "2026-11-23T19:00:00Z");
    assert_eq!(schedule.occurrences().collect::<Vec<_>>(), vec![only]);
    assert_eq!(schedule.occurrence_at(utc("2026-11-23T16:59:59Z")), None);
    assert_eq!(
        schedule.current_or_next(utc("2026-11-23T16:00:00Z")),
        Some(only)
    );
    assert_eq!(
        schedule.occurrence_at(utc("2026-11-23T18:00:00Z")),
        Some(only)
    );
    assert_eq!(schedule.current_or_next(utc("2026-11-23T19:00:00Z")), None);
    assert_eq!(schedule.counted_at(utc("2026-11-24T00:00:00Z")), Some(only));
}

#[test]
fn the_range_cuts_the_first_and_last_days() {
    let schedule = daily(
        ("2026-11-23T23:30:00Z", "2026-11-26T00:15:00Z"),
        ("17:00", "19:00"),
        "America/Mexico_City",
    );
    assert_eq!(
        schedule.occurrences().collect::<Vec<_>>(),
        vec![
            run("2026-11-23T23:30:00Z", "2026-11-24T01:00:00Z"),
            run("2026-11-24T23:00:00Z", "2026-11-25T01:00:00Z"),
            run("2026-11-25T23:00:00Z", "2026-11-26T00:15:00Z"),
        ]
    );
    assert_eq!(
        schedule.last(),
        Some(run("2026-11-25T23:00:00Z", "2026-11-26T00:15:00Z"))
    );
}

#[test]
fn a_range_that_misses_the_hours_has_no_occurrence() {
    let schedule = daily(
        ("2026-11-23T10:00:00Z", "2026-11-23T12:00:00Z"),
        ("17:00", "19:00"),
        "UTC",
    );
    assert_eq!(schedule.occurrences().next(), None);
    assert_eq!(schedule.last(), None);
    assert_eq!(schedule.counted_at(utc("2026-11-23T11:00:00Z")), None);
}

#[test]
fn between_occurrences_the_next_one_is_shown_and_after_the_last_none() {
    let schedule = daily(
        ("2026-11-23T00:00:00Z", "2026-11-25T00:00:00Z"),
        ("17:00", "19:00"),
        "UTC",
    );
    let second = run("2026-11-24T17:00:00Z", "2026-11-24T19:00:00Z");
    let between = utc("2026-11-23T19:00:00Z");
    assert_eq!(schedule.occurrence_at(between), None);
    assert_eq!(schedule.current_or_next(between), Some(second));
    assert_eq!(schedule.next_occurrence_after(between), Some(second));
    assert_eq!(
        schedule.next_occurrence_after(utc("2026-11-24T17:00:00Z")),
        None
    );
    let after = utc("2026-11-24T19:00:00Z");
    assert_eq!(schedule.current_or_next(after), None);
    assert_eq!(schedule.counted_at(after), Some(second));
}

#[test]
fn an_all_day_window_makes_occurrences_that_touch_at_local_midnight() {
    let schedule = daily(
        ("2026-11-23T12:00:00Z", "2026-11-25T12:00:00Z"),
        ("00:00", "24:00"),
        "Europe/Berlin",
    );
    assert_eq!(
        schedule.occurrences().collect::<Vec<_>>(),
        vec![
            run("2026-11-23T12:00:00Z", "2026-11-23T23:00:00Z"),
            run("2026-11-23T23:00:00Z", "2026-11-24T23:00:00Z"),
            run("2026-11-24T23:00:00Z", "2026-11-25T12:00:00Z"),
        ]
    );
    let midnight = utc("2026-11-23T23:00:00Z");
    assert_eq!(
        schedule.occurrence_at(midnight),
        Some(run("2026-11-23T23:00:00Z", "2026-11-24T23:00:00Z"))
    );
}

#[test]
fn new_york_runs_shift_in_utc_across_both_changes() {
    let schedule = daily(
        ("2026-03-07T00:00:00Z", "2026-03-10T00:00:00Z"),
        ("02:30", "03:30"),
        "America/New_York",
    );
    assert_eq!(
        schedule.occurrences().collect::<Vec<_>>(),
        vec![
            run("2026-03-07T07:30:00Z", "2026-03-07T08:30:00Z"),
            // 02:30 does not exist: the run begins when 03:00 EDT does.
            run("2026-03-08T07:00:00Z", "2026-03-08T07:30:00Z"),
            run("2026-03-09T06:30:00Z", "2026-03-09T07:30:00Z"),
        ]
    );
    let autumn = daily(
        ("2026-10-31T00:00:00Z", "2026-11-02T00:00:00Z"),
        ("01:00", "02:00"),
        "America/New_York",
    );
    assert_eq!(
        autumn.occurrences().collect::<Vec<_>>(),
        vec![
            run("2026-10-31T05:00:00Z", "2026-10-31T06:00:00Z"),
            // 01:00 is ambiguous (the earlier, EDT); 02:00 EST is two hours on.
            run("2026-11-01T05:00:00Z", "2026-11-01T07:00:00Z"),
        ]
    );
}

#[test]
fn santiago_changes_at_midnight_and_24_00_follows_it() {
    let spring = daily(
        ("2026-09-05T00:00:00Z", "2026-09-08T00:00:00Z"),
        ("22:00", "24:00"),
        "America/Santiago",
    );
    assert_eq!(
        spring.occurrences().collect::<Vec<_>>(),
        vec![
            run("2026-09-05T02:00:00Z", "2026-09-05T04:00:00Z"),
            // Midnight does not exist on the 6th: the end is 01:00 -03.
            run("2026-09-06T02:00:00Z", "2026-09-06T04:00:00Z"),
            run("2026-09-07T01:00:00Z", "2026-09-07T03:00:00Z"),
        ]
    );
    let autumn = daily(
        ("2026-04-03T12:00:00Z", "2026-04-06T12:00:00Z"),
        ("23:00", "24:00"),
        "America/Santiago",
    );
    assert_eq!(
        autumn.occurrences().collect::<Vec<_>>(),
        vec![
            run("2026-04-04T02:00:00Z", "2026-04-04T03:00:00Z"),
            // 23:00 happens twice on the 4th: the earlier (-03); midnight once (-04).
            run("2026-04-05T02:00:00Z", "2026-04-05T04:00:00Z"),
            run("2026-04-06T03:00:00Z", "2026-04-06T04:00:00Z"),
        ]
    );
}

#[test]
fn sydney_keeps_its_hours_across_both_changes() {
    let schedule = daily(
        ("2026-04-03T00:00:00Z", "2026-04-06T00:00:00Z"),
        ("18:00", "20:00"),
        "Australia/Sydney",
    );
    assert_eq!(
        schedule.occurrences().collect::<Vec<_>>(),
        vec![
            run("2026-04-03T07:00:00Z", "2026-04-03T09:00:00Z"),
            run("2026-04-04T07:00:00Z", "2026-04-04T09:00:00Z"),
            // From the 5th Sydney is UTC+10.
            run("2026-04-05T08:00:00Z", "2026-04-05T10:00:00Z"),
        ]
    );
}

#[test]
fn the_current_occurrence_is_found_from_any_instant_of_it() {
    let schedule = daily(
        ("2026-01-01T00:00:00Z", "2026-12-31T00:00:00Z"),
        ("17:00", "19:00"),
        "America/Mexico_City",
    );
    let evening = run("2026-06-10T23:00:00Z", "2026-06-11T01:00:00Z");
    for instant in ["2026-06-10T23:00:00Z", "2026-06-11T00:59:59Z"] {
        assert_eq!(schedule.occurrence_at(utc(instant)), Some(evening));
    }
    assert_eq!(schedule.occurrence_at(utc("2026-06-11T01:00:00Z")), None);
    // The evening of 2025-12-31 local reaches into the range.
    assert_eq!(schedule.occurrences().count(), 365);
}

#[test]
fn daily_promos_with_disjoint_hours_do_not_overlap_but_shared_hours_do() {
    let range = ("2026-11-23T00:00:00Z", "2026-11-30T00:00:00Z");
    let evening = daily(range, ("17:00", "19:00"), "UTC");
    let morning = daily(range, ("08:00", "10:00"), "UTC");
    let touching = daily(range, ("19:00", "20:00"), "UTC");
    let late = daily(range, ("18:59", "20:00"), "UTC");
    assert!(!evening.overlaps(&morning));
    assert!(!evening.overlaps(&touching));
    assert!(evening.overlaps(&late) && late.overlaps(&evening));
    // The same hours in another zone: 17:00 Mexico City is 23:00 UTC.
    let mexico = daily(range, ("17:00", "19:00"), "America/Mexico_City");
    assert!(!evening.overlaps(&mexico));
    assert!(daily(range, ("22:30", "23:30"), "UTC").overlaps(&mexico));
}

#[test]
fn a_continuous_promo_overlaps_a_daily_one_only_at_its_hours() {
    let evening = daily(
        ("2026-11-23T00:00:00Z", "2026-11-30T00:00:00Z"),
        ("17:00", "19:00"),
        "UTC",
    );
    assert!(!continuous("2026-11-24T19:00:00Z", "2026-11-25T17:00:00Z").overlaps(&evening));
    assert!(continuous("2026-11-24T19:00:00Z", "2026-11-25T17:01:00Z").overlaps(&evening));
    assert!(evening.overlaps(&continuous("2026-11-29T18:00:00Z", "2026-12-29T18:00:00Z")));
    assert!(!evening.overlaps(&continuous("2026-11-30T00:00:00Z", "2026-12-29T18:00:00Z")));
}

#[test]
fn moving_the_start_of_the_running_occurrence_rekeys_it_and_a_later_one_is_new() {
    let range = ("2026-11-20T00:00:00Z", "2026-11-30T00:00:00Z");
    let before = daily(range, ("17:00", "19:00"), "UTC");
    let earlier = daily(range, ("16:00", "19:00"), "UTC");
    let now = utc("2026-11-23T18:00:00Z");
    assert_eq!(
        before.rekeyed_at(&earlier, now),
        Some((utc("2026-11-23T17:00:00Z"), utc("2026-11-23T16:00:00Z")))
    );
    assert_eq!(before.rekeyed_at(&before, now), None, "nothing moved");
    let later = daily(range, ("18:30", "19:00"), "UTC");
    assert_eq!(before.rekeyed_at(&later, now), None, "now is in none of it");
    let between = utc("2026-11-23T20:00:00Z");
    assert_eq!(before.rekeyed_at(&earlier, between), None);
    let whole = continuous(range.0, range.1);
    assert_eq!(
        before.rekeyed_at(&whole, now),
        None,
        "continuous has one stock"
    );
}
