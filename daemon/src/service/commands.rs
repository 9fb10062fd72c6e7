//! The commands the doors carry out: add, pause, resume, cancel, retry, publish, recover,
//! discard, the rate limit; each checks `CONTRACT` and changes jobs through `apply`.
//!
//! Reads nothing from a door and writes no view beyond the batch answers it returns.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;

use upq_proto::{
    AddManyRequest, AddRequest, AddedItem, BatchItem, ErrorCode, Event as WireEvent, JobState,
    JobView, Selection,
};

use super::views::encoded_bound;
use super::{command_refused, Effects, Service, ServiceError, State};
use crate::destinations::{UploadInfo, ACCOUNT_KEY};
use crate::job::{command_outcome, Command, Event, Job, NewJob, Outcome};
use crate::source::Source;

/// How many files of one request (or of adds pipelined together) are checked at once: the
/// checks wait on the file system and the destination, not on the CPU.
const PREPARE_AHEAD: usize = 16;

/// How much of a batch answer may be job views, as bounded by `encoded_bound`; the rest of
/// the 1 MiB line is left for the ids and errors of the items past it.
const BATCH_VIEW_BYTES: usize = 256 * 1024;

/// How long `cancel` waits for the partial upload to be discarded before it answers.
const CANCEL_CLEANUP_WAIT: Duration = Duration::from_millis(500);

impl Service {
    /// Queues a file. Refuses before anything is stored if the file or destination is unusable.
    pub async fn add(&self, request: AddRequest) -> Result<JobView, ServiceError> {
        let job = self.stage_add(request).await?;
        self.finish_add(job).await
    }

    /// The first half of `add`: checks the file and the destination and stores the job,
    /// without waiting for it to be durable. Nobody may be told of the job before
    /// `finish_add` returns; in between, other adds can share its flush.
    pub(crate) async fn stage_add(&self, request: AddRequest) -> Result<Job, ServiceError> {
        let mut staged = self.stage_adds(vec![request]).await?;
        staged.remove(0)
    }

    /// `stage_add` for adds that came together (pipelined on one connection): each is
    /// checked alone, several at a time, and those that pass are stored in one
    /// transaction, with ids in the order given. An error of the store refuses them all.
    pub(crate) async fn stage_adds(
        &self,
        requests: Vec<AddRequest>,
    ) -> Result<Vec<Result<Job, ServiceError>>, ServiceError> {
        let prepared = self.prepare_adds(requests).await;
        let mut stored = self.store_prepared(&prepared)?.into_iter();
        Ok(prepared
            .into_iter()
            .map(|prepared| {
                prepared.map(|_| stored.next().expect("one stored job for each that passed"))
            })
            .collect())
    }

    /// Checks each add alone, `PREPARE_AHEAD` at a time, in the order given.
    pub(super) async fn prepare_adds(
        &self,
        requests: Vec<AddRequest>,
    ) -> Vec<Result<NewJob, ServiceError>> {
        futures::stream::iter(requests.into_iter().map(|add| self.prepare_add(add)))
            .buffered(PREPARE_AHEAD)
            .collect()
            .await
    }

    /// Stores the jobs that passed their checks in one transaction, in order.
    fn store_prepared(
        &self,
        prepared: &[Result<NewJob, ServiceError>],
    ) -> Result<Vec<Job>, ServiceError> {
        let news: Vec<&NewJob> = prepared.iter().filter_map(|p| p.as_ref().ok()).collect();
        if news.is_empty() {
            return Ok(Vec::new());
        }
        self.inner.store.check_space()?;
        let now = self.now();
        let mut state = self.lock();
        let jobs = self
            .inner
            .store
            .insert_many(news.len(), |id, n| Job::queued(id, news[n].clone(), now))?;
        for job in &jobs {
            state.remember(job);
        }
        Ok(jobs)
    }

