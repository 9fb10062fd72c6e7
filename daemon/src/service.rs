//! The one API every door (socket, D-Bus) calls: add, pause, cancel, list, subscribe, ...
//!
//! Owns the in-memory queue mirrored to the store; every state change goes through `apply`,
//! persisted before it is visible. Knows nothing about sockets, D-Bus or HTTP.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;
use upq_proto::{ErrorBody, ErrorCode, Event as WireEvent, HistoryEntry, JobError, JobState};

use crate::clock::Clock;
use crate::config::Config;
use crate::destinations::{Destination, Destinations};
use crate::job::{
    command_outcome, transition, Command, Event, Job, Names, Outcome, RemoteSession, Summary,
    TransitionError,
};
use crate::notify::Notifier;
use crate::pacer::RateLimiter;
use crate::source::SourceError;
use crate::store::{Cleanup, Store, StoreError};

/// An error a door reports to its client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    pub code: ErrorCode,
    pub message: String,
}

impl ServiceError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ServiceError {
        ServiceError {
            code,
            message: message.into(),
        }
    }

    fn not_found(id: u64) -> ServiceError {
        ServiceError::new(ErrorCode::NotFound, format!("no job {id}"))
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code,
            message: self.message.clone(),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> ServiceError {
        let code = if e.is_no_space() {
            ErrorCode::NoSpace
        } else {
            ErrorCode::Internal
        };
        ServiceError::new(code, e.to_string())
    }
}

impl From<SourceError> for ServiceError {
    fn from(e: SourceError) -> ServiceError {
        // A FIFO, socket or device can never be uploaded: the request itself is wrong.
        let code = match e {
            SourceError::NotAFile { .. } => ErrorCode::BadRequest,
            _ => ErrorCode::File,
        };
        ServiceError::new(code, e.to_string())
    }
}

fn transition_error(id: u64, job: &Job, e: TransitionError) -> ServiceError {
    let at = job
        .location()
        .map(|location| format!(" at {location}"))
        .unwrap_or_default();
    match e {
        TransitionError::TooLate if job.state() == JobState::Published => ServiceError::new(
            ErrorCode::TooLate,
            format!("job {id}: {e}; it is published{at}"),
        ),
        TransitionError::TooLate => ServiceError::new(
            ErrorCode::TooLate,
            format!("job {id}: {e}; it will be published{at}"),
        ),
        TransitionError::InvalidState { .. } => {
            ServiceError::new(ErrorCode::InvalidState, format!("job {id}: {e}"))
        }
    }
}

/// The refusal of a command that is no state change, worded like the state machine's.
fn command_refused(id: u64, job: &Job, command: Command) -> ServiceError {
    let error = match command_outcome(job.state(), job.committed(), command) {
        Outcome::TooLate => TransitionError::TooLate,
        _ => TransitionError::InvalidState {
            state: job.state(),
            verb: command.participle(),
        },
    };
    transition_error(id, job, error)
}

/// A job a worker is driving right now.
pub(crate) struct Running {
    pub token: CancellationToken,
    /// Cancelled when the worker task has ended.
    pub finished: CancellationToken,
    /// What the attempt under way is doing, for the views.
    pub live: Arc<Live>,
    /// Whether it occupies one of the `max_active` upload slots.
    pub uses_slot: bool,
}

/// An attempt's figures that change too often to store, refreshed with each progress
/// report.
#[derive(Debug, Default)]
pub(crate) struct Live {
    /// Bytes per second over the last seconds.
    pub speed: AtomicU64,
    /// Bytes pushed and not yet confirmed by the destination.
    pub in_flight: AtomicU64,
    /// The platform's processing, as far as it last said.
    pub processing: std::sync::Mutex<Option<upq_proto::ProcessingProgress>>,
}

pub(crate) struct State {
    /// What scheduling reads of every job; whole records stay in the store.
    pub jobs: BTreeMap<u64, Summary>,
    names: Names,
    pub running: HashMap<u64, Running>,
    pub queue_paused: bool,
    /// Clean-ups in progress per job, each cancelled when done.
    pub pending_cleanups: HashMap<u64, Vec<CancellationToken>>,
}

impl State {
    /// Keeps what scheduling reads of `job`, whose record was just written.
    pub fn remember(&mut self, job: &Job) {
        let destination = self.names.shared(job.destination());
        self.jobs.insert(job.id(), job.summary(destination));
    }
}

