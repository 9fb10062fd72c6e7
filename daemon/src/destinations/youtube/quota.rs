//! When YouTube's daily quotas start afresh: the API quota at midnight Pacific Time, and a
//! channel's upload limit a day after it was reached.
//!
//! Pacific Time is UTC−8, or UTC−7 from the second Sunday of March, 02:00 local, to the first
//! Sunday of November, 02:00 local (the US rule since 2007). Worked out here rather than with
//! a time-zone database: this is the only zone upq needs.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc, Weekday};

/// The `n`th `weekday` of `month` in `year` (n from 1).
fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u32) -> NaiveDate {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n as u8)
        .expect("every month has a first and a second of each weekday")
}

/// Whether daylight saving time is in force at `at`.
fn daylight(at: DateTime<Utc>) -> bool {
    let year = at.year();
    // 02:00 PST on the second Sunday of March is 10:00 UTC; 02:00 PDT on the first Sunday of
    // November is 09:00 UTC.
    let starts = Utc.from_utc_datetime(
        &nth_weekday(year, 3, Weekday::Sun, 2)
            .and_hms_opt(10, 0, 0)
            .expect("a valid time"),
    );
    let ends = Utc.from_utc_datetime(
        &nth_weekday(year, 11, Weekday::Sun, 1)
            .and_hms_opt(9, 0, 0)
            .expect("a valid time"),
    );
    at >= starts && at < ends
}

/// The offset of Pacific Time from UTC at `at`.
fn pacific_offset(at: DateTime<Utc>) -> Duration {
    Duration::hours(if daylight(at) { -7 } else { -8 })
}

/// The next midnight in Pacific Time after `now`: when the API quota is reset.
pub fn next_pacific_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    let local: NaiveDateTime = (now + pacific_offset(now)).naive_utc();
    let tomorrow = local.date().succ_opt().expect("not the end of time");
    let midnight = tomorrow.and_hms_opt(0, 0, 0).expect("a valid time");
    // The offset at midnight itself (the switch happens at 02:00, never at midnight).
    let guess = Utc.from_utc_datetime(&midnight) + Duration::hours(8);
    Utc.from_utc_datetime(&midnight) - pacific_offset(guess)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn winter_midnight_is_eight_in_the_morning_utc() {
        assert_eq!(
            next_pacific_midnight(utc("2026-12-02T13:00:00Z")),
            utc("2026-12-03T08:00:00Z")
        );
        // Just before midnight Pacific (07:59 UTC) the reset is a minute away.
        assert_eq!(
            next_pacific_midnight(utc("2026-12-03T07:59:00Z")),
            utc("2026-12-03T08:00:00Z")
        );
        assert_eq!(
            next_pacific_midnight(utc("2026-12-03T08:00:00Z")),
            utc("2026-12-04T08:00:00Z")
        );
    }

    #[test]
    fn summer_midnight_is_seven_in_the_morning_utc() {
        assert_eq!(
            next_pacific_midnight(utc("2026-07-01T12:00:00Z")),
            utc("2026-07-02T07:00:00Z")
        );
    }

    #[test]
    fn the_switches_follow_the_us_rule() {
        // 2026: DST from Sunday 8 March to Sunday 1 November.
        assert!(!daylight(utc("2026-03-08T09:59:00Z")));
        assert!(daylight(utc("2026-03-08T10:00:00Z")));
        assert!(daylight(utc("2026-11-01T08:59:00Z")));
        assert!(!daylight(utc("2026-11-01T09:00:00Z")));
        // The night of the spring switch: midnight of 9 March is PDT.
        assert_eq!(
            next_pacific_midnight(utc("2026-03-08T12:00:00Z")),
            utc("2026-03-09T07:00:00Z")
        );
        // The night of the autumn switch: midnight of 2 November is PST.
        assert_eq!(
            next_pacific_midnight(utc("2026-11-01T12:00:00Z")),
            utc("2026-11-02T08:00:00Z")
        );
    }
}
