//! What the doors show: job views (with live speed and start times), lists, pages,
//! drafts, status, and the event stream.
//!
//! Reads the queue and the store's history; changes nothing.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;
use upq_proto::{Event as WireEvent, JobState, JobView, StatusView, PROTOCOL_VERSION};

use super::{waits_for_post, Service, ServiceError, State};
use crate::destinations::Destinations;
use crate::job::{Job, Summary};

impl Service {
    pub(crate) fn view_of(&self, state: &State, job: &Job) -> JobView {
        let mut view = job.view();
        // A queued job waiting for its start time shows that time.
        if job.state() == JobState::Queued && view.next_attempt_at.is_none() {
            if let Some(summary) = state.jobs.get(&job.id()) {
                let destinations = self
                    .inner
                    .destinations
                    .read()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                view.next_attempt_at =
                    start_time(&destinations, summary).filter(|&at| at > self.now());
                view.waiting = waits_for_post(state, &destinations, job.id(), summary);
            }
        }
        // Held back by a policy or the network: what it waits for, as the error kind
        // `policy` says.
        if matches!(job.state(), JobState::Queued | JobState::Retrying) && !job.committed() {
            let gate = self.upload_gate(self.now());
            let network = uses_network(&self.destinations(), job.destination());
            if let Some(why) = gate.holds(job.ignores_policies(), network) {
                if view.last_error.is_none() {
                    view.last_error = Some(upq_proto::JobError {
                        kind: "policy".into(),
                        message: why.to_string(),
                    });
                }
                view.waiting = Some(why.to_string());
            }
        }
        if let Some(running) = state.running.get(&job.id()) {
            match job.state() {
                JobState::Uploading => {
                    view.speed = Some(running.live.speed.load(Ordering::Relaxed));
                    view.bytes_in_flight = Some(running.live.in_flight.load(Ordering::Relaxed));
                }
                JobState::Processing => {
                    view.processing_progress = *running
                        .live
                        .processing
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                }
                _ => {}
            }
        }
        if !job.committed() && !job.state().is_terminal() {
            if let Some(session) = job.remote() {
                let destinations = self
                    .inner
                    .destinations
                    .read()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                view.review_url = destinations
                    .get(job.destination())
                    .and_then(|destination| destination.review_url(session));
            }
        }
        view
    }

    /// Keeps what the platform last said of job `id`'s processing for the views, and tells
    /// subscribers when it moved on.
    pub(crate) fn record_processing(
        &self,
        id: u64,
        progress: Option<upq_proto::ProcessingProgress>,
    ) {
        let changed = {
            let state = self.lock();
            let Some(running) = state.running.get(&id) else {
                return;
            };
            let mut known = running
                .live
                .processing
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            std::mem::replace(&mut *known, progress) != progress
        };
        if let (true, Some(progress)) = (changed, progress) {
            self.emit(WireEvent::Processing {
                id,
                parts_processed: progress.parts_processed,
                parts_total: progress.parts_total,
                time_left_ms: progress.time_left_ms,
            });
        }
    }

    /// How many jobs the queue holds, drafts and finished ones included.
    pub fn job_count(&self) -> usize {
        self.lock().jobs.len()
    }

    pub fn list(&self, all: bool) -> Result<Vec<JobView>, ServiceError> {
        self.list_page(all, None, None)
    }

    /// Like `list`, from the job after id `after`, at most `limit` jobs.
    pub fn list_page(
        &self,
        all: bool,
        after: Option<u64>,
        limit: Option<u32>,
    ) -> Result<Vec<JobView>, ServiceError> {
        self.page(after, limit, |job| all || !job.state().is_terminal())
    }

    /// The views of the jobs after id `after` that `wanted` accepts, at most `limit`, read
    /// from the store a record at a time: a page costs its own length, not the queue's.
    /// A page asked for with a `limit` also stops before its answer could outgrow the
    /// protocol's line cap (long captions); the client reads on until a page is empty.
    fn page(
        &self,
        after: Option<u64>,
        limit: Option<u32>,
        wanted: impl Fn(&Summary) -> bool,
    ) -> Result<Vec<JobView>, ServiceError> {
        let state = self.lock();
        let from = after.map_or(0, |id| id.saturating_add(1));
        let mut page = Page::new(limit);
        for (&id, _) in state.jobs.range(from..).filter(|(_, job)| wanted(job)) {
            if page.is_full() {
                break;
            }
            let Some(job) = self.inner.store.job(id)? else {
                // Discarded under the same lock, so never seen: said if it ever is.
                tracing::error!(job = id, "a job the queue lists has no record; left out");
                continue;
            };
            let view = self.view_of(&state, &job);
            let bytes = encoded_bound(&view);
            if !page.push(view, bytes) {
                break;
            }
        }
        Ok(page.items)
    }

    /// At most `limit` views of the jobs in the states `wanted` accepts, oldest or newest
    /// first: what one page of the desk shows.
    pub fn views_where(
        &self,
        newest_first: bool,
        limit: usize,
        wanted: impl Fn(JobState) -> bool,
    ) -> Result<Vec<JobView>, ServiceError> {
        let state = self.lock();
        let ids: Box<dyn Iterator<Item = (&u64, &Summary)>> = if newest_first {
            Box::new(state.jobs.iter().rev())
        } else {
            Box::new(state.jobs.iter())
        };
        let mut views = Vec::new();
        for (&id, _) in ids.filter(|(_, job)| wanted(job.state())).take(limit) {
            match self.inner.store.job(id)? {
                Some(job) => views.push(self.view_of(&state, &job)),
                None => tracing::error!(job = id, "a job the queue lists has no record; left out"),
            }
        }
        Ok(views)
    }

