//! `VirtualClock`: the time the conformance servers judge expiries, windows and quotas by,
//! so a test can compress a week into seconds or jump past a deadline without sleeping.
//!
//! Pure bookkeeping over `Instant`; it never sleeps and touches nothing else.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Real elapsed time × `scale`, plus whatever tests advanced it by.
#[derive(Debug)]
pub struct VirtualClock {
    start: Instant,
    scale: f64,
    advanced: Mutex<Duration>,
}

impl VirtualClock {
    /// A clock at zero now, running `scale` virtual seconds per real second (0: it moves only
    /// when advanced).
    pub fn new(scale: f64) -> VirtualClock {
        assert!(
            scale.is_finite() && scale >= 0.0,
            "time_scale must be a finite, non-negative number"
        );
        VirtualClock {
            start: Instant::now(),
            scale,
            advanced: Mutex::new(Duration::ZERO),
        }
    }

    /// Virtual time since the clock was made.
    pub fn now(&self) -> Duration {
        self.start.elapsed().mul_f64(self.scale) + *self.advanced()
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        *self.advanced() += by;
    }

    /// Virtual seconds per real second.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    fn advanced(&self) -> MutexGuard<'_, Duration> {
        self.advanced.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_clock_moves_only_when_advanced() {
        let clock = VirtualClock::new(0.0);
        assert_eq!(clock.now(), Duration::ZERO);
        clock.advance(Duration::from_secs(90));
        clock.advance(Duration::from_secs(10));
        assert_eq!(clock.now(), Duration::from_secs(100));
    }
}
