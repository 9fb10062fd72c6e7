//! The one API every door (socket, D-Bus) calls: add, pause, cancel, list, subscribe, ...
//!
//! Owns the in-memory queue mirrored to the store; every state change goes through `apply`,
//! persisted before it is visible. Knows nothing about sockets, D-Bus or HTTP.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;
use upq_proto::{
    AddRequest, BatchItem, ErrorBody, ErrorCode, Event as WireEvent, HistoryEntry, JobError,
    JobState, JobView, Selection, StatusView, PROTOCOL_VERSION,
};

use crate::clock::Clock;
use crate::config::Config;
use crate::destinations::{Destination, Destinations, UploadInfo};
use crate::job::{
    command_outcome, transition, Command, Event, Job, NewJob, Outcome, RemoteSession,
    TransitionError,
};
use crate::notify::Notifier;
use crate::pacer::RateLimiter;
use crate::source::{Source, SourceError};
use crate::store::{Cleanup, DraftChange, Store, StoreError};

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

fn transition_error(id: u64, state: JobState, e: TransitionError) -> ServiceError {
    match e {
        TransitionError::TooLate if state == JobState::Published => ServiceError::new(
            ErrorCode::TooLate,
            format!("job {id}: {e}; it is published"),
        ),
        TransitionError::TooLate => ServiceError::new(
            ErrorCode::TooLate,
            format!("job {id}: {e}; it will be published"),
        ),
        TransitionError::InvalidState { .. } => {
            ServiceError::new(ErrorCode::InvalidState, format!("job {id}: {e}"))
        }
    }
}

/// The refusal of a command that is no state change, worded like the state machine's.
fn command_refused(id: u64, job: &Job, command: Command) -> ServiceError {
    let error = match command_outcome(job.state, job.committed, command) {
        Outcome::TooLate => TransitionError::TooLate,
        _ => TransitionError::InvalidState {
            state: job.state,
            verb: command.verb(),
        },
    };
    transition_error(id, job.state, error)
}

/// A job a worker is driving right now.
pub(crate) struct Running {
    pub token: CancellationToken,
    /// Cancelled when the worker task has ended.
    pub finished: CancellationToken,
    pub speed: Arc<AtomicU64>,
    /// Whether it occupies one of the `max_active` upload slots.
    pub uses_slot: bool,
}