    /// Queues many files with the same options. Each is checked alone; those that pass
    /// are stored in one transaction and made durable with one flush. With
    /// `all_or_nothing`, one refusal stores none and is the answer.
    pub async fn add_many(
        &self,
        request: AddManyRequest,
        all_or_nothing: bool,
    ) -> Result<Vec<AddedItem>, ServiceError> {
        let adds = request
            .files
            .iter()
            .map(|file| AddRequest {
                file: file.clone(),
                options: request.options.clone(),
            })
            .collect();
        let prepared = self.prepare_adds(adds).await;
        if all_or_nothing {
            if let Some((file, e)) = request
                .files
                .iter()
                .zip(&prepared)
                .find_map(|(file, prepared)| Some((file, prepared.as_ref().err()?)))
            {
                return Err(ServiceError::new(e.code, format!("{file}: {}", e.message)));
            }
        }
        let mut stored = self.store_prepared(&prepared)?.into_iter();
        self.durable().await?;
        let items = request
            .files
            .into_iter()
            .zip(prepared)
            .map(|(file, prepared)| match prepared {
                Ok(_) => {
                    let job = stored.next().expect("one stored job for each that passed");
                    let view = self.announce_added(&job);
                    AddedItem {
                        file,
                        job: Some(Box::new(view)),
                        error: None,
                    }
                }
                Err(e) => AddedItem {
                    file,
                    job: None,
                    error: Some(e.body()),
                },
            })
            .collect();
        Ok(items)
    }

    /// Checks a file and its destination and makes the job to store; stores nothing.
    async fn prepare_add(&self, request: AddRequest) -> Result<NewJob, ServiceError> {
        let path = std::path::PathBuf::from(&request.file);
        if !path.is_absolute() {
            return Err(ServiceError::new(
                ErrorCode::BadRequest,
                format!("'{}' is not an absolute path", request.file),
            ));
        }
        let destination_name = request
            .options
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
        let now = self.now();
        let publish_at = match (request.options.at, request.options.delay_ms) {
            (Some(at), _) => Some(at),
            (None, Some(ms)) => Some(now + chrono::Duration::milliseconds(ms as i64)),
            (None, None) if !self.config().daemon.publish_delay.is_zero() => Some(
                now + chrono::Duration::from_std(self.config().daemon.publish_delay)
                    .unwrap_or_default(),
            ),
            (None, None) => None,
        };
        let info = UploadInfo {
            job_id: 0,
            path: path.clone(),
            name,
            size: fingerprint.size,
            metadata: request.options.metadata.clone(),
            hold: request.options.hold,
            publish_at,
        };
        let warnings = destination
            .preflight(&info)
            .await
            .map_err(|e| ServiceError::new(ErrorCode::Refused, e.message))?;
        // The account it goes to, so a later sign-in to another one cannot redirect it.
        let mut metadata = request.options.metadata;
        if let Some(account) = destination.account_tag().await {
            metadata
                .extra
                .entry(ACCOUNT_KEY.to_string())
                .or_insert(account);
        }
        let schedule = destination.schedule_warning(request.options.hold, publish_at, now);
        let warnings: Vec<String> = warnings.into_iter().chain(schedule).collect();
        let warning = (!warnings.is_empty()).then(|| warnings.join("; "));
        Ok(NewJob {
            file: path.clone(),
            destination: destination_name,
            metadata,
            fingerprint,
            publish_at,
            hold: request.options.hold,
            priority: request.options.priority,
            warning,
            ignore_policies: request.options.now,
        })
    }

    /// The second half of `add`: waits until the job is durable, then announces it.
    pub(crate) async fn finish_add(&self, job: Job) -> Result<JobView, ServiceError> {
        self.durable().await?;
        Ok(self.announce_added(&job))
    }

    /// Tells the log, the subscribers and the scheduler of a job stored durably.
    pub(super) fn announce_added(&self, job: &Job) -> JobView {
        tracing::info!(job = job.id(), file = %job.file().display(), destination = %job.destination(), "queued");
        let view = job.view();
        self.emit(WireEvent::State {
            id: job.id(),
            from: None,
            to: JobState::Queued,
            reason: "queued".into(),
            job: Box::new(view.clone()),
        });
        self.inner.wake.notify_one();
        view
    }

