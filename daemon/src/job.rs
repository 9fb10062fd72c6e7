//! The job record and its state machine.
//!
//! `transition` is pure: given a state and an event it returns the next state or
//! refuses. No I/O, no clocks; the service persists what it decides.
//!
//! The record is shaped so that its invariants cannot be broken from outside: every field
//! is private, and what belongs together lives together.
//! - `Status` is the state with the data only that state has: a retry time exists only
//!   while `retrying`.
//! - `Remote` is the destination's upload: confirmed bytes, content hash and commit mark
//!   exist only with a session, and a location only once the commit point is passed. A
//!   committed job without a session, or a location before the commit, cannot be written.
//! - The methods below are the only writers, and each owns one invariant (`start_afresh`,
//!   `commit`, `enter`, `record_failure`…).
//!
//! Records written before this layout (schema 1 and 2, one flat record) are read by
//! `legacy`, which `store` uses to upgrade a database in place.

mod legacy;
mod machine;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use upq_proto::{HistoryEntry, JobError, JobState, JobView, Metadata};

pub use machine::{command_outcome, transition, Command, Event, Outcome, TransitionError};

/// What identifies the exact bytes of a file when it was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub size: u64,
    pub mtime_ns: i128,
    pub inode: u64,
    pub device: u64,
}

/// The destination's handle on a partial or finished upload; its shape is the destination's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteSession(pub serde_json::Value);

/// A job's state, with the data that only that state has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum Status {
    Queued,
    Uploading,
    /// Waits for its next attempt.
    Retrying {
        next_attempt_at: DateTime<Utc>,
    },
    Paused,
    Held,
    Processing,
    Publishing,
    Published,
    Failed,
    Canceled,
}

impl Status {
    /// The state a job enters; a retry time is set by `Job::record_failure`, and until
    /// then is "now".
    fn entering(state: JobState, now: DateTime<Utc>) -> Status {
        match state {
            JobState::Queued => Status::Queued,
            JobState::Uploading => Status::Uploading,
            JobState::Retrying => Status::Retrying {
                next_attempt_at: now,
            },
            JobState::Paused => Status::Paused,
            JobState::Held => Status::Held,
            JobState::Processing => Status::Processing,
            JobState::Publishing => Status::Publishing,
            JobState::Published => Status::Published,
            JobState::Failed => Status::Failed,
            JobState::Canceled => Status::Canceled,
        }
    }

    /// When a `retrying` job's next attempt may start; `None` in every other state.
    pub fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        match *self {
            Status::Retrying { next_attempt_at } => Some(next_attempt_at),
            _ => None,
        }
    }

    pub fn state(&self) -> JobState {
        match self {
            Status::Queued => JobState::Queued,
            Status::Uploading => JobState::Uploading,
            Status::Retrying { .. } => JobState::Retrying,
            Status::Paused => JobState::Paused,
            Status::Held => JobState::Held,
            Status::Processing => JobState::Processing,
            Status::Publishing => JobState::Publishing,
            Status::Published => JobState::Published,
            Status::Failed => JobState::Failed,
            Status::Canceled => JobState::Canceled,
        }
    }
}

/// The upload the destination holds for a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Remote {
    session: RemoteSession,
    /// Bytes the destination confirmed.
    bytes_sent: u64,
    /// BLAKE3 of every byte read from the source, once all were read.
    content_hash: Option<String>,
    /// Set once the commit point has been passed: cancel is then too late.
    commit: Option<Commit>,
}

/// What is known of an upload past its commit point.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Commit {
    /// Where the upload lives (path or URL), once the destination says.
    location: Option<String>,
    /// How the commit step went, for the history's last entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

/// The review settings: a hold until `publish`, and a time before which nothing goes public.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
struct Review {
    hold: bool,
    publish_at: Option<DateTime<Utc>>,
}

impl Review {
    /// True when the commit may go ahead: no hold and the review window is over.
    fn release_due(&self, now: DateTime<Utc>) -> bool {
        !self.hold && self.publish_at.is_none_or(|at| at <= now)
    }
}

/// The run of failed attempts since the offset last advanced.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct Failures {
    attempts: u32,
    /// Stalled attempts in a row.
    stalls: u32,
    last_error: Option<JobError>,
}

