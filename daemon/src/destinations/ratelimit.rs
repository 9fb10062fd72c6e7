//! A sliding-window request limiter: at most `max` calls in any `window`, shared by every
//! job of one destination, so a queue of uploads never exceeds an API's published limits.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct WindowLimiter {
    max: usize,
    window: Duration,
    slots: Mutex<Slots>,
}

#[derive(Debug, Default)]
struct Slots {
    next_id: u64,
    /// The calls of the current window: an id and when the call counts from.
    calls: Vec<(u64, Instant)>,
}

/// One call let through. When the call has been answered (or abandoned), dropping the
/// permit moves its time to then: the server counted it on arrival, which is no later,
/// so the window is never judged shorter than the server's.
#[must_use]
pub struct Permit<'a> {
    limiter: &'a WindowLimiter,
    id: u64,
}

impl Permit<'_> {
    /// The call has been answered.
    pub fn done(self) {}
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut slots = self.limiter.lock();
        let now = Instant::now();
        if let Some(call) = slots.calls.iter_mut().find(|(id, _)| *id == self.id) {
            call.1 = now;
        }
    }
}

impl WindowLimiter {
    pub fn new(max: u32, window: Duration) -> WindowLimiter {
        WindowLimiter {
            max: max.max(1) as usize,
            window,
            slots: Mutex::new(Slots::default()),
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until one more call fits in the window, and counts it.
    pub async fn acquire(&self) -> Permit<'_> {
        loop {
            let wait = {
                let mut slots = self.lock();
                let now = Instant::now();
                let window = self.window;
                slots.calls.retain(|(_, at)| *at + window > now);
                if slots.calls.len() < self.max {
                    let id = slots.next_id;
                    slots.next_id += 1;
                    slots.calls.push((id, now));
                    return Permit { limiter: self, id };
                }
                // Full: the oldest call leaves the window first.
                slots
                    .calls
                    .iter()
                    .map(|(_, at)| *at + window - now)
                    .min()
                    .unwrap_or(window)
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// The server said the limit is reached (another client on the same token, a
    /// restart that forgot earlier calls): treat the window as full from now on.
    pub fn saturate(&self) {
        let mut slots = self.lock();
        let now = Instant::now();
        let first = slots.next_id;
        slots.next_id += self.max as u64;
        slots.calls = (first..first + self.max as u64)
            .map(|id| (id, now))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn lets_max_calls_through_per_window() {
        let limiter = WindowLimiter::new(6, Duration::from_secs(60));
        let start = Instant::now();
        for _ in 0..6 {
            limiter.acquire().await.done();
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the first six go at once");
        limiter.acquire().await.done();
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(60),
            "the seventh waits until the first leaves the window"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn never_more_than_max_in_any_window() {
        let limiter = std::sync::Arc::new(WindowLimiter::new(3, Duration::from_secs(10)));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let limiter = limiter.clone();
            tasks.push(tokio::spawn(async move {
                limiter.acquire().await.done();
                start.elapsed()
            }));
        }
        let mut times = Vec::new();
        for task in tasks {
            times.push(task.await.unwrap());
        }
        times.sort();
        for (i, at) in times.iter().enumerate() {
            let in_window = times[i..]
                .iter()
                .take_while(|t| **t < *at + Duration::from_secs(10))
                .count();
            assert!(
                in_window <= 3,
                "{in_window} calls within 10 s of {at:?}: {times:?}"
            );
        }
        assert_eq!(times[9], Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_counts_from_its_answer() {
        let limiter = WindowLimiter::new(1, Duration::from_secs(60));
        let start = Instant::now();
        let permit = limiter.acquire().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        permit.done();
        limiter.acquire().await.done();
        assert_eq!(start.elapsed(), Duration::from_secs(65));
    }

    #[tokio::test(start_paused = true)]
    async fn a_saturated_window_waits_a_full_window() {
        let limiter = WindowLimiter::new(30, Duration::from_secs(60));
        limiter.acquire().await.done();
        limiter.saturate();
        let start = Instant::now();
        limiter.acquire().await.done();
        assert_eq!(start.elapsed(), Duration::from_secs(60));
    }
}
