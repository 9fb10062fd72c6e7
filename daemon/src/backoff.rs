//! Retry delays: exponential backoff with full jitter.
//!
//! Pure arithmetic over the retry settings and a random source; the caller owns the clock.

use std::time::Duration;

use rand::Rng;

use crate::config::RetrySettings;

/// The ceiling for attempt `attempt` (1-based): `base * 2^(attempt-1)`, capped at `max_delay`.
pub fn ceiling(settings: &RetrySettings, attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(30);
    settings
        .base_delay
        .saturating_mul(1u32 << exponent)
        .min(settings.max_delay)
}

/// A delay drawn uniformly from `[0, ceiling]` ("full jitter"), but never shorter than
/// what the server asked for with `Retry-After`.
pub fn delay(
    settings: &RetrySettings,
    attempt: u32,
    server_asked: Option<Duration>,
    rng: &mut impl Rng,
) -> Duration {
    let ceiling = ceiling(settings, attempt);
    let jittered = Duration::from_secs_f64(rng.random_range(0.0..=ceiling.as_secs_f64()));
    match server_asked {
        Some(asked) => jittered.max(asked),
        None => jittered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn grows_then_caps() {
        let settings = RetrySettings::default();
        assert_eq!(ceiling(&settings, 1), Duration::from_secs(1));
        assert_eq!(ceiling(&settings, 4), Duration::from_secs(8));
        assert_eq!(ceiling(&settings, 20), Duration::from_secs(300));
        assert_eq!(ceiling(&settings, u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn jitter_stays_in_bounds_and_honours_retry_after() {
        let settings = RetrySettings::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for attempt in 1..12 {
            let d = delay(&settings, attempt, None, &mut rng);
            assert!(d <= ceiling(&settings, attempt));
            let d = delay(&settings, attempt, Some(Duration::from_secs(2)), &mut rng);
            assert!(d >= Duration::from_secs(2));
        }
    }
}