pub(crate) struct State {
    pub jobs: BTreeMap<u64, Job>,
    pub running: HashMap<u64, Running>,
    pub queue_paused: bool,
    /// Clean-ups in progress per job, each cancelled when done.
    pub pending_cleanups: HashMap<u64, Vec<CancellationToken>>,
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
    pub shutdown: CancellationToken,
    pub tasks: crate::tasks::Tasks,
    /// Where "now" comes from: the wall clock, or one that follows tokio's time in tests.
    pub clock: Arc<dyn Clock>,
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
        notifier: Notifier,
        shutdown: CancellationToken,
    ) -> Result<Service, StoreError> {
        Service::with_clock(
            config,
            store,
            destinations,
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
        notifier: Notifier,
        shutdown: CancellationToken,
        clock: Arc<dyn Clock>,
    ) -> Result<Service, StoreError> {
        let jobs: BTreeMap<u64, Job> = store
            .load_jobs()?
            .into_iter()
            .map(|job| (job.id, job))
            .collect();
        let queue_paused = store.queue_paused()?;
        let (events, _) = broadcast::channel(4096);
        let service = Service {
            inner: Arc::new(Inner {
                limiter: Arc::new(RateLimiter::new(config.daemon.rate_limit)),
                store,
                state: Mutex::new(State {
                    jobs,
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
                shutdown,
                tasks: crate::tasks::Tasks::new(),
                clock,
            }),
        };
        let interrupted: Vec<u64> = service
            .lock()
            .jobs
            .values()
            .filter(|job| {
                matches!(
                    job.state,
                    JobState::Uploading | JobState::Processing | JobState::Publishing
                )
            })
            .map(|job| job.id)
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
        let current = state
            .jobs
            .get(&id)
            .ok_or_else(|| ServiceError::not_found(id))?;
        let next = transition(current.state, current.committed, event)
            .map_err(|e| transition_error(id, current.state, e))?;
        let mut job = current.clone();
        let now = self.now();
        let from = job.state;
        job.state = next;
        job.updated_at = now;
        job.history_len += 1;
        let effects = mutate(&mut job);
        let entry = HistoryEntry {
            at: now,
            from: Some(from),
            to: next,
            reason: reason.clone(),
        };
        let draft = match (from, next) {
            (_, JobState::Canceled) => DraftChange::Add,
            (JobState::Canceled, _) => DraftChange::Remove,
            _ => DraftChange::Keep,
        };
        let cleanup = effects.cleanup.map(|session| Cleanup {
            job_id: id,
            destination: job.destination.clone(),
            session,
            created_at: now,
        });
        self.inner
            .store
            .write(&job, Some(&entry), draft, cleanup.as_ref())?;
        if let Some(cleanup) = cleanup {
            self.spawn_cleanup(state, job.history_len, cleanup);
        }
        tracing::info!(job = id, from = %from, to = %next, %reason, "state change");
        self.notify_state(&job);
        state.jobs.insert(id, job.clone());
        let _ = self.inner.events.send(WireEvent::State {
            id,
            from: Some(from),
            to: next,
            reason,
            job: Box::new(self.view_of(state, &job)),
        });
        Ok(job)
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
                    let built = crate::destinations::build(&one)?;
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
        if new.daemon.rate_limit != old.daemon.rate_limit {
            self.inner.limiter.set_rate(new.daemon.rate_limit);
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
        self.inner.wake.notify_one();
        Ok(notes)
    }

    /// Desktop notifications that follow from a job's new state; sent in the background.
    fn notify_state(&self, job: &Job) {
        let notifier = self.inner.notifier.clone();
        let (id, file) = (job.id, job.file.clone());
        match job.state {
            JobState::Failed => {
                let message = job
                    .last_error
                    .as_ref()
                    .map_or_else(|| "failed".to_string(), |e| e.message.clone());
                self.inner
                    .tasks
                    .spawn_named(format!("job {id}: failed notification"), async move {
                        notifier.failed(id, &file, &message).await
                    });
            }
            JobState::Published => {
                let location = job.location.clone();
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
        let job = state.jobs.get_mut(&id)?;
        mutate(job);
        job.updated_at = self.now();
        let job = job.clone();
        if let Err(e) = self.inner.store.write_progress(&job) {
            tracing::error!(job = id, error = %e, "cannot store job progress");
        }
        Some(job)
    }

    pub(crate) fn view_of(&self, state: &State, job: &Job) -> JobView {
        let mut view = job.view();
        // A queued job waiting for its start time shows that time.
        if job.state == JobState::Queued && view.next_attempt_at.is_none() {
            let destinations = self
                .inner
                .destinations
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            view.next_attempt_at = start_time(&destinations, job).filter(|&at| at > self.now());
        }
        if let Some(running) = state.running.get(&job.id) {
            if job.state == JobState::Uploading {
                view.speed = Some(running.speed.load(Ordering::Relaxed));
            }
        }
        view
    }

    pub(crate) fn emit(&self, event: WireEvent) {
        let _ = self.inner.events.send(event);
    }

    pub(crate) fn job(&self, id: u64) -> Option<Job> {
        self.lock().jobs.get(&id).cloned()
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

    // ---- the API the doors call ----

    /// Queues a file. Refuses before anything is stored if the file or destination is unusable.
    pub async fn add(&self, request: AddRequest) -> Result<JobView, ServiceError> {
        let path = std::path::PathBuf::from(&request.file);
        if !path.is_absolute() {
            return Err(ServiceError::new(
                ErrorCode::BadRequest,
                format!("'{}' is not an absolute path", request.file),
            ));
        }
        let destination_name = request
            .destination
            .clone()
            .unwrap_or_else(|| self.config().daemon.default_destination.clone());
        let destination = self.destination(&destination_name).ok_or_else(|| {
            ServiceError::new(
                ErrorCode::UnknownDestination,
                format!(
                    "no destination named '{destination_name}' (configured: {})",
                    self.destinations()
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        let fingerprint = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || Source::open(&path).map(|s| s.fingerprint()))
                .await
                .map_err(|e| ServiceError::new(ErrorCode::Internal, e.to_string()))??
        };
        if fingerprint.size == 0 {
            return Err(ServiceError::new(
                ErrorCode::File,
                format!("{}: the file is empty", path.display()),
            ));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "upload".into());
        let info = UploadInfo {
            job_id: 0,
            path: path.clone(),
            name,
            size: fingerprint.size,
            metadata: request.metadata.clone(),
        };
        let warnings = destination
            .preflight(&info)
            .await
            .map_err(|e| ServiceError::new(ErrorCode::Refused, e.message))?;
        let now = self.now();
        let publish_at = match (request.at, request.delay_ms) {
            (Some(at), _) => Some(at),
            (None, Some(ms)) => Some(now + chrono::Duration::milliseconds(ms as i64)),
            (None, None) if !self.config().daemon.publish_delay.is_zero() => Some(
                now + chrono::Duration::from_std(self.config().daemon.publish_delay)
                    .unwrap_or_default(),
            ),
            (None, None) => None,
        };
        let schedule = destination.schedule_warning(request.hold, publish_at, now);
        let warnings: Vec<String> = warnings.into_iter().chain(schedule).collect();
        let warning = (!warnings.is_empty()).then(|| warnings.join("; "));
        let new = NewJob {
            file: path.clone(),
            destination: destination_name,
            metadata: request.metadata,
            fingerprint,
            publish_at,
            hold: request.hold,
            priority: request.priority,
            warning,
        };
        self.inner.store.check_space()?;
        let make = |id: u64| Job::queued(id, new.clone(), now);
        let job = {
            let mut state = self.lock();
            let job = self.inner.store.insert_new(make)?;
            state.jobs.insert(job.id, job.clone());
            job
        };
        self.durable().await?;
        tracing::info!(job = job.id, file = %job.file.display(), destination = %job.destination, "queued");
        let view = job.view();
        self.emit(WireEvent::State {
            id: job.id,
            from: None,
            to: JobState::Queued,
            reason: "queued".into(),
            job: Box::new(view.clone()),
        });
        self.inner.wake.notify_one();
        Ok(view)
    }

    pub fn list(&self, all: bool) -> Vec<JobView> {
        let state = self.lock();
        state
            .jobs
            .values()
            .filter(|job| all || !job.state.is_terminal())
            .map(|job| self.view_of(&state, job))
            .collect()
    }

    /// Like `list`, from the job after id `after`, at most `limit` jobs.
    pub fn list_page(&self, all: bool, after: Option<u64>, limit: Option<u32>) -> Vec<JobView> {
        let state = self.lock();
        let start = after.map_or(0, |id| id.saturating_add(1));
        state
            .jobs
            .range(start..)
            .map(|(_, job)| job)
            .filter(|job| all || !job.state.is_terminal())
            .take(limit.map_or(usize::MAX, |n| n as usize))
            .map(|job| self.view_of(&state, job))
            .collect()
    }

    pub fn show(&self, id: u64) -> Result<JobView, ServiceError> {
        let mut view = {
            let state = self.lock();
            let job = state
                .jobs
                .get(&id)
                .ok_or_else(|| ServiceError::not_found(id))?;
            self.view_of(&state, job)
        };
        view.history = Some(self.inner.store.history(id)?);
        Ok(view)
    }

    pub fn drafts(&self) -> Vec<JobView> {
        self.drafts_page(None, None)
    }

    /// Drafts in id order after `after`, at most `limit` of them.
    pub fn drafts_page(&self, after: Option<u64>, limit: Option<u32>) -> Vec<JobView> {
        let state = self.lock();
        let start = after.map_or(0, |id| id.saturating_add(1));
        state
            .jobs
            .range(start..)
            .map(|(_, job)| job)
            .filter(|job| job.state == JobState::Canceled)
            .take(limit.map_or(usize::MAX, |n| n as usize))
            .map(|job| self.view_of(&state, job))
            .collect()
    }

    fn batch(
        &self,
        ids: &[u64],
        mut each: impl FnMut(&mut State, u64) -> Result<Job, ServiceError>,
    ) -> Vec<BatchItem> {
        let mut state = self.lock();
        let items = ids
            .iter()
            .map(|&id| match each(&mut state, id) {
                Ok(job) => BatchItem {
                    id,
                    job: Some(Box::new(self.view_of(&state, &job))),
                    error: None,
                },
                Err(e) => BatchItem {
                    id,
                    job: None,
                    error: Some(e.body()),
                },
            })
            .collect();
        drop(state);
        self.inner.wake.notify_one();
        items
    }

    fn stop_worker(state: &State, id: u64) {
        if let Some(running) = state.running.get(&id) {
            running.token.cancel();
        }
    }

    pub async fn pause(&self, selection: Selection) -> Result<Vec<BatchItem>, ServiceError> {
        let ids = if selection.all {
            let mut state = self.lock();
            state.queue_paused = true;
            self.inner.store.set_queue_paused(true)?;
            state
                .jobs
                .values()
                .filter(|job| {
                    command_outcome(job.state, job.committed, Command::Pause)
                        == Outcome::To(JobState::Paused)
                })
                .map(|job| job.id)
                .collect()
        } else {
            selection.ids
        };
        let items = self.batch(&ids, |state, id| {
            let job = self.apply_locked(
                state,
                id,
                Event::Pause,
                "paused by the user".into(),
                |job| {
                    job.next_attempt_at = None;
                    Effects::default()
                },
            )?;
            Self::stop_worker(state, id);
            Ok(job)
        });
        self.durable().await?;
        Ok(items)
    }

    pub async fn resume(&self, selection: Selection) -> Result<Vec<BatchItem>, ServiceError> {
        let ids = if selection.all {
            let mut state = self.lock();
            state.queue_paused = false;
            self.inner.store.set_queue_paused(false)?;
            state
                .jobs
                .values()
                .filter(|job| job.state == JobState::Paused)
                .map(|job| job.id)
                .collect()
        } else {
            selection.ids
        };
        let items = self.batch(&ids, |state, id| {
            self.apply_locked(
                state,
                id,
                Event::Resume,
                "resumed by the user".into(),
                |_| Effects::default(),
            )
        });
        self.durable().await?;
        Ok(items)
    }

    /// Cancels jobs: the transfer stops, the partial upload is discarded, the job becomes a draft.
    /// Returns within a second whatever the destination does.
    pub async fn cancel(&self, ids: Vec<u64>) -> Result<Vec<BatchItem>, ServiceError> {
        let mut waits = Vec::new();
        let items = self.batch(&ids, |state, id| {
            let job = self.apply_locked(
                state,
                id,
                Event::Cancel,
                "canceled by the user".into(),
                |job| {
                    job.next_attempt_at = None;
                    // The partial upload is discarded, so none of it counts any more.
                    Effects {
                        cleanup: job.start_afresh(),
                    }
                },
            )?;
            Self::stop_worker(state, id);
            waits.push(id);
            Ok(job)
        });
        self.durable().await?;
        // Give the clean-up a moment so the partial is usually gone when we answer;
        // it goes on in the background (and after a restart) if the destination is slow.
        let deadline = tokio::time::Instant::now() + Duration::from_millis(700);
        for id in waits {
            let _ = tokio::time::timeout_at(deadline, self.cleanups_done(id)).await;
        }
        Ok(items)
    }

    /// Re-queues failed jobs, or retrying ones without waiting.
    pub async fn retry(&self, ids: Vec<u64>) -> Result<Vec<BatchItem>, ServiceError> {
        let mut fingerprints = HashMap::new();
        for &id in &ids {
            if let Some(job) = self.job(id).filter(|job| job.state == JobState::Failed) {
                let file = job.file.clone();
                let opened = tokio::task::spawn_blocking(move || Source::open(&file))
                    .await
                    .map_err(|e| ServiceError::new(ErrorCode::Internal, e.to_string()))?;
                fingerprints.insert(id, opened.map(|s| s.fingerprint()));
            }
        }
        let items = self.batch(&ids, |state, id| {
            let fresh = match fingerprints.remove(&id) {
                Some(Ok(fingerprint)) => Some(fingerprint),
                Some(Err(e)) => return Err(e.into()),
                None => None,
            };
            self.apply_locked(
                state,
                id,
                Event::Retry,
                "retry requested by the user".into(),
                |job| {
                    job.next_attempt_at = None;
                    let mut effects = Effects::default();
                    if let Some(fingerprint) = fresh {
                        // A failed job starts over from what the file holds now.
                        job.attempts = 0;
                        if fingerprint != job.fingerprint || job.committed {
                            job.fingerprint = fingerprint;
                            effects.cleanup = job.start_afresh();
                        }
                    }
                    effects
                },
            )
        });
        self.durable().await?;
        Ok(items)
    }

    /// Releases held jobs now; jobs not yet held lose their hold and review time.
    pub async fn publish(&self, ids: Vec<u64>) -> Result<Vec<BatchItem>, ServiceError> {
        let items = self.batch(&ids, |state, id| {
            let job = state
                .jobs
                .get(&id)
                .ok_or_else(|| ServiceError::not_found(id))?;
            match command_outcome(job.state, job.committed, Command::Publish) {
                Outcome::To(_) => self.apply_locked(
                    state,
                    id,
                    Event::Release,
                    "released by the user".into(),
                    |job| {
                        job.lift_hold();
                        Effects::default()
                    },
                ),
                Outcome::LiftsHold => {
                    let mut job = job.clone();
                    job.lift_hold();
                    job.updated_at = self.now();
                    self.inner
                        .store
                        .write(&job, None, DraftChange::Keep, None)?;
                    state.jobs.insert(id, job.clone());
                    Ok(job)
                }
                _ => Err(command_refused(id, job, Command::Publish)),
            }
        });
        self.durable().await?;
        Ok(items)
    }

    /// Puts drafts back in the queue as fresh uploads.
    pub async fn recover(&self, ids: Vec<u64>) -> Result<Vec<BatchItem>, ServiceError> {
        let mut opened = HashMap::new();
        for &id in &ids {
            if let Some(job) = self.job(id) {
                let file = job.file.clone();
                let result = tokio::task::spawn_blocking(move || Source::open(&file))
                    .await
                    .map_err(|e| ServiceError::new(ErrorCode::Internal, e.to_string()))?;
                opened.insert(id, result.map(|s| s.fingerprint()));
            }
        }
        let items = self.batch(&ids, |state, id| {
            let fingerprint = match opened.remove(&id) {
                Some(Ok(fingerprint)) => fingerprint,
                Some(Err(e)) => {
                    let e = ServiceError::from(e);
                    return Err(ServiceError::new(
                        e.code,
                        format!("{}; the draft is kept", e.message),
                    ));
                }
                None => return Err(ServiceError::not_found(id)),
            };
            self.apply_locked(
                state,
                id,
                Event::Recover,
                "recovered from drafts".into(),
                |job| {
                    job.warning = (fingerprint != job.fingerprint).then(|| {
                        format!(
                            "{} changed since it was first queued; uploading its current content",
                            job.file.display()
                        )
                    });
                    job.fingerprint = fingerprint;
                    job.attempts = 0;
                    job.last_error = None;
                    job.next_attempt_at = None;
                    Effects {
                        cleanup: job.start_afresh(),
                    }
                },
            )
        });
        self.durable().await?;
        Ok(items)
    }

    /// Forgets drafts. The file is not touched.
    pub async fn discard(&self, ids: Vec<u64>) -> Result<Vec<BatchItem>, ServiceError> {
        let items = self.batch(&ids, |state, id| {
            let job = state
                .jobs
                .get(&id)
                .ok_or_else(|| ServiceError::not_found(id))?;
            if command_outcome(job.state, job.committed, Command::Discard) != Outcome::Removed {
                return Err(ServiceError::new(
                    ErrorCode::InvalidState,
                    format!("job {id} is {}, not a draft; cancel it first", job.state),
                ));
            }
            let job = job.clone();
            self.inner.store.remove_job(id)?;
            state.jobs.remove(&id);
            self.emit(WireEvent::Removed { id });
            Ok(job)
        });
        self.durable().await?;
        Ok(items)
    }

    pub fn status(&self) -> StatusView {
        let state = self.lock();
        let mut counts: BTreeMap<String, u64> = JobState::ALL
            .iter()
            .map(|s| (s.as_str().to_string(), 0))
            .collect();
        for job in state.jobs.values() {
            *counts.entry(job.state.as_str().to_string()).or_default() += 1;
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
        }
    }

    pub fn set_rate_limit(&self, bytes_per_second: u64) -> u64 {
        self.inner.limiter.set_rate(bytes_per_second);
        tracing::info!(bytes_per_second, "rate limit changed");
        bytes_per_second
    }

    pub fn subscribe(&self) -> broadcast::Receiver<WireEvent> {
        self.inner.events.subscribe()
    }

    /// Records an error as the job's last error (used by workers).
    pub(crate) fn error_of(kind: &str, message: impl Into<String>) -> JobError {
        JobError {
            kind: kind.to_string(),
            message: message.into(),
        }
    }
}

/// When a job that has not started its remote upload may start, if its destination says
/// (an upload timed to its publish time); `None` for jobs already under way.
pub(crate) fn start_time(destinations: &Destinations, job: &Job) -> Option<DateTime<Utc>> {
    if job.remote.is_some() || job.committed {
        return None;
    }
    destinations
        .get(&job.destination)?
        .start_not_before(job.hold, job.publish_at)
}

#[cfg(test)]
mod tests;
