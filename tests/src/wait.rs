//! Polling helpers: wait for a condition against a deadline, or check that one holds.
//!
//! The only sleeps here are the short poll interval; callers never sleep to wait.

use std::fmt::Display;
use std::time::{Duration, Instant};

/// How often conditions are re-checked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Polls `probe` until it returns `Some`, and returns that; panics after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: impl Display, probe: impl FnMut() -> Option<T>) -> T {
    wait_for_explained(timeout, || what.to_string(), probe)
}

/// Like [`wait_for`], with the failure message built only when the wait fails, so it
/// can show what was seen by then.
pub fn wait_for_explained<T>(
    timeout: Duration,
    explain: impl FnOnce() -> String,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {}", explain());
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Polls the recorded `items` until one of them is one `accept` likes, and returns it; the
/// failure message is built only when the wait fails.
pub fn wait_for_first<T>(
    timeout: Duration,
    explain: impl FnOnce() -> String,
    mut items: impl FnMut() -> Vec<T>,
    accept: impl Fn(&T) -> bool,
) -> T {
    wait_for_explained(timeout, explain, || {
        items().into_iter().find(|item| accept(item))
    })
}

/// Polls `condition` until it is true; panics after `timeout`.
pub fn wait_until(timeout: Duration, what: impl Display, mut condition: impl FnMut() -> bool) {
    wait_for(timeout, what, || condition().then_some(()))
}

/// Checks `condition` throughout `window`; panics the first time it is false.
pub fn holds_for(window: Duration, what: impl Display, mut condition: impl FnMut() -> bool) {
    let end = Instant::now() + window;
    loop {
        assert!(condition(), "expected {what} to hold for {window:?}");
        if Instant::now() >= end {
            return;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}
