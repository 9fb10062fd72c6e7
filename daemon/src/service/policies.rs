//! The policies at work: the rate in force (the timetable, or `upqctl limit` until the
//! timetable's next change), and whether uploads may run now (upload hours).
//!
//! One task follows the rate timetable, waking only at its changes, at the end of a
//! `limit --until`, and when the configuration changes; nothing polls. The scheduler
//! asks `upload_gate` on each pass and sets its timer for the gate's next change.

use chrono::{DateTime, Utc};

use super::Service;
use crate::policy::rate_text;

/// `upqctl limit`: a rate that holds until a time (the timetable's next change, or the
/// end of `--until`), or for good when neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateOverride {
    pub rate: u64,
    pub until: Option<DateTime<Utc>>,
}

/// What the policies hold between decisions.
#[derive(Debug, Default)]
pub(crate) struct Policies {
    pub rate_override: std::sync::Mutex<Option<RateOverride>>,
    /// Wakes the rate task: the override or the configuration changed.
    pub changed: tokio::sync::Notify,
}

/// Whether uploads that honour the policies may run now, and when the clock may change it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Gate {
    /// Why they may not: "outside upload_hours (opens 22:00)". `None`: they may.
    pub closed: Option<String>,
    /// The next time the upload hours open or close.
    pub changes_at: Option<DateTime<Utc>>,
}

impl Service {
    /// The rate in force at `now`, and when it next changes.
    pub(crate) fn rate_in_force(&self, now: DateTime<Utc>) -> (u64, Option<DateTime<Utc>>) {
        let config = self.config();
        let zone = self.inner.clock.zone();
        let mut overridden = self
            .inner
            .policies
            .rate_override
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match *overridden {
            Some(o) if o.until.is_none_or(|until| until > now) => return (o.rate, o.until),
            Some(_) => *overridden = None,
            None => {}
        }
        let table = &config.daemon.rate_limit;
        let next = zone.next_change(table, now).map(|(at, _)| at);
        (*zone.value(table, now), next)
    }

    /// Follows the rate timetable until shutdown: sets the rate in force, then sleeps
    /// until it may change.
    pub(crate) async fn run_rate_policy(self) {
        let shutdown = self.inner.shutdown.clone();
        loop {
            let changed = self.inner.policies.changed.notified();
            let now = self.now();
            let (rate, next) = self.rate_in_force(now);
            if self.inner.limiter.rate() != rate {
                self.inner.limiter.set_rate(rate);
                tracing::info!(rate = %rate_text(rate), "rate limit in force");
            }
            let timer = async {
                match next {
                    Some(at) => tokio::time::sleep((at - now).to_std().unwrap_or_default()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = timer => {}
                _ = changed => {}
                _ = shutdown.cancelled() => break,
            }
        }
    }

    /// `upqctl limit`: `bytes_per_second` (0: none) until `until`, or until the timetable
    /// next changes when not given. Returns the rate and when it ends.
    pub fn set_rate_limit(
        &self,
        bytes_per_second: u64,
        until: Option<std::time::Duration>,
    ) -> (u64, Option<DateTime<Utc>>) {
        let now = self.now();
        let config = self.config();
        let until = match until {
            Some(duration) => {
                Some(now + chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX))
            }
            None => self
                .inner
                .clock
                .zone()
                .next_change(&config.daemon.rate_limit, now)
                .map(|(at, _)| at),
        };
        *self
            .inner
            .policies
            .rate_override
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(RateOverride {
            rate: bytes_per_second,
            until,
        });
        self.inner.limiter.set_rate(bytes_per_second);
        self.inner.policies.changed.notify_one();
        tracing::info!(rate = %rate_text(bytes_per_second), until = ?until, "rate limit changed");
        (bytes_per_second, until)
    }

    /// When the rate set by `upqctl limit` gives way to the timetable, if it does.
    pub(crate) fn rate_override_until(&self) -> Option<DateTime<Utc>> {
        let now = self.now();
        self.inner
            .policies
            .rate_override
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .and_then(|o| o.until.filter(|&until| until > now))
    }

    /// Whether uploads that honour the policies may run at `now`, and until when.
    pub(crate) fn upload_gate(&self, now: DateTime<Utc>) -> Gate {
        let config = self.config();
        let zone = self.inner.clock.zone();
        let Some(hours) = config.daemon.upload_hours.as_ref() else {
            return Gate::default();
        };
        let changes_at = zone.next_change(hours, now).map(|(at, _)| at);
        let closed = (!*zone.value(hours, now)).then(|| match changes_at {
            Some(at) => format!("outside upload_hours (opens {})", zone.wall(at, now)),
            None => "outside upload_hours".into(),
        });
        Gate { closed, changes_at }
    }
}