/// One job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    id: u64,
    file: PathBuf,
    destination: String,
    metadata: Metadata,
    fingerprint: Fingerprint,
    priority: i32,
    status: Status,
    review: Review,
    remote: Option<Remote>,
    /// Every byte pushed, resent ones included.
    bytes_transferred: u64,
    failures: Failures,
    warning: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// Number of history entries written, so the next gets a fresh key.
    history_len: u64,
    /// The post the job belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    post: Option<u64>,
    /// Runs whatever the upload policies say (`add --now`, `resume --now`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    ignore_policies: bool,
}

/// What the scheduler, the state filters and the counts read of a job: the part of the
/// record kept in memory for every job. The rest stays in the store and is read when a
/// door or a worker asks for it, so the daemon's memory follows the active uploads, not
/// the length of the queue (about 100 bytes a job, against 500 for a whole record).
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    status: Status,
    priority: i32,
    review: Review,
    /// A remote upload was opened.
    started: bool,
    committed: bool,
    /// Shared by every job of the destination.
    destination: Arc<str>,
    /// The post the job belongs to, if any.
    post: Option<u64>,
    ignore_policies: bool,
}

impl Summary {
    pub fn state(&self) -> JobState {
        self.status.state()
    }

    pub fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        self.status.next_attempt_at()
    }

    pub fn priority(&self) -> i32 {
        self.priority
    }

    pub fn hold(&self) -> bool {
        self.review.hold
    }

    pub fn publish_at(&self) -> Option<DateTime<Utc>> {
        self.review.publish_at
    }

    /// See `Job::release_due`.
    pub fn release_due(&self, now: DateTime<Utc>) -> bool {
        self.review.release_due(now)
    }

    /// True once a remote upload was opened.
    pub fn started(&self) -> bool {
        self.started
    }

    pub fn committed(&self) -> bool {
        self.committed
    }

    pub fn post(&self) -> Option<u64> {
        self.post
    }

    /// True when the upload policies do not hold this job back.
    pub fn ignores_policies(&self) -> bool {
        self.ignore_policies
    }

    pub fn destination(&self) -> &Arc<str> {
        &self.destination
    }
}

/// One shared copy of each destination's name, for the summaries.
#[derive(Debug, Default)]
pub struct Names(std::collections::HashSet<Arc<str>>);

impl Names {
    pub fn shared(&mut self, name: &str) -> Arc<str> {
        if let Some(shared) = self.0.get(name) {
            return shared.clone();
        }
        let shared: Arc<str> = name.into();
        self.0.insert(shared.clone());
        shared
    }
}

/// What a new job is made of; everything else starts empty.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub file: PathBuf,
    pub destination: String,
    pub metadata: Metadata,
    pub fingerprint: Fingerprint,
    pub publish_at: Option<DateTime<Utc>>,
    pub hold: bool,
    pub priority: i32,
    pub warning: Option<String>,
    pub ignore_policies: bool,
}

impl Job {
    /// A freshly queued job with id `id`, and the history entry that records it.
    pub fn queued(id: u64, new: NewJob, now: DateTime<Utc>) -> (Job, HistoryEntry) {
        let job = Job {
            id,
            file: new.file,
            destination: new.destination,
            metadata: new.metadata,
            fingerprint: new.fingerprint,
            priority: new.priority,
            status: Status::Queued,
            review: Review {
                hold: new.hold,
                publish_at: new.publish_at,
            },
            remote: None,
            bytes_transferred: 0,
            failures: Failures::default(),
            warning: new.warning,
            created_at: now,
            updated_at: now,
            history_len: 1,
            post: None,
            ignore_policies: new.ignore_policies,
        };
        let entry = HistoryEntry {
            at: now,
            from: None,
            to: JobState::Queued,
            reason: "queued".into(),
        };
        (job, entry)
    }

