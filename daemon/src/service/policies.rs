//! The policies at work: the rate in force (the timetable, or `upqctl limit` until the
//! timetable's next change, under any `limit:` a fact calls for), and whether uploads may
//! run now (upload hours, a metered connection or the battery with `pause`, connectivity).
//!
//! One task follows the rate timetable, waking only at its changes, at the end of a
//! `limit --until`, and when the configuration or the facts change; nothing polls. The
//! scheduler asks `upload_gate` on each pass and sets its timer for the gate's next
//! change; a change of the facts wakes it.

use chrono::{DateTime, Utc};

use std::sync::Arc;

use super::Service;
use crate::pacer::RateLimiter;
use crate::policy::facts::lower_rate;
use crate::policy::{rate_text, Facts};

/// `upqctl limit`: a rate that holds until a time (the timetable's next change, or the
/// end of `--until`), or for good when neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateOverride {
    pub rate: u64,
    pub until: Option<DateTime<Utc>>,
}

/// What the policies hold between decisions.
#[derive(Debug)]
pub(crate) struct Policies {
    pub rate_override: std::sync::Mutex<Option<RateOverride>>,
    /// What the system bus last said (or what is assumed without it).
    pub facts: std::sync::Mutex<Facts>,
    /// Wakes the rate task: the override, the configuration or the facts changed.
    pub changed: tokio::sync::Notify,
}

impl Default for Policies {
    fn default() -> Self {
        Policies {
            rate_override: Default::default(),
            facts: std::sync::Mutex::new(Facts::assumed("assumed: nobody asked yet")),
            changed: Default::default(),
        }
    }
}

/// Whether uploads may run now, and when the clock may change it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Gate {
    /// Why uploads that honour the policies may not: "outside upload_hours (opens
    /// 22:00)", "metered connection (on_metered = pause)". `None`: they may.
    pub closed: Option<String>,
    /// Why no upload over the network may run, `--now` ones included: "no connectivity
    /// (NetworkManager)".
    pub offline: Option<String>,
    /// The next time the upload hours open or close.
    pub changes_at: Option<DateTime<Utc>>,
}

impl Gate {
    /// Why a job that is not yet committed must wait, if it must.
    pub fn holds(&self, ignores_policies: bool, uses_network: bool) -> Option<&str> {
        self.offline
            .as_deref()
            .filter(|_| uses_network)
            .or(self.closed.as_deref().filter(|_| !ignores_policies))
    }
}

