//! Parsing of command-line values: rates, durations, points in time, `KEY=VALUE` pairs.
//! Pure functions used as clap value parsers; no I/O and no talking to the daemon.

use std::time::Duration;

use bytesize::ByteSize;
use chrono::{DateTime, Local, NaiveDateTime, TimeZone, Utc};

/// A rate such as "4MiB", "500 KiB/s", "10MB" in bytes per second; "0" or "none" is no limit.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    if ["none", "off", "unlimited"]
        .iter()
        .any(|word| trimmed.eq_ignore_ascii_case(word))
    {
        return Ok(0);
    }
    let without_per_second = trimmed
        .strip_suffix("/s")
        .or_else(|| trimmed.strip_suffix("/S"))
        .unwrap_or(trimmed)
        .trim_end();
    if without_per_second.is_empty() {
        return Err("give a rate such as 4MiB, 500KiB or none".into());
    }
    without_per_second
        .parse::<ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|_| {
            format!(
                "'{text}' is not a rate; use a size per second such as 4MiB, 500KiB, 10MB, or none"
            )
        })
}

/// A duration such as "10m", "2s", "1h 30m".
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("'{text}' is not a duration ({e}); use e.g. 90s, 10m, 1h 30m"))
}

/// A duration in whole milliseconds, saturating (the wire carries `u64` milliseconds).
pub fn duration_to_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A point in time: RFC 3339 ("2026-12-01T18:00:00Z") or "YYYY-MM-DD HH:MM[:SS]" in local time.
pub fn parse_at(text: &str) -> Result<DateTime<Utc>, String> {
    parse_at_in(text, &Local)
}

/// [`parse_at`] with the zone that zone-less times are read in.
pub fn parse_at_in<Tz: TimeZone>(text: &str, zone: &Tz) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    const LOCAL_FORMATS: [&str; 4] = [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ];
    let naive = LOCAL_FORMATS
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .ok_or_else(|| {
            format!(
                "'{text}' is not a time; use RFC 3339 (2026-12-01T18:00:00Z) \
                 or local time as \"2026-12-01 18:00\""
            )
        })?;
    // In a daylight-saving overlap the earlier of the two instants is taken.
    zone.from_local_datetime(&naive)
        .earliest()
        .map(|time| time.with_timezone(&Utc))
        .ok_or_else(|| {
            format!("'{text}' does not exist in the local time zone (a clock change skips it)")
        })
}

/// A `KEY=VALUE` pair for `--meta`; the value may be empty, the key may not.
pub fn parse_meta(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("'{text}' is not KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    #[test]
    fn rates_in_binary_and_decimal_units() {
        assert_eq!(parse_rate("4MiB"), Ok(4 * 1024 * 1024));
        assert_eq!(parse_rate("500KiB"), Ok(500 * 1024));
        assert_eq!(parse_rate("10MB"), Ok(10_000_000));
        assert_eq!(parse_rate("4 MiB/s"), Ok(4 * 1024 * 1024));
        assert_eq!(parse_rate("1.5MiB"), Ok(1_572_864));
        assert_eq!(parse_rate("123"), Ok(123));
    }

    #[test]
    fn no_limit_spellings() {
        assert_eq!(parse_rate("0"), Ok(0));
        assert_eq!(parse_rate("none"), Ok(0));
        assert_eq!(parse_rate("NONE"), Ok(0));
        assert_eq!(parse_rate("unlimited"), Ok(0));
    }

    #[test]
    fn bad_rates_are_refused() {
        for bad in ["", "fast", "-4MiB", "4 parsecs", "/s", "MiB"] {
            assert!(parse_rate(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("10").is_err());
        assert_eq!(duration_to_ms(Duration::from_secs(2)), 2000);
        assert_eq!(duration_to_ms(Duration::MAX), u64::MAX);
    }

    #[test]
    fn rfc3339_times_keep_their_offset() {
        let utc = FixedOffset::east_opt(0).unwrap();
        assert_eq!(
            parse_at_in("2026-12-01T18:00:00Z", &utc)
                .unwrap()
                .to_rfc3339(),
            "2026-12-01T18:00:00+00:00"
        );
        assert_eq!(
            parse_at_in("2026-12-01T18:00:00+02:00", &utc)
                .unwrap()
                .to_rfc3339(),
            "2026-12-01T16:00:00+00:00"
        );
    }

    #[test]
    fn zone_less_times_are_local() {
        let paris_winter = FixedOffset::east_opt(3600).unwrap();
        assert_eq!(
            parse_at_in("2026-12-01 18:00", &paris_winter)
                .unwrap()
                .to_rfc3339(),
            "2026-12-01T17:00:00+00:00"
        );
        assert_eq!(
            parse_at_in("2026-12-01 18:00:30", &paris_winter)
                .unwrap()
                .to_rfc3339(),
            "2026-12-01T17:00:30+00:00"
        );
        assert_eq!(
            parse_at_in("2026-12-01T18:00", &paris_winter)
                .unwrap()
                .to_rfc3339(),
            "2026-12-01T17:00:00+00:00"
        );
    }

    #[test]
    fn bad_times_are_refused() {
        let utc = FixedOffset::east_opt(0).unwrap();
        for bad in ["tomorrow", "2026-13-01 10:00", "18:00", "2026-12-01"] {
            assert!(parse_at_in(bad, &utc).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn meta_pairs() {
        assert_eq!(
            parse_meta("category=travel"),
            Ok(("category".into(), "travel".into()))
        );
        assert_eq!(parse_meta("tags=a=b"), Ok(("tags".into(), "a=b".into())));
        assert_eq!(parse_meta("empty="), Ok(("empty".into(), String::new())));
        assert!(parse_meta("novalue").is_err());
        assert!(parse_meta("=x").is_err());
    }
}