    fn batch(
        &self,
        ids: &[u64],
        mut each: impl FnMut(&mut State, u64) -> Result<Job, ServiceError>,
    ) -> Vec<BatchItem> {
        let mut state = self.lock();
        // The answer is one line: past `BATCH_VIEW_BYTES` of views (thousands of jobs, or
        // long captions), a success is told by its id alone.
        let mut bytes = 0usize;
        let items = ids
            .iter()
            .map(|&id| match each(&mut state, id) {
                Ok(job) => {
                    let view = self.view_of(&state, &job);
                    bytes = bytes.saturating_add(encoded_bound(&view));
                    BatchItem {
                        id,
                        job: (bytes <= BATCH_VIEW_BYTES).then(|| Box::new(view)),
                        error: None,
                    }
                }
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
                .iter()
                .filter(|(_, job)| {
                    command_outcome(job.state(), job.committed(), Command::Pause)
                        == Outcome::To(JobState::Paused)
                })
                .map(|(&id, _)| id)
                .collect()
        } else {
            selection.ids
        };
        let items = self.batch(&ids, |state, id| {
            let job =
                self.apply_locked(state, id, Event::Pause, "paused by the user".into(), |_| {
                    Effects::default()
                })?;
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
                .iter()
                .filter(|(_, job)| job.state() == JobState::Paused)
                .map(|(&id, _)| id)
                .collect()
        } else {
            selection.ids
        };
        let now = selection.now;
        let items = self.batch(&ids, |state, id| {
            if now {
                // `resume --now` of a job that is not paused (held back by a policy, say):
                // it only stops honouring the policies.
                let mut job = self.record(id)?;
                if matches!(
                    job.state(),
                    JobState::Queued | JobState::Retrying | JobState::Uploading
                ) {
                    job.ignore_policies();
                    let reason = "resumed with --now: the upload policies no longer hold it back";
                    self.write_changed(state, &mut job, reason.into())?;
                    return Ok(job);
                }
            }
            let reason = if now {
                "resumed by the user, ignoring the upload policies"
            } else {
                "resumed by the user"
            };
            self.apply_locked(state, id, Event::Resume, reason.into(), |job| {
                if now {
                    job.ignore_policies();
                }
                Effects::default()
            })
        });
        self.durable().await?;
        self.inner.wake.notify_one();
        Ok(items)
    }

    /// Cancels jobs: the transfer stops, the partial upload is discarded, the job becomes a draft.
    /// Returns within a second whatever the destination does.
    pub async fn cancel(&self, ids: Vec<u64>) -> Result<Vec<BatchItem>, ServiceError> {
        let deadline = tokio::time::Instant::now() + CANCEL_CLEANUP_WAIT;
        let mut waits = Vec::new();
        let items = self.batch(&ids, |state, id| {
            let job = self.apply_locked(
                state,
                id,
                Event::Cancel,
                "canceled by the user".into(),
                |job| {
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
        // Give the clean-up a moment so the partial is usually gone when we answer; it goes
        // on in the background (and after a restart) if the destination is slow. Counted
        // from the request, so the answer comes well within the second cancel promises.
        for id in waits {
            let _ = tokio::time::timeout_at(deadline, self.cleanups_done(id)).await;
        }
        Ok(items)
    }

    /// Re-queues failed jobs, or retrying ones without waiting.
    pub async fn retry(&self, ids: Vec<u64>) -> Result<Vec<BatchItem>, ServiceError> {
        let mut fingerprints = HashMap::new();
        for &id in &ids {
            if let Some(job) = self.job(id).filter(|job| job.state() == JobState::Failed) {
                let file = job.file().to_path_buf();
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
                    let mut effects = Effects::default();
                    if let Some(fingerprint) = fresh {
                        // A failed job starts over from what the file holds now.
                        job.forget_attempts();
                        if fingerprint != job.fingerprint() || job.committed() {
                            effects.cleanup = job.start_afresh_from(fingerprint);
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
            let mut job = self.record(id)?;
            match command_outcome(job.state(), job.committed(), Command::Publish) {
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
                    job.lift_hold();
                    job.touch(self.now());
                    self.inner.store.write(&job, None, None)?;
                    state.remember(&job);
                    Ok(job)
                }
                _ => Err(command_refused(id, &job, Command::Publish)),
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
                let file = job.file().to_path_buf();
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
                |job| Effects {
                    cleanup: job.recover_from(fingerprint),
                },
            )
        });
        self.durable().await?;
        Ok(items)
    }

    /// Forgets drafts. The file is not touched.
    pub async fn discard(&self, ids: Vec<u64>) -> Result<Vec<BatchItem>, ServiceError> {
        let items = self.batch(&ids, |state, id| {
            let job = self.record(id)?;
            if command_outcome(job.state(), job.committed(), Command::Discard) != Outcome::Removed {
                return Err(ServiceError::new(
                    ErrorCode::InvalidState,
                    format!("job {id} is {}, not a draft; cancel it first", job.state()),
                ));
            }
            self.inner.store.remove_job(id)?;
            state.jobs.remove(&id);
            self.emit(WireEvent::Removed { id });
            Ok(job)
        });
        self.durable().await?;
        Ok(items)
    }
}

impl Service {
    /// `edit`: changes a job's title, caption or privacy, as long as its destination has
    /// not taken them yet (before the upload starts; after it, only where the destination
    /// can still change them). The destination checks the new words as it did at `add`.
    pub async fn edit(&self, request: upq_proto::EditRequest) -> Result<JobView, ServiceError> {
        if request.is_empty() {
            return Err(ServiceError::new(
                ErrorCode::BadRequest,
                "nothing to change: give a title, a caption or a privacy",
            ));
        }
        let id = request.id;
        let fields = |job: &mut Job| {
            job.edit(
                request.title.as_deref(),
                request.caption.as_deref(),
                request.privacy.as_deref(),
            )
        };
        let asked: Vec<&'static str> = [
            ("title", &request.title),
            ("caption", &request.caption),
            ("privacy", &request.privacy),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_ref().map(|_| name))
        .collect();
        let mut edited = self.record(id)?;
        self.check_editable(&edited, &asked)?;
        if fields(&mut edited).is_empty() {
            return self.show(id);
        }
        if let Some(destination) = self.destination(edited.destination()) {
            destination
                .preflight(&UploadInfo::of(&edited))
                .await
                .map_err(|e| ServiceError::new(ErrorCode::Refused, e.message))?;
        }
        let view = {
            let mut state = self.lock();
            // It may have started, or ended, while the destination looked.
            let mut job = self.record(id)?;
            self.check_editable(&job, &asked)?;
            let changed = fields(&mut job);
            self.write_changed(
                &mut state,
                &mut job,
                format!("edited: {}", changed.join(", ")),
            )?;
            self.view_of(&state, &job)
        };
        self.durable().await?;
        Ok(view)
    }

    fn check_editable(&self, job: &Job, fields: &[&'static str]) -> Result<(), ServiceError> {
        let fixed: Vec<&str> = fields
            .iter()
            .copied()
            .filter(|field| !self.editable_now(job).contains(field))
            .collect();
        if fixed.is_empty() {
            return Ok(());
        }
        Err(ServiceError::new(
            ErrorCode::Refused,
            format!(
                "job {} cannot be edited: {}",
                job.id(),
                self.why_fixed(job, &fixed)
            ),
        ))
    }

    /// Which of the job's title, caption and privacy may change now.
    fn editable_now(&self, job: &Job) -> &'static [&'static str] {
        const ALL: &[&str] = &["title", "caption", "privacy"];
        // A draft uploads afresh when recovered: its words are upq's own.
        if job.state() == JobState::Canceled {
            return ALL;
        }
        if job.state() == JobState::Published || job.committed() {
            return &[];
        }
        if job.remote().is_none() {
            return ALL;
        }
        match self.destination(job.destination()) {
            Some(destination) => destination.editable_after_start(&UploadInfo::of(job)),
            // A destination no longer configured cannot be told anything; the job is ours.
            None => ALL,
        }
    }

    /// Why `fixed` (fields of the job) cannot change now.
    fn why_fixed(&self, job: &Job, fixed: &[&str]) -> String {
        if job.state() == JobState::Published || job.committed() {
            return "it is already public".into();
        }
        format!(
            "{} took its {} when the upload started and cannot change {} now (cancel \
             it, edit the draft and recover it to upload again)",
            job.destination(),
            fixed.join(" and "),
            if fixed.len() == 1 { "it" } else { "them" }
        )
    }

    /// What an edit of job `id` may change now, and why the rest may not: the desk's form.
    pub fn editable(&self, id: u64) -> Result<Editable, ServiceError> {
        let job = self.record(id)?;
        let fields = self.editable_now(&job);
        let fixed: Vec<&str> = ["title", "caption", "privacy"]
            .into_iter()
            .filter(|field| !fields.contains(field))
            .collect();
        Ok(Editable {
            fields,
            why_not: (!fixed.is_empty()).then(|| self.why_fixed(&job, &fixed)),
        })
    }
}

/// Which of a job's words an edit may change now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Editable {
    pub fields: &'static [&'static str],
    /// Why the others may not, when some may not.
    pub why_not: Option<String>,
}