    /// Reads a stored job, in today's layout or the flat one of schema 1 and 2.
    pub fn decode(bytes: &[u8]) -> Result<Job, serde_json::Error> {
        serde_json::from_slice::<Job>(bytes).or_else(|current| {
            serde_json::from_slice::<legacy::FlatJob>(bytes)
                .map(Job::from)
                .map_err(|_| current)
        })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// The post the job belongs to, if any.
    pub fn post(&self) -> Option<u64> {
        self.post
    }

    /// Changes the title, caption and privacy given (an empty one is cleared); returns
    /// the names of those that changed.
    pub fn edit(
        &mut self,
        title: Option<&str>,
        caption: Option<&str>,
        privacy: Option<&str>,
    ) -> Vec<&'static str> {
        let mut changed = Vec::new();
        let fields = [
            ("title", title, &mut self.metadata.title),
            ("caption", caption, &mut self.metadata.caption),
            ("privacy", privacy, &mut self.metadata.privacy),
        ];
        for (name, new, field) in fields {
            let Some(new) = new else { continue };
            let new = (!new.is_empty()).then(|| new.to_string());
            if *field != new {
                *field = new;
                changed.push(name);
            }
        }
        changed
    }

    /// From now on the upload policies do not hold this job back (`resume --now`).
    pub fn ignore_policies(&mut self) {
        self.ignore_policies = true;
    }

    /// True when the upload policies do not hold this job back.
    pub fn ignores_policies(&self) -> bool {
        self.ignore_policies
    }

    /// Makes the job one of post `post`'s (when the post is stored with it).
    pub fn join_post(&mut self, post: u64) {
        self.post = Some(post);
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    pub fn destination(&self) -> &str {
        &self.destination
    }

    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    pub fn priority(&self) -> i32 {
        self.priority
    }

    pub fn state(&self) -> JobState {
        self.status.state()
    }

    pub fn status(&self) -> &Status {
        &self.status
    }

    /// When a `retrying` job's next attempt may start; `None` in every other state.
    pub fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        self.status.next_attempt_at()
    }

    pub fn hold(&self) -> bool {
        self.review.hold
    }

    pub fn publish_at(&self) -> Option<DateTime<Utc>> {
        self.review.publish_at
    }

    /// The destination's upload, if one was opened.
    pub fn remote(&self) -> Option<&RemoteSession> {
        self.remote.as_ref().map(|remote| &remote.session)
    }

    /// Bytes the destination confirmed.
    pub fn bytes_sent(&self) -> u64 {
        self.remote.as_ref().map_or(0, |remote| remote.bytes_sent)
    }

    pub fn bytes_transferred(&self) -> u64 {
        self.bytes_transferred
    }

    pub fn content_hash(&self) -> Option<&str> {
        self.remote.as_ref()?.content_hash.as_deref()
    }

    /// True once the commit point has been passed: cancel is then too late.
    pub fn committed(&self) -> bool {
        self.remote
            .as_ref()
            .is_some_and(|remote| remote.commit.is_some())
    }

    /// Where the upload lives (path or URL), once the destination said.
    pub fn location(&self) -> Option<&str> {
        self.remote.as_ref()?.commit.as_ref()?.location.as_deref()
    }

    /// What the commit step said of how the upload went public.
    pub fn commit_note(&self) -> Option<&str> {
        self.remote.as_ref()?.commit.as_ref()?.note.as_deref()
    }

    pub fn attempts(&self) -> u32 {
        self.failures.attempts
    }

    pub fn stalls(&self) -> u32 {
        self.failures.stalls
    }

    pub fn last_error(&self) -> Option<&JobError> {
        self.failures.last_error.as_ref()
    }

