//! Pacific Time, as far as YouTube's quota day needs it: "Daily quotas reset at midnight
//! Pacific Time". US rules since 2007: daylight time from the second Sunday of March at 02:00
//! PST to the first Sunday of November at 02:00 PDT. Pure; touches nothing.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};

/// PST is UTC-8, PDT UTC-7.
const PST_HOURS: i64 = -8;
const PDT_HOURS: i64 = -7;

/// The `nth` (1-based) Sunday of a month.
fn nth_sunday(year: i32, month: u32, nth: u32) -> NaiveDate {
    let first = NaiveDate::from_ymd_opt(year, month, 1).expect("a valid month");
    let to_sunday = (7 - first.weekday().num_days_from_sunday()) % 7;
    first + Duration::days(i64::from(to_sunday + 7 * (nth - 1)))
}

/// When daylight time starts and ends in `year`, in UTC.
fn daylight_span(year: i32) -> (DateTime<Utc>, DateTime<Utc>) {
    let at = |date: NaiveDate, utc_hour: u32| {
        Utc.from_utc_datetime(&date.and_hms_opt(utc_hour, 0, 0).expect("a valid time"))
    };
    // 02:00 PST is 10:00 UTC; 02:00 PDT is 09:00 UTC.
    (
        at(nth_sunday(year, 3, 2), 10),
        at(nth_sunday(year, 11, 1), 9),
    )
}

/// Hours from UTC to Pacific Time at `utc`.
pub fn offset_hours(utc: DateTime<Utc>) -> i64 {
    let (start, end) = daylight_span(utc.year());
    if start <= utc && utc < end {
        PDT_HOURS
    } else {
        PST_HOURS
    }
}

/// The Pacific date at `utc`: the quota day.
pub fn quota_day(utc: DateTime<Utc>) -> NaiveDate {
    (utc + Duration::hours(offset_hours(utc))).date_naive()
}

/// The next midnight Pacific Time after `utc`, in UTC.
pub fn next_reset(utc: DateTime<Utc>) -> DateTime<Utc> {
    let next_day = quota_day(utc) + Duration::days(1);
    // Midnight is never inside a change (those happen at 02:00), so the offset of the day's
    // first hour is the offset at midnight: daylight from the day after the change in March
    // through the day of the change in November.
    let (start, end) = daylight_span(next_day.year());
    let daylight = start.date_naive() < next_day && next_day <= end.date_naive();
    let offset = if daylight { PDT_HOURS } else { PST_HOURS };
    Utc.from_utc_datetime(&next_day.and_hms_opt(0, 0, 0).expect("midnight"))
        - Duration::hours(offset)
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
    fn daylight_time_spans() {
        assert_eq!(
            nth_sunday(2025, 3, 2),
            NaiveDate::from_ymd_opt(2025, 3, 9).unwrap()
        );
        assert_eq!(
            nth_sunday(2025, 11, 1),
            NaiveDate::from_ymd_opt(2025, 11, 2).unwrap()
        );
        assert_eq!(
            nth_sunday(2026, 3, 2),
            NaiveDate::from_ymd_opt(2026, 3, 8).unwrap()
        );
        assert_eq!(offset_hours(utc("2025-01-15T09:00:00Z")), -8);
        assert_eq!(offset_hours(utc("2025-03-09T09:59:59Z")), -8);
        assert_eq!(offset_hours(utc("2025-03-09T10:00:00Z")), -7);
        assert_eq!(offset_hours(utc("2025-11-02T08:59:59Z")), -7);
        assert_eq!(offset_hours(utc("2025-11-02T09:00:00Z")), -8);
    }

    #[test]
    fn quota_days_and_resets() {
        // 2025-01-15 00:30 PST.
        let early = utc("2025-01-15T08:30:00Z");
        assert_eq!(
            quota_day(early),
            NaiveDate::from_ymd_opt(2025, 1, 15).unwrap()
        );
        assert_eq!(next_reset(early), utc("2025-01-16T08:00:00Z"));
        // 23:59 PST the day before.
        let late = utc("2025-01-15T07:59:00Z");
        assert_eq!(
            quota_day(late),
            NaiveDate::from_ymd_opt(2025, 1, 14).unwrap()
        );
        assert_eq!(next_reset(late), utc("2025-01-15T08:00:00Z"));
        // Summer: midnight PDT is 07:00 UTC.
        assert_eq!(
            next_reset(utc("2025-07-01T12:00:00Z")),
            utc("2025-07-02T07:00:00Z")
        );
        // The night before the spring change is still PST; the night after is PDT.
        assert_eq!(
            next_reset(utc("2025-03-08T12:00:00Z")),
            utc("2025-03-09T08:00:00Z")
        );
        assert_eq!(
            next_reset(utc("2025-03-09T12:00:00Z")),
            utc("2025-03-10T07:00:00Z")
        );
        // The night before the autumn change is PDT; the night after is PST.
        assert_eq!(
            next_reset(utc("2025-11-01T12:00:00Z")),
            utc("2025-11-02T07:00:00Z")
        );
        assert_eq!(
            next_reset(utc("2025-11-02T12:00:00Z")),
            utc("2025-11-03T08:00:00Z")
        );
    }
}