    pub fn show(&self, id: u64) -> Result<JobView, ServiceError> {
        let mut view = {
            let state = self.lock();
            let job = self.record(id)?;
            self.view_of(&state, &job)
        };
        view.history = Some(self.inner.store.history(id)?);
        Ok(view)
    }

    pub fn drafts(&self) -> Result<Vec<JobView>, ServiceError> {
        self.drafts_page(None, None)
    }

    /// Drafts in id order after `after`, at most `limit` of them.
    pub fn drafts_page(
        &self,
        after: Option<u64>,
        limit: Option<u32>,
    ) -> Result<Vec<JobView>, ServiceError> {
        self.page(after, limit, |job| job.state() == JobState::Canceled)
    }

    pub fn status(&self) -> StatusView {
        let state = self.lock();
        let mut counts: BTreeMap<String, u64> = JobState::ALL
            .iter()
            .map(|s| (s.as_str().to_string(), 0))
            .collect();
        for job in state.jobs.values() {
            *counts.entry(job.state().as_str().to_string()).or_default() += 1;
        }
        let now = self.now();
        StatusView {
            version: env!("CARGO_PKG_VERSION").into(),
            protocol: PROTOCOL_VERSION,
            pid: std::process::id(),
            started_at: self.inner.started_at,
            uptime_secs: (now - self.inner.started_at).num_seconds().max(0) as u64,
            counts,
            max_active: self.config().daemon.max_active,
            rate_limit: self.inner.limiter.rate(),
            rate_limit_until: self.rate_override_until(),
            queue_paused: state.queue_paused,
            destinations: self.destinations().keys().cloned().collect(),
            data_dir: self.config().paths.data_dir.display().to_string(),
            socket: self.config().paths.socket.display().to_string(),
            quarantined: self.inner.store.quarantined() as u64,
            lost: self
                .inner
                .store
                .lost()
                .iter()
                .map(|job| job.view())
                .collect(),
            system: self.system_view(),
            policies: self.policy_effects(),
            web_url: self.desk_url(),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<WireEvent> {
        self.inner.events.subscribe()
    }
}

/// What one page of `list` or `drafts` asked for with a `limit` may hold, as bounded by
/// `encoded_bound`: well under the 1 MiB line cap.
/// One page of a list: at most `limit` items and, when a limit was asked for, no more
/// than `PAGE_BYTES` once encoded (the first item always fits).
pub(super) struct Page<T> {
    pub items: Vec<T>,
    limit: usize,
    budget: usize,
    bytes: usize,
}

impl<T> Page<T> {
    pub fn new(limit: Option<u32>) -> Page<T> {
        Page {
            items: Vec::new(),
            limit: limit.map_or(usize::MAX, |n| n as usize),
            budget: if limit.is_some() {
                PAGE_BYTES
            } else {
                usize::MAX
            },
            bytes: 0,
        }
    }

    pub fn is_full(&self) -> bool {
        self.items.len() >= self.limit
    }

    /// Takes `item`, about `bytes` long once encoded; false, leaving it out, when the
    /// page would outgrow its budget.
    pub fn push(&mut self, item: T, bytes: usize) -> bool {
        self.bytes = self.bytes.saturating_add(bytes);
        if self.bytes > self.budget && !self.items.is_empty() {
            return false;
        }
        self.items.push(item);
        true
    }
}

const PAGE_BYTES: usize = 768 * 1024;

/// At least the length of a view in JSON: its fixed fields, and every string as if each
/// of its bytes had to be escaped (`\u00XX`, 6 bytes).
pub(super) fn encoded_bound(view: &JobView) -> usize {
    let strings = [
        Some(view.file.as_str()),
        Some(view.destination.as_str()),
        view.metadata.title.as_deref(),
        view.metadata.caption.as_deref(),
        view.metadata.privacy.as_deref(),
        view.remote.as_deref(),
        view.upload_url.as_deref(),
        view.content_hash.as_deref(),
        view.warning.as_deref(),
        view.last_error.as_ref().map(|e| e.kind.as_str()),
        view.last_error.as_ref().map(|e| e.message.as_str()),
    ];
    let extra: usize = view
        .metadata
        .extra
        .iter()
        .map(|(key, value)| key.len() + value.len() + 6)
        .sum();
    1024 + 6 * (strings.iter().flatten().map(|s| s.len()).sum::<usize>() + extra)
}

/// Whether the jobs of `destination` go over the network (an unknown one is taken to).
pub(crate) fn uses_network(destinations: &Destinations, destination: &str) -> bool {
    destinations
        .get(destination)
        .is_none_or(|destination| destination.uses_network())
}

/// When a job that has not started its remote upload may start, if its destination says
/// (an upload timed to its publish time); `None` for jobs already under way.
pub(crate) fn start_time(destinations: &Destinations, job: &Summary) -> Option<DateTime<Utc>> {
    if job.started() || job.committed() {
        return None;
    }
    destinations
        .get(job.destination().as_ref())?
        .start_not_before(job.hold(), job.publish_at())
}