    pub fn warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }

    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    pub fn updated_at(&self) -> DateTime<Utc> {
        self.updated_at
    }

    pub fn history_len(&self) -> u64 {
        self.history_len
    }

    pub fn file_name(&self) -> String {
        self.file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("job-{}", self.id))
    }

    pub fn view(&self) -> JobView {
        JobView {
            id: self.id,
            file: self.file.to_string_lossy().into_owned(),
            destination: self.destination.clone(),
            state: self.state(),
            size: self.fingerprint.size,
            bytes_sent: self.bytes_sent(),
            bytes_transferred: self.bytes_transferred,
            attempts: self.failures.attempts,
            stalls: self.failures.stalls,
            last_error: self.failures.last_error.clone(),
            next_attempt_at: self.next_attempt_at(),
            publish_at: self.review.publish_at,
            hold: self.review.hold,
            priority: self.priority,
            created_at: self.created_at,
            updated_at: self.updated_at,
            metadata: self.metadata.clone(),
            remote: self.location().map(str::to_owned),
            upload_url: self
                .remote()
                .and_then(|session| session.0.get("url"))
                .and_then(|url| url.as_str())
                .map(crate::redact::redact_url),
            content_hash: self.content_hash().map(str::to_owned),
            speed: None,
            bytes_in_flight: None,
            review_url: None,
            processing_progress: None,
            waiting: None,
            post: self.post.map(upq_proto::PostId),
            ignore_policies: self.ignore_policies,
            warning: self.warning.clone(),
            actions: self.actions(),
            history: None,
        }
    }

    /// The commands that do something to the job now, by the contract: a `publish` that
    /// only lifts a hold is offered where there is a hold or a publish time to lift.
    pub fn actions(&self) -> Vec<String> {
        let (state, committed) = (self.state(), self.committed());
        let held = self.review.hold || self.review.publish_at.is_some();
        Command::ALL
            .into_iter()
            .filter(
                |&command| match command_outcome(state, committed, command) {
                    Outcome::To(_) | Outcome::Removed => true,
                    Outcome::LiftsHold => held,
                    Outcome::TooLate | Outcome::Refused => false,
                },
            )
            .map(|command| command.as_str().to_owned())
            .collect()
    }

    /// True when the commit may go ahead: no hold and the review window is over.
    pub fn release_due(&self, now: DateTime<Utc>) -> bool {
        self.review.release_due(now)
    }

    /// What scheduling reads of this job; `destination` is the caller's shared copy of
    /// the destination's name.
    pub fn summary(&self, destination: Arc<str>) -> Summary {
        Summary {
            status: self.status.clone(),
            priority: self.priority,
            review: self.review,
            started: self.remote.is_some(),
            committed: self.committed(),
            destination,
            post: self.post,
            ignore_policies: self.ignore_policies,
        }
    }

    /// Moves to `state` at `now` and counts the history entry that records it. Leaving
    /// `retrying` drops its retry time; reaching `published` ends the run of failures,
    /// whose story is in the history.
    pub fn enter(&mut self, state: JobState, now: DateTime<Utc>) {
        self.status = Status::entering(state, now);
        if state == JobState::Published {
            self.failures.last_error = None;
        }
        self.updated_at = now;
        self.history_len += 1;
    }

    /// Holds the job at its commit point until `publish`, whatever its review time says (a
    /// job of an all-or-nothing post whose other job failed); written with
    /// `Service::write_changed`, which gives the change a history entry of its own.
    pub fn hold_back(&mut self) {
        self.review.hold = true;
    }

    /// Marks a change without a state change.
    pub fn touch(&mut self, now: DateTime<Utc>) {
        self.updated_at = now;
    }

    /// Marks a change without a state change that gets a history entry of its own (an
    /// edit, `resume --now` of a waiting job).
    pub fn note_change(&mut self, now: DateTime<Utc>) {
        self.updated_at = now;
        self.history_len += 1;
    }

    /// Forgets the remote upload so the next attempt starts a new one from byte 0: nothing
    /// sent, no hash, not committed, nowhere published. Returns the session to clean up.
    pub fn start_afresh(&mut self) -> Option<RemoteSession> {
        self.remote.take().map(|remote| remote.session)
    }

    /// Starts afresh from the file as it is now (`fingerprint`). Returns the session to
    /// clean up.
    pub fn start_afresh_from(&mut self, fingerprint: Fingerprint) -> Option<RemoteSession> {
        self.fingerprint = fingerprint;
        self.start_afresh()
    }

    /// A draft goes back to the queue as a fresh upload of what the file holds now
    /// (`fingerprint`), with a warning if that changed. Returns the session to clean up.
    pub fn recover_from(&mut self, fingerprint: Fingerprint) -> Option<RemoteSession> {
        self.warning = (fingerprint != self.fingerprint).then(|| {
            format!(
                "{} changed since it was first queued; uploading its current content",
                self.file.display()
            )
        });
        self.forget_failures();
        self.start_afresh_from(fingerprint)
    }

    /// Passes the commit point of the upload in `session`: from now on cancel is too late.
    pub fn commit(&mut self, session: &RemoteSession) {
        let remote = self.attached(session);
        if remote.commit.is_none() {
            remote.commit = Some(Commit::default());
        }
    }

    /// Lifts the hold and the review time (publish command, or a held job's release).
    pub fn lift_hold(&mut self) {
        self.review = Review::default();
    }

    /// Records the offset the destination confirms for the upload in `session`. Whatever
    /// it holds was pushed at some point, even if the counter's last update was lost in a
    /// crash.
    pub fn record_offset(&mut self, session: &RemoteSession, offset: u64) {
        self.attached(session).bytes_sent = offset;
        self.bytes_transferred = self.bytes_transferred.max(offset);
    }

    /// Records a chunk of `len` bytes of the upload in `session` confirmed up to `offset`:
    /// progress ends the run of failed and stalled attempts.
    pub fn record_chunk(&mut self, session: &RemoteSession, offset: u64, len: u64) {
        self.attached(session).bytes_sent = offset;
        self.bytes_transferred += len;
        self.failures.attempts = 0;
        self.failures.stalls = 0;
    }

    /// Keeps the remote upload the destination opened or re-attached to.
    pub fn attach(&mut self, session: RemoteSession) {
        self.attached(&session);
    }

    /// Keeps what the destination learned about the finished upload in `session` (its
    /// platform id), with the offset, hash and commit of the upload it describes.
    pub fn settle(&mut self, session: RemoteSession) {
        if let Some(remote) = &mut self.remote {
            remote.session = session;
        }
    }

    /// The record of the upload in `session`, which replaces a different one (a session
    /// the destination re-opened under a new handle starts from what it confirms).
    fn attached(&mut self, session: &RemoteSession) -> &mut Remote {
        match &mut self.remote {
            Some(remote) if remote.session == *session => {}
            other => {
                let carried = other.take();
                *other = Some(Remote {
                    session: session.clone(),
                    bytes_sent: 0,
                    content_hash: None,
                    commit: carried.and_then(|remote| remote.commit),
                });
            }
        }
        self.remote.as_mut().expect("just attached")
    }

    /// Records the content hash of the upload in `session`, once every byte was read.
    pub fn record_content_hash(&mut self, session: &RemoteSession, hash: String) {
        self.attached(session).content_hash = Some(hash);
    }

    /// Records what the commit step said of how the upload went public.
    pub fn record_commit_note(&mut self, note: String) {
        if let Some(commit) = self.remote.as_mut().and_then(|r| r.commit.as_mut()) {
            commit.note = Some(note);
        }
    }

    /// Records where the upload lives (after the commit step, processing or publish).
    /// Only a committed upload has a location; before that this does nothing.
    pub fn record_location(&mut self, location: String) {
        if let Some(commit) = self.remote.as_mut().and_then(|r| r.commit.as_mut()) {
            commit.location = Some(location);
        }
    }

    /// Counts bytes that left but were never acknowledged as transferred.
    pub fn record_unacknowledged(&mut self, bytes: u64) {
        self.bytes_transferred += bytes;
    }

    /// Forgets the failed attempts and their last error.
    pub fn forget_failures(&mut self) {
        self.failures.attempts = 0;
        self.failures.last_error = None;
    }

    /// Forgets the count of failed attempts (a failed job retried from a fresh read of its
    /// file); the last error stays to say what happened before.
    pub fn forget_attempts(&mut self) {
        self.failures.attempts = 0;
    }

    /// Records a failed attempt: its count, the stalls in a row, and its error.
    pub fn record_failure(&mut self, attempts: u32, stalls: u32, error: JobError) {
        self.failures.attempts = attempts;
        self.failures.stalls = stalls;
        self.failures.last_error = Some(error);
    }

    /// Sets when a `retrying` job's next attempt may start; any other state has no retry
    /// time, and this does nothing to it.
    pub fn retry_at(&mut self, at: DateTime<Utc>) {
        if let Status::Retrying { next_attempt_at } = &mut self.status {
            *next_attempt_at = at;
        }
    }
}

#[cfg(test)]
mod tests;
