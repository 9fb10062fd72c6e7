//! The timetable in a zone with summer time (Europe/Berlin): boundaries at midnight and
//! across the week, both clock changes, and the property that the value never changes
//! between now and the next change it names.

use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Europe::Berlin;
use proptest::prelude::*;

use super::Timetable;

const MIB: u64 = 1024 * 1024;
const KIB: u64 = 1024;

fn rate(text: &str) -> Result<u64, String> {
    crate::config::parse_size(text)
}

fn rates(text: &str) -> Timetable<u64> {
    Timetable::parse_rates(text, rate).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn hours(text: &str) -> Timetable<bool> {
    Timetable::parse_hours(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// A Berlin wall time that exists once.
fn berlin(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Berlin
        .with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("a wall time that happens once")
        .with_timezone(&Utc)
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

#[test]
fn a_daily_rate_timetable_wraps_over_midnight() {
    let table = rates("08:00,2MiB 18:00,512KiB 23:00,off");
    // 2026-12-02 is a Wednesday.
    assert_eq!(
        *table.at(&Berlin, berlin(2026, 12, 2, 7, 59)),
        0,
        "off since 23:00"
    );
    assert_eq!(*table.at(&Berlin, berlin(2026, 12, 2, 8, 0)), 2 * MIB);
    assert_eq!(*table.at(&Berlin, berlin(2026, 12, 2, 17, 59)), 2 * MIB);
    assert_eq!(*table.at(&Berlin, berlin(2026, 12, 2, 18, 30)), 512 * KIB);
    assert_eq!(*table.at(&Berlin, berlin(2026, 12, 2, 23, 0)), 0);
    assert_eq!(
        table.next_change(&Berlin, berlin(2026, 12, 2, 23, 30)),
        Some((berlin(2026, 12, 3, 8, 0), &(2 * MIB))),
        "the next change is past midnight"
    );
    let midnight = rates("00:00,1MiB 12:00,off");
    let just_before = berlin(2026, 12, 2, 23, 59) + Duration::seconds(59);
    assert_eq!(*midnight.at(&Berlin, just_before), 0);
    assert_eq!(
        midnight.next_change(&Berlin, just_before),
        Some((berlin(2026, 12, 3, 0, 0), &MIB))
    );
    assert_eq!(*midnight.at(&Berlin, berlin(2026, 12, 3, 0, 0)), MIB);
}

#[test]
fn days_of_the_week_choose_which_days_an_entry_is_for() {
    let table = rates("Mon-Fri 09:00,1MiB 17:00,off Sat,Sun 10:00,4MiB 20:00,off");
    // Friday 2026-12-04, Saturday the 5th, Monday the 7th.
    assert_eq!(*table.at(&Berlin, berlin(2026, 12, 4, 12, 0)), MIB);
    assert_eq!(*table.at(&Berlin, berlin(2026, 12, 5, 9, 0)), 0);
    assert_eq!(*table.at(&Berlin, berlin(2026, 12, 5, 10, 0)), 4 * MIB);
    assert_eq!(
        *table.at(&Berlin, berlin(2026, 12, 7, 8, 0)),
        0,
        "off since Sunday 20:00"
    );
    assert_eq!(
        table.next_change(&Berlin, berlin(2026, 12, 6, 21, 0)),
        Some((berlin(2026, 12, 7, 9, 0), &MIB))
    );
    // A range may wrap over the week's end.
    let weekend = rates("Fri-Mon 12:00,1MiB 13:00,off");
    assert_eq!(
        *weekend.at(&Berlin, berlin(2026, 12, 7, 12, 30)),
        MIB,
        "Monday"
    );
    assert_eq!(
        *weekend.at(&Berlin, berlin(2026, 12, 8, 12, 30)),
        0,
        "Tuesday"
    );
}

#[test]
fn a_plain_rate_is_the_same_all_week() {
    let table = rates("4MiB");
    assert!(table.is_constant());
    assert_eq!(*table.at(&Berlin, berlin(2026, 12, 2, 3, 0)), 4 * MIB);
    assert_eq!(table.next_change(&Berlin, berlin(2026, 12, 2, 3, 0)), None);
}

#[test]
fn bad_timetables_are_refused_with_what_is_wrong() {
    for (text, wanted) in [
        ("25:00,1MiB", "'25:00' is not a time"),
        ("8:0,1MiB", "'8:0' is not a time"),
        ("Mon-Fx 09:00,1MiB", "'Fx' is not a day"),
        ("08:00,lots", "'lots' is not a size"),
        ("08:00,1MiB 08:00,2MiB", "Mon 08:00 is given twice"),
        ("Mon-Fri", "nor a timetable like"),
        ("Mon-Fri 09:00,1MiB Sat", "'Sat' names days for no entry"),
        ("Sat,Sun", "'Sat,Sun' names days for no entry"),
    ] {
        let error = Timetable::parse_rates(text, rate).expect_err(text);
        assert!(error.contains(wanted), "{text}: {error}");
    }
    for (text, wanted) in [
        ("22:00", "is neither days"),
        ("22:00-31:00", "'31:00' is not a time"),
        ("24:00-07:00", "'24:00' is not a time"),
        ("Sat,Sun", "'Sat,Sun' names days for no entry"),
        ("", "has no window"),
    ] {
        let error = Timetable::parse_hours(text).expect_err(text);
        assert!(error.contains(wanted), "{text}: {error}");
    }
}

#[test]
fn upload_hours_run_past_midnight_and_may_overlap() {
    let night = hours("22:00-07:00");
    assert!(!*night.at(&Berlin, berlin(2026, 12, 2, 21, 59)));
    assert!(*night.at(&Berlin, berlin(2026, 12, 2, 22, 0)));
    assert!(*night.at(&Berlin, berlin(2026, 12, 3, 6, 59)));
    assert!(!*night.at(&Berlin, berlin(2026, 12, 3, 7, 0)));
    assert_eq!(
        night.next_change(&Berlin, berlin(2026, 12, 3, 12, 0)),
        Some((berlin(2026, 12, 3, 22, 0), &true))
    );
    let all_day = hours("00:00-24:00");
    assert!(all_day.is_constant() && *all_day.at(&Berlin, berlin(2026, 12, 2, 3, 0)));
    let overlapping = hours("09:00-12:00 11:00-14:00 Sat 20:00-02:00");
    assert!(*overlapping.at(&Berlin, berlin(2026, 12, 2, 13, 0)));
    assert_eq!(
        overlapping.next_change(&Berlin, berlin(2026, 12, 2, 10, 0)),
        Some((berlin(2026, 12, 2, 14, 0), &false)),
        "one window from 09:00 to 14:00"
    );
    // Saturday 20:00 runs into Sunday 02:00.
    assert!(*overlapping.at(&Berlin, berlin(2026, 12, 6, 1, 0)));
    assert!(!*overlapping.at(&Berlin, berlin(2026, 12, 7, 1, 0)));
}

#[test]
fn a_change_in_the_hour_clocks_skip_takes_effect_right_after_it() {
    // Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC).
    let table = rates("02:30,1MiB 05:00,off");
    let before = utc(2026, 3, 29, 0, 59);
    assert_eq!(*table.at(&Berlin, before), 0);
    assert_eq!(
        table.next_change(&Berlin, before),
        Some((utc(2026, 3, 29, 1, 0), &MIB)),
        "02:30 never shows on the wall: the change comes at 03:00 CEST"
    );
    assert_eq!(
        *table.at(&Berlin, utc(2026, 3, 29, 1, 0)),
        MIB,
        "not skipped"
    );
    // A window wholly inside the gap has no wall time that day: it does not open then.
    let window = hours("02:15-02:45");
    assert_eq!(
        window.next_change(&Berlin, before),
        Some((utc(2026, 3, 30, 0, 15), &true)),
        "the next day's 02:15 CEST"
    );
    assert!(!*window.at(&Berlin, utc(2026, 3, 29, 1, 0)));
}

#[test]
fn an_hour_the_clocks_repeat_runs_its_changes_once() {
    // Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET at 01:00 UTC, so 02:00-03:00
    // happens from 00:00 to 01:00 UTC and again from 01:00 to 02:00 UTC.
    let window = hours("02:30-02:45");
    assert!(
        *window.at(&Berlin, utc(2026, 10, 25, 0, 30)),
        "first pass: open"
    );
    assert!(
        !*window.at(&Berlin, utc(2026, 10, 25, 0, 45)),
        "first pass: closed"
    );
    assert!(
        !*window.at(&Berlin, utc(2026, 10, 25, 1, 35)),
        "the repeat does not open it a second time"
    );
    assert_eq!(
        window.next_change(&Berlin, utc(2026, 10, 25, 0, 45)),
        Some((utc(2026, 10, 26, 1, 30), &true)),
        "next open is the next day's 02:30 CET"
    );
    // A period that began in the repeated hour holds through the repeat.
    let table = rates("01:00,off 02:30,1MiB 04:00,2MiB");
    assert_eq!(*table.at(&Berlin, utc(2026, 10, 25, 0, 40)), MIB);
    assert_eq!(
        *table.at(&Berlin, utc(2026, 10, 25, 1, 10)),
        MIB,
        "the repeat of 02:10 does not go back to 01:00's period"
    );
    assert_eq!(
        table.next_change(&Berlin, utc(2026, 10, 25, 1, 10)),
        Some((utc(2026, 10, 25, 3, 0), &(2 * MIB))),
        "04:00 CET"
    );
}

fn entry() -> impl Strategy<Value = (Option<u8>, u32, u32)> {
    (
        proptest::option::of(0u8..7),
        0u32..24 * 60,
        prop_oneof![Just(0u32), 1u32..4],
    )
}

proptest! {
    /// Between now and the next change it names, the value is the one now; at that
    /// instant it is the one named; and the change is never more than a week and a day
    /// away. Around both of 2026's clock changes and in between.
    #[test]
    fn the_value_holds_until_the_change_named(
        entries in proptest::collection::vec(entry(), 1..6),
        offset_minutes in 0i64..(9 * 24 * 60),
        start in prop_oneof![Just(utc(2026, 3, 27, 0, 0)), Just(utc(2026, 10, 23, 0, 0)), Just(utc(2026, 6, 1, 0, 0))],
    ) {
        let mut text = String::new();
        let mut used = std::collections::BTreeSet::new();
        for (day, minute, mebibytes) in entries {
            if !used.insert((day, minute)) {
                continue;
            }
            if let Some(day) = day {
                text.push_str(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][day as usize]);
                text.push(' ');
            }
            let rate = if mebibytes == 0 { "off".to_string() } else { format!("{mebibytes}MiB") };
            text.push_str(&format!("{:02}:{:02},{rate} ", minute / 60, minute % 60));
        }
        // A day token applies to what follows: sort nothing, but skip tables that give a
        // day's minute twice.
        let Ok(table) = Timetable::parse_rates(&text, rate) else { return Ok(()) };
        let now = start + Duration::minutes(offset_minutes) + Duration::seconds(17);
        let current = *table.at(&Berlin, now);
        match table.next_change(&Berlin, now) {
            None => prop_assert!(table.is_constant()),
            Some((at, value)) => {
                prop_assert!(at > now);
                prop_assert!(at - now <= Duration::days(8), "{text}: {at} from {now}");
                prop_assert_eq!(*table.at(&Berlin, at), *value, "{} at {}", text, at);
                prop_assert_ne!(*value, current);
                let mut probe = now;
                while probe < at {
                    prop_assert_eq!(*table.at(&Berlin, probe), current, "{} at {}", text, probe);
                    probe += Duration::minutes(7);
                }
            }
        }
    }
}