pub(crate) struct Inner {
    pub store: Store,
    pub state: Mutex<State>,
    pub events: broadcast::Sender<WireEvent>,
    /// Wakes the scheduler after anything that may start or release a job.
    pub wake: Notify,
    pub limiter: Arc<RateLimiter>,
    /// Swapped whole on reload; readers take a snapshot.
    pub config: std::sync::RwLock<Arc<Config>>,
    pub destinations: std::sync::RwLock<Destinations>,
    pub started_at: DateTime<Utc>,
    pub notifier: Notifier,
    /// The signed-in accounts of the destinations that sign in.
    pub accounts: crate::accounts::Accounts,
    /// Jobs seen to start waiting for a sign-in, by destination: the notification's count
    /// without reading every record. A sign-in also looks through the records, for jobs
    /// that waited before a restart.
    pub signin_waiting: std::sync::Mutex<HashMap<String, std::collections::BTreeSet<u64>>>,
    pub shutdown: CancellationToken,
    pub tasks: crate::tasks::Tasks,
    /// Where "now" comes from: the wall clock, or one that follows tokio's time in tests.
    pub clock: Arc<dyn Clock>,
    pub policies: policies::Policies,
    /// Each destination's own `rate_limit`, shared by its uploads (0: none).
    pub destination_limiters: std::sync::Mutex<HashMap<String, Arc<RateLimiter>>>,
    /// The desk's address and its sign-ins.
    pub desk: desk::DeskAccess,
}

/// The queue and everything that may be done to it. Cheap to clone.
#[derive(Clone)]
pub struct Service {
    pub(crate) inner: Arc<Inner>,
}

/// What a state change writes besides the job itself.
#[derive(Default)]
pub(crate) struct Effects {
    pub cleanup: Option<RemoteSession>,
}

impl Service {
    /// Builds the service over an opened store; resumes whatever was active when the daemon stopped.
    pub(crate) fn new(
        config: Config,
        store: Store,
        destinations: Destinations,
        accounts: crate::accounts::Accounts,
        notifier: Notifier,
        shutdown: CancellationToken,
    ) -> Result<Service, StoreError> {
        Service::with_clock(
            config,
            store,
            destinations,
            accounts,
            notifier,
            shutdown,
            crate::clock::system(),
        )
    }

    /// Like `new`, taking "now" from `clock`.
    pub(crate) fn with_clock(
        config: Config,
        store: Store,
        destinations: Destinations,
        accounts: crate::accounts::Accounts,
        notifier: Notifier,
        shutdown: CancellationToken,
        clock: Arc<dyn Clock>,
    ) -> Result<Service, StoreError> {
        let jobs = store.summaries()?;
        let queue_paused = store.queue_paused()?;
        let (events, _) = broadcast::channel(4096);
        let service = Service {
            inner: Arc::new(Inner {
                limiter: Arc::new(RateLimiter::new(
                    *clock.zone().value(&config.daemon.rate_limit, clock.now()),
                )),
                store,
                state: Mutex::new(State {
                    jobs,
                    names: Names::default(),
                    running: HashMap::new(),
                    queue_paused,
                    pending_cleanups: HashMap::new(),
                }),
                events,
                wake: Notify::new(),
                config: std::sync::RwLock::new(Arc::new(config)),
                destinations: std::sync::RwLock::new(destinations),
                started_at: clock.now(),
                notifier,
                accounts,
                signin_waiting: std::sync::Mutex::default(),
                shutdown,
                tasks: crate::tasks::Tasks::new(),
                clock,
                policies: policies::Policies::default(),
                destination_limiters: Default::default(),
                desk: desk::DeskAccess::default(),
            }),
        };
        let interrupted: Vec<u64> = service
            .lock()
            .jobs
            .iter()
            .filter(|(_, job)| {
                matches!(
                    job.state(),
                    JobState::Uploading | JobState::Processing | JobState::Publishing
                )
            })
            .map(|(&id, _)| id)
            .collect();
        for id in interrupted {
            if let Err(e) = service.apply(
                id,
                Event::Interrupted,
                "the daemon stopped while the job was active; resuming".into(),
                |_| {},
            ) {
                tracing::warn!(job = id, error = %e, "could not re-queue an interrupted job");
            }
        }
        service.inner.store.flush_blocking()?;
        Ok(service)
    }

