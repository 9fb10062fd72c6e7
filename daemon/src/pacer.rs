//! Byte pacing: the global token bucket and the per-upload progress it feeds.
//!
//! Destinations call [`Pacer::admit`] before each piece they send and [`Pacer::sent`] after;
//! nothing here knows about files or protocols.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Bytes a destination sends between two pacing decisions.
pub const PIECE_BYTES: usize = 512 * 1024;

/// A token bucket shared by every active upload. A rate of 0 means no limit.
#[derive(Debug)]
pub struct RateLimiter {
    rate: AtomicU64,
    bucket: Mutex<Bucket>,
    changed: Notify,
}

#[derive(Debug)]
struct Bucket {
    /// May go negative: a reservation that later callers wait behind.
    tokens: f64,
    refilled_at: Instant,
}

impl RateLimiter {
    pub fn new(bytes_per_second: u64) -> RateLimiter {
        RateLimiter {
            rate: AtomicU64::new(bytes_per_second),
            bucket: Mutex::new(Bucket {
                tokens: 0.0,
                refilled_at: Instant::now(),
            }),
            changed: Notify::new(),
        }
    }

    pub fn rate(&self) -> u64 {
        self.rate.load(Ordering::Relaxed)
    }

    /// Changes the rate for every upload at once; waiting uploads re-plan immediately.
    pub fn set_rate(&self, bytes_per_second: u64) {
        self.rate.store(bytes_per_second, Ordering::Relaxed);
        if let Ok(mut bucket) = self.bucket.lock() {
            bucket.tokens = bucket.tokens.max(0.0);
            bucket.refilled_at = Instant::now();
        }
        self.changed.notify_waiters();
    }

    /// Waits until `bytes` may be sent under the current rate.
    pub async fn acquire(&self, bytes: u64) {
        loop {
            let changed = self.changed.notified();
            let rate = self.rate();
            if rate == 0 {
                return;
            }
            let wait = {
                let Ok(mut bucket) = self.bucket.lock() else {
                    return;
                };
                let now = Instant::now();
                let elapsed = now.duration_since(bucket.refilled_at).as_secs_f64();
                // At most a quarter second of burst, so a paused upload does not surge.
                let burst = (rate as f64 / 4.0).max(PIECE_BYTES as f64);
                bucket.tokens = (bucket.tokens + elapsed * rate as f64).min(burst);
                bucket.refilled_at = now;
                bucket.tokens -= bytes as f64;
                if bucket.tokens >= 0.0 {
                    return;
                }
                Duration::from_secs_f64(-bucket.tokens / rate as f64)
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => return,
                _ = changed => {
                    // The rate changed: the reservation was dropped with the old rate, plan again.
                }
            }
        }
    }
}

/// Progress of one upload attempt, read by the worker for events and speed.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes handed to the destination in this attempt, acknowledged or not.
    pushed: AtomicU64,
    pub moved: Notify,
}

impl Progress {
    pub fn pushed(&self) -> u64 {
        self.pushed.load(Ordering::Relaxed)
    }

    /// Local work is moving (hashing the part already uploaded, say): not a stall,
    /// though no byte leaves.
    pub fn touch(&self) {
        self.moved.notify_waiters();
    }
}

/// What a destination uses to pace and report the bytes of one upload.
#[derive(Debug, Clone)]
pub struct Pacer {
    limiter: Arc<RateLimiter>,
    /// The destination's own limit, under the global one.
    destination: Option<Arc<RateLimiter>>,
    progress: Arc<Progress>,
}

impl Pacer {
    pub fn new(limiter: Arc<RateLimiter>, progress: Arc<Progress>) -> Pacer {
        Pacer {
            limiter,
            destination: None,
            progress,
        }
    }

    /// Also keeps to `limiter`, the destination's own rate limit.
    pub fn with_destination_limit(mut self, limiter: Arc<RateLimiter>) -> Pacer {
        self.destination = Some(limiter);
        self
    }

    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// True when no rate limit applies right now.
    pub fn unlimited(&self) -> bool {
        self.limiter.rate() == 0 && self.destination.as_ref().is_none_or(|d| d.rate() == 0)
    }

    /// Waits for the rate limits (the global one, then the destination's) to allow
    /// `bytes` more.
    pub async fn admit(&self, bytes: usize) {
        self.limiter.acquire(bytes as u64).await;
        if let Some(destination) = &self.destination {
            destination.acquire(bytes as u64).await;
        }
    }

    /// Records that `bytes` left for the destination.
    pub fn sent(&self, bytes: usize) {
        self.progress
            .pushed
            .fetch_add(bytes as u64, Ordering::Relaxed);
        self.progress.moved.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_bucket_holds_the_rate() {
        let limiter = RateLimiter::new(1024 * 1024);
        let start = Instant::now();
        for _ in 0..16 {
            limiter.acquire(256 * 1024).await;
        }
        let elapsed = start.elapsed();
        // 4 MiB at 1 MiB/s, less the quarter-second burst.
        assert!(elapsed >= Duration::from_millis(3700), "{elapsed:?}");
        assert!(elapsed <= Duration::from_millis(4100), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn zero_means_unlimited_and_changes_apply_at_once() {
        let limiter = Arc::new(RateLimiter::new(1));
        let waiter = {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.acquire(1024 * 1024).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiter.is_finished());
        limiter.set_rate(0);
        tokio::time::timeout(Duration::from_millis(10), waiter)
            .await
            .expect("lifting the limit releases waiters")
            .unwrap();
    }
}
