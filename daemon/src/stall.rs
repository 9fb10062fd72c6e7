//! Stall detection for one upload attempt: a deadline re-armed by every piece that
//! moves, and an optional throughput floor averaged over the same window.
//!
//! Pure timing over a `Progress`; the worker decides what a stall does to the job.

use std::time::Duration;

use tokio::time::Instant;

use crate::pacer::Progress;

/// When an attempt counts as stalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StallSettings {
    /// No byte moved for this long.
    pub timeout: Duration,
    /// Fewer bytes per second than this, averaged over `timeout`; 0 turns the floor off.
    pub min_speed: u64,
}

/// Why an attempt was declared stalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    /// Nothing moved for `idle`; `last_speed` is the average over the window before.
    NoProgress { idle: Duration, last_speed: u64 },
    /// Bytes trickled at `speed` over `window`, under the configured floor.
    TooSlow {
        speed: u64,
        floor: u64,
        window: Duration,
    },
}

fn human_rate(bytes_per_second: u64) -> String {
    const UNITS: [&str; 4] = ["B/s", "KiB/s", "MiB/s", "GiB/s"];
    let mut value = bytes_per_second as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes_per_second} B/s")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

impl Stall {
    pub fn message(&self) -> String {
        match self {
            Stall::NoProgress { idle, last_speed } => format!(
                "no progress for {} s (last speed {})",
                idle.as_secs(),
                human_rate(*last_speed)
            ),
            Stall::TooSlow {
                speed,
                floor,
                window,
            } => format!(
                "only {} over the last {} s, under the {} floor (min_speed)",
                human_rate(*speed),
                window.as_secs(),
                human_rate(*floor)
            ),
        }
    }
}

/// Like [`watch`], but only while `active` is true: the upload phase of an attempt, not
/// the processing that follows it.
pub async fn watch_while(
    progress: &Progress,
    settings: StallSettings,
    mut active: tokio::sync::watch::Receiver<bool>,
) -> Stall {
    loop {
        while !*active.borrow_and_update() {
            if active.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
        let ended = async {
            while *active.borrow_and_update() {
                if active.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
        };
        tokio::select! {
            stall = watch(progress, settings) => return stall,
            _ = ended => {}
        }
    }
}

/// Resolves when the attempt stalls; runs as long as the attempt does otherwise.
pub async fn watch(progress: &Progress, settings: StallSettings) -> Stall {
    let started = Instant::now();
    let mut last_move = started;
    let mut window_start = (started, progress.pushed());
    let mut last_speed = 0u64;
    loop {
        let moved = progress.moved.notified();
        tokio::pin!(moved);
        // Registered before the deadline is computed, so no move is missed.
        moved.as_mut().enable();
        let idle_deadline = last_move + settings.timeout;
        let window_end = window_start.0 + settings.timeout;
        tokio::select! {
            _ = &mut moved => last_move = Instant::now(),
            _ = tokio::time::sleep_until(idle_deadline) => {
                if settings.min_speed > 0 {
                    // With a floor set, a silent window is the floor's business: nothing
                    // (at the granularity of a piece) moved in it.
                    let now = Instant::now();
                    let window = now.duration_since(window_start.0).max(settings.timeout);
                    let moved = progress.pushed().saturating_sub(window_start.1);
                    let speed = (moved as f64 / window.as_secs_f64()) as u64;
                    return Stall::TooSlow { speed, floor: settings.min_speed, window: settings.timeout };
                }
                return Stall::NoProgress { idle: settings.timeout, last_speed };
            }
            _ = tokio::time::sleep_until(window_end) => {
                let pushed = progress.pushed();
                let elapsed = window_end.duration_since(window_start.0).as_secs_f64().max(0.001);
                let speed = (pushed.saturating_sub(window_start.1) as f64 / elapsed) as u64;
                if settings.min_speed > 0 && speed < settings.min_speed {
                    return Stall::TooSlow { speed, floor: settings.min_speed, window: settings.timeout };
                }
                last_speed = speed;
                window_start = (window_end, pushed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacer::{Pacer, RateLimiter};
    use std::sync::Arc;

    fn pacer() -> (Pacer, Arc<Progress>) {
        let progress = Arc::new(Progress::default());
        (
            Pacer::new(Arc::new(RateLimiter::new(0)), progress.clone()),
            progress,
        )
    }

    const SETTINGS: StallSettings = StallSettings {
        timeout: Duration::from_secs(2),
        min_speed: 0,
    };

    #[tokio::test(start_paused = true)]
    async fn silence_is_a_stall_after_the_timeout() {
        let (_pacer, progress) = pacer();
        let start = Instant::now();
        let stall = watch(&progress, SETTINGS).await;
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert!(matches!(stall, Stall::NoProgress { .. }), "{stall:?}");
        assert!(
            stall.message().contains("no progress for 2 s"),
            "{}",
            stall.message()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn progress_rearms_the_deadline() {
        let (pacer, progress) = pacer();
        let mover = tokio::spawn(async move {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                pacer.sent(1024 * 1024);
            }
        });
        let start = Instant::now();
        let stall = watch(&progress, SETTINGS).await;
        // Ten moves 1.5 s apart, then silence: the stall comes 2 s after the last move.
        assert_eq!(start.elapsed(), Duration::from_millis(15_000 + 2_000));
        assert!(
            matches!(stall, Stall::NoProgress { last_speed, .. } if last_speed > 0),
            "{stall:?}"
        );
        mover.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_under_the_floor_is_a_stall() {
        let (pacer, progress) = pacer();
        let mover = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                pacer.sent(100); // 1 KiB/s
            }
        });
        let settings = StallSettings {
            timeout: Duration::from_secs(2),
            min_speed: 64 * 1024,
        };
        let start = Instant::now();
        let stall = watch(&progress, settings).await;
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert!(
            matches!(stall, Stall::TooSlow { speed, .. } if speed < 2000),
            "{stall:?}"
        );
        assert!(stall.message().contains("min_speed"), "{}", stall.message());
        mover.abort();
    }

    #[test]
    fn rates_read_well() {
        assert_eq!(human_rate(512), "512 B/s");
        assert_eq!(human_rate(64 * 1024), "64.0 KiB/s");
        assert_eq!(human_rate(3 * 1024 * 1024 / 2), "1.5 MiB/s");
    }
}
