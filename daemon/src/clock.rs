//! Where the service, scheduler and workers take "now" from: the wall clock in the daemon,
//! a clock that follows tokio's (pausable) time in tests.
//!
//! Only says what time it is; it never sleeps or schedules anything itself.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::policy::Zone;

/// The time of day, as the core sees it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;

    /// The zone wall-clock policies (timetables, upload hours) are read in.
    fn zone(&self) -> Zone {
        Zone::Local
    }
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A wall clock that starts at a given time and advances with tokio's clock, so a test that
/// pauses and advances tokio's time sees timers and timestamps agree.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start: DateTime<Utc>,
    started: tokio::time::Instant,
    /// Wall-clock policies are read in UTC, whatever zone the machine is in.
    zone: chrono::FixedOffset,
}

impl TokioClock {
    pub fn starting_at(start: DateTime<Utc>) -> TokioClock {
        TokioClock {
            start,
            started: tokio::time::Instant::now(),
            zone: chrono::FixedOffset::east_opt(0).expect("UTC is an offset"),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = chrono::Duration::from_std(self.started.elapsed()).unwrap_or_default();
        self.start + elapsed
    }

    fn zone(&self) -> Zone {
        Zone::Fixed(self.zone)
    }
}

/// The clock the daemon runs with.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn the_tokio_clock_follows_paused_time() {
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = TokioClock::starting_at(start);
        assert_eq!(clock.now(), start);
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(clock.now(), start + chrono::Duration::seconds(90));
    }
}
