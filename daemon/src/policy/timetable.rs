//! A week of wall-clock times at which a value changes: the rate limit's timetable
//! (`"08:00,2MiB 18:00,512KiB 23:00,off"`, `"Mon-Fri 09:00,1MiB Sat,Sun 00:00,off"`) and
//! the upload hours (`"22:00-07:00"`).
//!
//! Times are local wall-clock times, read in a time zone given by the caller (the system's
//! in the daemon, a fixed one in tests), because that is how people say them. Two things
//! make that harder than it looks, and both are settled here, once, for every policy:
//!
//! - When clocks go forward, a time in the gap never happens on the wall. A change set
//!   for it takes effect at the first moment after the gap, so its period is never
//!   skipped.
//! - When clocks go back, an hour of wall times happens twice. Its changes take effect
//!   the first time only; during the repeat the value in force at the end of the first
//!   pass stays, so no period runs twice.
//!
//! Pure: no clock, no I/O. The scheduler asks for the value now and for the next instant
//! it changes, and sets a timer for that instant.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    TimeZone, Timelike, Utc,
};

const MINUTES_A_DAY: u32 = 24 * 60;
const MINUTES_A_WEEK: u32 = 7 * MINUTES_A_DAY;
const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// A value that changes at fixed wall-clock times of the week.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timetable<V> {
    /// (minute of the week from Monday 00:00, the value from then on), in order, at least
    /// one. Before the first, the last one of the week before is in force.
    slots: Vec<(u32, V)>,
}

impl<V: Clone + PartialEq> Timetable<V> {
    /// The same value all week.
    pub fn constant(value: V) -> Timetable<V> {
        Timetable {
            slots: vec![(0, value)],
        }
    }

    /// True when the value never changes.
    pub fn is_constant(&self) -> bool {
        self.slots.iter().all(|(_, v)| *v == self.slots[0].1)
    }

    /// The value in force at `now`, read on the wall clock of `zone`.
    pub fn at<Tz: TimeZone>(&self, zone: &Tz, now: DateTime<Utc>) -> &V {
        self.value_at(week_minute(&wall_time(zone, now)))
    }

    /// The next instant after `now` at which the value changes, and the new value; `None`
    /// when it never does.
    pub fn next_change<Tz: TimeZone>(
        &self,
        zone: &Tz,
        now: DateTime<Utc>,
    ) -> Option<(DateTime<Utc>, &V)> {
        if self.is_constant() {
            return None;
        }
        let wall = wall_time(zone, now);
        let minute = week_minute(&wall);
        let current = self.value_at(minute);
        let week_start =
            wall.date() - Duration::days(i64::from(wall.weekday().num_days_from_monday()));
        // Slots after this minute this week, then every slot of the next week and the one
        // after (a change may be a week away), in time order.
        let ahead = (0..3u32).flat_map(|week| {
            self.slots
                .iter()
                .map(move |(at, value)| (week * MINUTES_A_WEEK + at, value))
        });
        // A change set in a wall time the clocks skip comes right after the gap, unless a
        // later one in the same gap undoes it by then.
        for (at, value) in ahead.filter(|&(at, _)| at > minute) {
            if value == current {
                continue;
            }
            let instant = first_instant_at_or_after(zone, wall_of(week_start, at));
            let then = self.at(zone, instant);
            if instant > now && then != current {
                return Some((instant, then));
            }
        }
        None
    }

    fn value_at(&self, minute: u32) -> &V {
        match self.slots.iter().rev().find(|(at, _)| *at <= minute) {
            Some((_, value)) => value,
            // Before the week's first change: the last one of the week before holds.
            None => &self.slots[self.slots.len() - 1].1,
        }
    }
}

