//! The time zone policies read wall-clock times in: the system's in the daemon (it follows
//! `TZ` and `/etc/localtime`, summer time included), a fixed offset in the core's tests.

use chrono::{DateTime, FixedOffset, Local, Utc};

use super::Timetable;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    Local,
    Fixed(FixedOffset),
}

impl Zone {
    /// The value `table` gives at `now`.
    pub fn value<V: Clone + PartialEq>(self, table: &Timetable<V>, now: DateTime<Utc>) -> &V {
        match self {
            Zone::Local => table.at(&Local, now),
            Zone::Fixed(offset) => table.at(&offset, now),
        }
    }

    /// When `table` next changes after `now`, and to what.
    pub fn next_change<V: Clone + PartialEq>(
        self,
        table: &Timetable<V>,
        now: DateTime<Utc>,
    ) -> Option<(DateTime<Utc>, &V)> {
        match self {
            Zone::Local => table.next_change(&Local, now),
            Zone::Fixed(offset) => table.next_change(&offset, now),
        }
    }

    /// `at` on this zone's wall clock for messages: "22:00" when it is less than a day
    /// after `now` (so the time of day says which day), "Mon 22:00" otherwise.
    pub fn wall(self, at: DateTime<Utc>, now: DateTime<Utc>) -> String {
        let format = if at - now < chrono::Duration::hours(24) {
            "%H:%M"
        } else {
            "%a %H:%M"
        };
        match self {
            Zone::Local => at.with_timezone(&Local).format(format).to_string(),
            Zone::Fixed(offset) => at.with_timezone(&offset).format(format).to_string(),
        }
    }
}