/// A lock that outlives a panic elsewhere: each value here is whole after any write.
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Service {
    /// The rate in force at `now`, and when it next changes.
    pub(crate) fn rate_in_force(&self, now: DateTime<Utc>) -> (u64, Option<DateTime<Utc>>) {
        let config = self.config();
        let zone = self.inner.clock.zone();
        let mut overridden = lock(&self.inner.policies.rate_override);
        let facts_limit = config
            .daemon
            .reactions()
            .judge(&self.facts())
            .limit
            .map_or(0, |(rate, _)| rate);
        match *overridden {
            Some(o) if o.until.is_none_or(|until| until > now) => {
                return (lower_rate(o.rate, facts_limit), o.until)
            }
            Some(_) => *overridden = None,
            None => {}
        }
        let table = &config.daemon.rate_limit;
        let next = zone.next_change(table, now).map(|(at, _)| at);
        (lower_rate(*zone.value(table, now), facts_limit), next)
    }

    /// The limiter of `destination`'s own `rate_limit`, shared by all its uploads (a rate
    /// of 0 lets everything through).
    pub(crate) fn destination_limiter(&self, destination: &str) -> Arc<RateLimiter> {
        let rate = self
            .config()
            .destinations
            .get(destination)
            .map_or(0, |configured| configured.rate_limit());
        let mut limiters = lock(&self.inner.destination_limiters);
        let limiter = limiters
            .entry(destination.to_string())
            .or_insert_with(|| Arc::new(RateLimiter::new(rate)));
        if limiter.rate() != rate {
            limiter.set_rate(rate);
        }
        limiter.clone()
    }

    /// After a reload: uploads under way take their destination's new `rate_limit` at once.
    pub(crate) fn refresh_destination_limits(&self) {
        let names: Vec<String> = lock(&self.inner.destination_limiters)
            .keys()
            .cloned()
            .collect();
        for name in names {
            self.destination_limiter(&name);
        }
    }

    /// What upq believes about the machine now.
    pub fn facts(&self) -> Facts {
        lock(&self.inner.policies.facts).clone()
    }

    /// Changes what upq believes (the system bus said so); when that changes anything,
    /// the rate and the scheduler look again at once.
    pub(crate) fn update_facts(&self, change: impl FnOnce(&mut Facts)) {
        let (before, after) = {
            let mut facts = lock(&self.inner.policies.facts);
            let before = facts.clone();
            change(&mut facts);
            (before, facts.clone())
        };
        if before == after {
            return;
        }
        tracing::info!(
            metered = after.metered,
            metered_source = %after.metered_source,
            on_battery = after.on_battery,
            battery_percent = ?after.battery_percent,
            connectivity = after.connectivity.name(),
            "what the system says changed"
        );
        self.inner.policies.changed.notify_one();
        self.inner.wake.notify_one();
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
        *lock(&self.inner.policies.rate_override) = Some(RateOverride {
            rate: bytes_per_second,
            until,
        });
        // At once, under any cap a fact calls for (a metered `limit:` still holds).
        self.inner.limiter.set_rate(self.rate_in_force(now).0);
        self.inner.policies.changed.notify_one();
        tracing::info!(rate = %rate_text(bytes_per_second), until = ?until, "rate limit changed");
        (bytes_per_second, until)
    }

    /// When the rate set by `upqctl limit` gives way to the timetable, if it does.
    pub(crate) fn rate_override_until(&self) -> Option<DateTime<Utc>> {
        let now = self.now();
        lock(&self.inner.policies.rate_override).and_then(|o| o.until.filter(|&until| until > now))
    }

    /// Whether uploads may run at `now`, and when the clock may change that.
    pub(crate) fn upload_gate(&self, now: DateTime<Utc>) -> Gate {
        let config = self.config();
        let verdict = config.daemon.reactions().judge(&self.facts());
        let mut closed: Vec<String> = verdict.paused_by;
        let mut changes_at = None;
        if let Some(hours) = config.daemon.upload_hours.as_ref() {
            let zone = self.inner.clock.zone();
            changes_at = zone.next_change(hours, now).map(|(at, _)| at);
            if !*zone.value(hours, now) {
                closed.push(match changes_at {
                    Some(at) => format!("outside upload_hours (opens {})", zone.wall(at, now)),
                    None => "outside upload_hours".into(),
                });
            }
        }
        Gate {
            closed: (!closed.is_empty()).then(|| closed.join("; ")),
            offline: verdict.offline,
            changes_at,
        }
    }

    /// Whether the jobs of `destination` cannot reach it now: it goes over the network
    /// and NetworkManager reports no (or limited) connectivity.
    pub(crate) fn offline_for(&self, destination: &str) -> bool {
        self.facts().connectivity.blocks_uploads()
            && super::uses_network(&self.destinations(), destination)
    }

    /// What upq believes, for `status`.
    pub(crate) fn system_view(&self) -> upq_proto::SystemView {
        let facts = self.facts();
        upq_proto::SystemView {
            metered: facts.metered,
            metered_source: facts.metered_source.to_string(),
            on_battery: facts.on_battery,
            battery_percent: facts.battery_percent,
            battery_source: facts.battery_source.to_string(),
            connectivity: facts.connectivity.name().into(),
            connectivity_source: facts.connectivity_source.to_string(),
        }
    }

    /// What the policies do now, in words, for `status`.
    pub(crate) fn policy_effects(&self) -> Vec<String> {
        let gate = self.upload_gate(self.now());
        let verdict = self.config().daemon.reactions().judge(&self.facts());
        gate.offline
            .map(|why| format!("network uploads wait: {why}"))
            .into_iter()
            .chain(gate.closed.map(|why| format!("uploads wait: {why}")))
            .chain(verdict.limit.map(|(rate, why)| {
                format!(
                    "uploads at most {}/s: {why}",
                    crate::policy::size_text(rate)
                )
            }))
            .collect()
    }
}