impl Timetable<u64> {
    /// Reads a rate timetable: entries `HH:MM,RATE`, each optionally after a day token
    /// (`Mon-Fri`, `Sat,Sun`, `Tue`) that applies to the entries after it until the next;
    /// without one, an entry is for every day. `RATE` as `parse_rate` reads it (`off`: no
    /// limit, 0). A plain rate with no time is the same all week.
    pub fn parse_rates(
        text: &str,
        parse_rate: impl Fn(&str) -> Result<u64, String>,
    ) -> Result<Timetable<u64>, String> {
        let text = text.trim();
        // A plain rate has no comma; every timetable entry has one.
        if !text.contains(',') {
            return parse_rate(text).map(Timetable::constant).map_err(|e| {
                format!("{e}, nor a timetable like \"08:00,2MiB 18:00,512KiB 23:00,off\"")
            });
        }
        let mut days = Days::default();
        let mut slots: Vec<(u32, u64)> = Vec::new();
        for token in text.split_whitespace() {
            if let Some((time, rate)) = token.split_once(',').filter(|(t, _)| t.contains(':')) {
                let days = days.used();
                let minute = parse_time(time, false)?;
                let rate = if rate.eq_ignore_ascii_case("off") {
                    0
                } else {
                    parse_rate(rate)?
                };
                for day in days_of(days) {
                    let at = day * MINUTES_A_DAY + minute;
                    if slots.iter().any(|(other, _)| *other == at) {
                        return Err(format!(
                            "'{token}': {} {time} is given twice",
                            DAY_NAMES[day as usize]
                        ));
                    }
                    slots.push((at, rate));
                }
            } else {
                days.named(token)?;
            }
        }
        days.finish()?;
        if slots.is_empty() {
            return Err(format!(
                "'{text}' has no entry like \"08:00,2MiB\" (a time, a comma, a rate or off)"
            ));
        }
        slots.sort_by_key(|(at, _)| *at);
        Ok(Timetable { slots })
    }
}

impl Timetable<bool> {
    /// Reads upload hours: windows `HH:MM-HH:MM` (an end at or before the start runs past
    /// midnight; `24:00` is the end of the day), each optionally after a day token as in
    /// a rate timetable, the day being the one the window opens on. Windows may overlap.
    /// `true` inside a window.
    pub fn parse_hours(text: &str) -> Result<Timetable<bool>, String> {
        let mut open = vec![false; MINUTES_A_WEEK as usize];
        let mut days = Days::default();
        let mut any = false;
        for token in text.split_whitespace() {
            if let Some((from, to)) = token.split_once('-').filter(|(f, _)| f.contains(':')) {
                let days = days.used();
                let from = parse_time(from, false)?;
                let to = parse_time(to, true)?;
                let length = if to > from {
                    to - from
                } else {
                    to + MINUTES_A_DAY - from
                };
                for day in days_of(days) {
                    let start = day * MINUTES_A_DAY + from;
                    for minute in start..start + length {
                        open[(minute % MINUTES_A_WEEK) as usize] = true;
                    }
                }
                any = true;
            } else {
                days.named(token)?;
            }
        }
        days.finish()?;
        if !any {
            return Err(format!(
                "'{}' has no window like \"22:00-07:00\"",
                text.trim()
            ));
        }
        let mut slots = Vec::new();
        for (minute, &is_open) in open.iter().enumerate() {
            let before = open[(minute + open.len() - 1) % open.len()];
            if minute == 0 || is_open != before {
                slots.push((minute as u32, is_open));
            }
        }
        Ok(Timetable { slots })
    }
}

/// Days as bits, Monday the lowest.
const ALL_DAYS: u8 = 0b111_1111;

/// The days the entries being read are for: every day until a day token names some, and
/// a day token must be followed by an entry.
struct Days<'a> {
    days: u8,
    waiting: Option<&'a str>,
}

impl Default for Days<'_> {
    fn default() -> Self {
        Days {
            days: ALL_DAYS,
            waiting: None,
        }
    }
}

impl<'a> Days<'a> {
    fn named(&mut self, token: &'a str) -> Result<(), String> {
        self.finish()?;
        self.days = parse_days(token)?;
        self.waiting = Some(token);
        Ok(())
    }

    fn used(&mut self) -> u8 {
        self.waiting = None;
        self.days
    }

    fn finish(&self) -> Result<(), String> {
        match self.waiting {
            Some(token) => Err(format!("'{token}' names days for no entry")),
            None => Ok(()),
        }
    }
}

fn days_of(days: u8) -> impl Iterator<Item = u32> {
    (0..7u32).filter(move |day| days & (1 << day) != 0)
}