    /// The time now, as the service's clock says.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug; the data is still consistent per write.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn destination(&self, name: &str) -> Option<Arc<dyn Destination>> {
        self.destinations().get(name).cloned()
    }

    pub fn limiter(&self) -> Arc<RateLimiter> {
        self.inner.limiter.clone()
    }

    /// The configuration in force (a snapshot; a reload swaps it).
    pub fn config(&self) -> Arc<Config> {
        self.inner
            .config
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub(crate) fn destinations(&self) -> Destinations {
        self.inner
            .destinations
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Applies `event` to job `id`: checks the transition, lets `mutate` adjust the record,
    /// writes record and history entry atomically, then publishes the change.
    pub(crate) fn apply(
        &self,
        id: u64,
        event: Event,
        reason: String,
        mutate: impl FnOnce(&mut Job),
    ) -> Result<Job, ServiceError> {
        self.apply_with(id, event, reason, |job| {
            mutate(job);
            Effects::default()
        })
    }

    pub(crate) fn apply_with(
        &self,
        id: u64,
        event: Event,
        reason: String,
        mutate: impl FnOnce(&mut Job) -> Effects,
    ) -> Result<Job, ServiceError> {
        let mut state = self.lock();
        let job = self.apply_locked(&mut state, id, event, reason, mutate)?;
        drop(state);
        self.inner.wake.notify_one();
        Ok(job)
    }

    pub(crate) fn apply_locked(
        &self,
        state: &mut State,
        id: u64,
        event: Event,
        reason: String,
        mutate: impl FnOnce(&mut Job) -> Effects,
    ) -> Result<Job, ServiceError> {
        let mut job = self.record(id)?;
        let next = transition(job.state(), job.committed(), event)
            .map_err(|e| transition_error(id, &job, e))?;
        let now = self.now();
        let from = job.state();
        job.enter(next, now);
        let effects = mutate(&mut job);
        let entry = HistoryEntry {
            at: now,
            from: Some(from),
            to: next,
            reason: reason.clone(),
        };
        let cleanup = effects.cleanup.map(|session| Cleanup {
            job_id: id,
            destination: job.destination().to_owned(),
            session,
            created_at: now,
        });
        self.inner
            .store
            .write(&job, Some(&entry), cleanup.as_ref())?;
        if let Some(cleanup) = cleanup {
            self.spawn_cleanup(state, job.history_len(), cleanup);
        }
        tracing::info!(job = id, from = %from, to = %next, %reason, "state change");
        self.notify_state(&job);
        state.remember(&job);
        match (next, job.post()) {
            (JobState::Failed, Some(post)) => self.hold_post_back(state, post, id),
            (JobState::Held, Some(post)) => self.release_when_ready(state, post),
            _ => {}
        }
        let _ = self.inner.events.send(WireEvent::State {
            id,
            from: Some(from),
            to: next,
            reason,
            job: Box::new(self.view_of(state, &job)),
        });
        Ok(job)
    }

    /// Writes `job`, changed in place without a change of state, with a history entry
    /// saying why (after the entries it has), and tells subscribers.
    pub(crate) fn write_changed(
        &self,
        state: &mut State,
        job: &mut Job,
        reason: String,
    ) -> Result<(), ServiceError> {
        let entry = HistoryEntry {
            at: self.now(),
            from: Some(job.state()),
            to: job.state(),
            reason,
        };
        job.note_change(entry.at);
        self.inner.store.write(job, Some(&entry), None)?;
        state.remember(job);
        let _ = self.inner.events.send(WireEvent::State {
            id: job.id(),
            from: entry.from,
            to: entry.to,
            reason: entry.reason,
            job: Box::new(self.view_of(state, job)),
        });
        Ok(())
    }

    /// Applies a reloaded configuration: destinations (unchanged ones keep their state),
    /// limits and notifications. Uploads in flight keep the destination they started with.
    /// Paths cannot change while running; a config that fails to build is refused whole.
    pub fn reload(&self, mut new: Config) -> Result<Vec<String>, crate::destinations::BuildError> {
        let old = self.config();
        let mut notes = Vec::new();
        if new.paths.data_dir != old.paths.data_dir || new.paths.socket != old.paths.socket {
            notes.push("the data folder and socket only change on restart".to_string());
            new.paths = old.paths.clone();
        }
        new.dbus = old.dbus;
        if new.web != old.web {
            notes.push("[web] changes take effect when upqd restarts".to_string());
            new.web = old.web.clone();
        }
        let current = self.destinations();
        let mut destinations = Destinations::new();
        for (name, config) in &new.destinations {
            let unchanged = old.destinations.get(name) == Some(config);
            match (unchanged, current.get(name)) {
                (true, Some(existing)) => {
                    destinations.insert(name.clone(), existing.clone());
                }
                _ => {
                    let one = std::iter::once((name.clone(), config.clone())).collect();
                    let built = crate::destinations::build(&one, &self.inner.accounts)?;
                    destinations.extend(built);
                    notes.push(format!(
                        "destination '{name}' {}",
                        if current.contains_key(name) {
                            "changed"
                        } else {
                            "added"
                        }
                    ));
                }
            }
        }
        for name in current
            .keys()
            .filter(|name| !destinations.contains_key(*name))
        {
            notes.push(format!(
                "destination '{name}' removed; its queued jobs will fail until it is back"
            ));
        }
        // Accounts live while their destination signs in; a removed destination, or one
        // that now takes a configured token, lets its account go.
        self.inner.accounts.retain(|name| {
            matches!(
                new.destinations.get(name),
                Some(crate::config::DestinationConfig::Tiktok(tiktok)) if tiktok.client_key.is_some()
            )
        });
        let policies_changed = new.daemon.rate_limit != old.daemon.rate_limit
            || new.daemon.upload_hours != old.daemon.upload_hours
            || new.daemon.reactions() != old.daemon.reactions();
        if new.daemon.rate_limit != old.daemon.rate_limit {
            // A new timetable replaces what `upqctl limit` set.
            *self
                .inner
                .policies
                .rate_override
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
        }
        self.inner.notifier.set_events(&new.daemon.notify);
        *self
            .inner
            .destinations
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = destinations;
        *self
            .inner
            .config
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(new);
        if policies_changed {
            self.inner.policies.changed.notify_one();
        }
        self.refresh_destination_limits();
        self.inner.wake.notify_one();
        Ok(notes)
    }

    /// Desktop notifications that follow from a job's new state; sent in the background.
    fn notify_state(&self, job: &Job) {
        let notifier = self.inner.notifier.clone();
        let (id, file) = (job.id(), job.file().to_path_buf());
        match job.state() {
            JobState::Failed => {
                let message = job
                    .last_error()
                    .as_ref()
                    .map_or_else(|| "failed".to_string(), |e| e.message.clone());
                self.inner
                    .tasks
                    .spawn_named(format!("job {id}: failed notification"), async move {
                        notifier.failed(id, &file, &message).await
                    });
            }
            JobState::Published => {
                let location = job.location().map(str::to_owned);
                self.inner
                    .tasks
                    .spawn_named(format!("job {id}: published notification"), async move {
                        notifier.published(id, &file, location.as_deref()).await
                    });
            }
            JobState::Held => {
                self.inner
                    .tasks
                    .spawn_named(format!("job {id}: held notification"), async move {
                        notifier.held(id, &file).await
                    });
            }
            JobState::Canceled | JobState::Paused => {
                self.inner
                    .tasks
                    .spawn_named(format!("job {id}: closing its notification"), async move {
                        notifier.recovered(id).await
                    });
            }
            _ => {}
        }
    }

    /// Changes counters or fields of a job without a state change.
    pub(crate) fn update(&self, id: u64, mutate: impl FnOnce(&mut Job)) -> Option<Job> {
        let mut state = self.lock();
        let mut job = self.job(id)?;
        mutate(&mut job);
        job.touch(self.now());
        if let Err(e) = self.inner.store.write_progress(&job) {
            tracing::error!(job = id, error = %e, "cannot store job progress");
        }
        state.remember(&job);
        Some(job)
    }

    pub(crate) fn emit(&self, event: WireEvent) {
        let _ = self.inner.events.send(event);
    }

    /// Job `id`'s whole record; `None` when there is no such job, or (logged) when the
    /// store cannot read it.
    pub(crate) fn job(&self, id: u64) -> Option<Job> {
        self.inner
            .store
            .job(id)
            .inspect_err(|e| tracing::error!(job = id, error = %e, "cannot read a job record"))
            .ok()
            .flatten()
    }

    /// Job `id`'s whole record, or why not.
    pub(crate) fn record(&self, id: u64) -> Result<Job, ServiceError> {
        self.inner
            .store
            .job(id)?
            .ok_or_else(|| ServiceError::not_found(id))
    }

    async fn durable(&self) -> Result<(), ServiceError> {
        self.inner.store.flush().await.map_err(ServiceError::from)
    }

    /// Flushes for a worker, which has nobody to report an error to but the log.
    pub(crate) async fn durable_quiet(&self) {
        if let Err(e) = self.inner.store.flush().await {
            tracing::error!(error = %e, "cannot flush the queue database");
        }
    }

    /// Records an error as the job's last error (used by workers).
    pub(crate) fn error_of(kind: &str, message: impl Into<String>) -> JobError {
        JobError {
            kind: kind.to_string(),
            message: message.into(),
        }
    }
}

mod accounts;
pub use accounts::DEFAULT_LOGIN_TIMEOUT;
mod commands;
pub use commands::Editable;
pub mod desk;
mod doctor;
pub use doctor::DEFAULT_CHECK_TIMEOUT;
mod policies;
mod posts;
mod views;

pub(crate) use policies::Gate;
pub(crate) use posts::waits_for_post;
pub(crate) use views::{start_time, uses_network};

#[cfg(test)]
mod tests;