/// `Mon`, `Mon-Fri`, `Fri-Mon` (wrapping), `Sat,Sun`, `Mon-Wed,Fri`; names in any case.
fn parse_days(token: &str) -> Result<u8, String> {
    let day = |name: &str| {
        DAY_NAMES
            .iter()
            .position(|known| known.eq_ignore_ascii_case(name))
            .map(|i| i as u32)
            .ok_or_else(|| {
                format!("'{token}' is neither days (Mon-Fri, Sat,Sun) nor an entry: '{name}' is not a day")
            })
    };
    let mut days = 0u8;
    for part in token.split(',').filter(|part| !part.is_empty()) {
        match part.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (day(first)?, day(last)?);
                let mut d = first;
                loop {
                    days |= 1 << d;
                    if d == last {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days |= 1 << day(part)?,
        }
    }
    if days == 0 {
        return Err(format!("'{token}' names no day"));
    }
    Ok(days)
}

/// `HH:MM` as minutes of the day; `24:00` only where it ends a window.
fn parse_time(text: &str, end: bool) -> Result<u32, String> {
    let bad = || format!("'{text}' is not a time like \"08:00\"");
    let (hours, minutes) = text.split_once(':').ok_or_else(bad)?;
    if hours.is_empty() || hours.len() > 2 || minutes.len() != 2 {
        return Err(bad());
    }
    let hours: u32 = hours.parse().map_err(|_| bad())?;
    let minutes: u32 = minutes.parse().map_err(|_| bad())?;
    match (hours, minutes) {
        (24, 0) if end => Ok(MINUTES_A_DAY),
        (0..=23, 0..=59) => Ok(hours * 60 + minutes),
        _ => Err(bad()),
    }
}

/// The wall-clock time of `now` in `zone` as the timetable counts it: during the repeat of
/// an hour the clocks went back over, the last moment of its first pass.
fn wall_time<Tz: TimeZone>(zone: &Tz, now: DateTime<Utc>) -> NaiveDateTime {
    let here = now.with_timezone(zone);
    let wall = here.naive_local();
    let LocalResult::Ambiguous(first, _) = zone.from_local_datetime(&wall) else {
        return wall;
    };
    if first.with_timezone(&Utc) == now {
        return wall;
    }
    // The second pass: find where the repeated wall times begin, a minute at a time (an
    // hour at most; clocks change on minute boundaries), and hold at the wall time the
    // first pass ended on.
    let shift =
        i64::from(first.offset().fix().local_minus_utc() - here.offset().fix().local_minus_utc());
    let mut start = wall
        .with_second(0)
        .unwrap_or(wall)
        .with_nanosecond(0)
        .unwrap_or(wall);
    for _ in 0..MINUTES_A_DAY {
        let earlier = start - Duration::minutes(1);
        if !matches!(
            zone.from_local_datetime(&earlier),
            LocalResult::Ambiguous(..)
        ) {
            break;
        }
        start = earlier;
    }
    start + Duration::seconds(shift) - Duration::nanoseconds(1)
}

fn week_minute(wall: &NaiveDateTime) -> u32 {
    wall.weekday().num_days_from_monday() * MINUTES_A_DAY + wall.hour() * 60 + wall.minute()
}

fn wall_of(week_start: NaiveDate, minute: u32) -> NaiveDateTime {
    let day = week_start + Duration::days(i64::from(minute / MINUTES_A_DAY));
    let time = NaiveTime::from_num_seconds_from_midnight_opt((minute % MINUTES_A_DAY) * 60, 0)
        .unwrap_or(NaiveTime::MIN);
    day.and_time(time)
}

/// The first instant whose wall time in `zone` is `wall`, or, for a wall time the clocks
/// skipped, the first instant after the gap.
fn first_instant_at_or_after<Tz: TimeZone>(zone: &Tz, wall: NaiveDateTime) -> DateTime<Utc> {
    let mut probe = wall;
    for _ in 0..=MINUTES_A_DAY {
        match zone.from_local_datetime(&probe) {
            LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => {
                return at.with_timezone(&Utc)
            }
            LocalResult::None => probe += Duration::minutes(1),
        }
    }
    // No zone skips a day; read the wall time as UTC rather than never.
    wall.and_utc()
}

#[cfg(test)]
mod tests;
