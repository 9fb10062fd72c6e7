//! The job record and its state machine.
//!
//! `transition` is pure: given a state and an event it returns the next state or
//! refuses. No I/O, no clocks; the service persists what it decides.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use upq_proto::{HistoryEntry, JobError, JobState, JobView, Metadata};

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

/// One job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: u64,
    pub file: PathBuf,
    pub destination: String,
    pub metadata: Metadata,
    pub fingerprint: Fingerprint,
    pub state: JobState,
    pub bytes_sent: u64,
    pub bytes_transferred: u64,
    /// Failed attempts since the offset last advanced.
    pub attempts: u32,
    /// Stalled attempts in a row since the offset last advanced.
    #[serde(default)]
    pub stalls: u32,
    pub last_error: Option<JobError>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub publish_at: Option<DateTime<Utc>>,
    pub hold: bool,
    pub priority: i32,
    pub remote: Option<RemoteSession>,
    /// Where the published upload lives (path or URL).
    pub location: Option<String>,
    /// BLAKE3 of every byte read from the source, once all were read.
    pub content_hash: Option<String>,
    /// Set once the commit point has been passed: cancel is then too late.
    pub committed: bool,
    pub warning: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Number of history entries written, so the next gets a fresh key.
    pub history_len: u64,
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
            state: JobState::Queued,
            bytes_sent: 0,
            bytes_transferred: 0,
            attempts: 0,
            stalls: 0,
            last_error: None,
            next_attempt_at: None,
            publish_at: new.publish_at,
            hold: new.hold,
            priority: new.priority,
            remote: None,
            location: None,
            content_hash: None,
            committed: false,
            warning: new.warning,
            created_at: now,
            updated_at: now,
            history_len: 1,
        };
        let entry = HistoryEntry {
            at: now,
            from: None,
            to: JobState::Queued,
            reason: "queued".into(),
        };
        (job, entry)
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
            state: self.state,
            size: self.fingerprint.size,
            bytes_sent: self.bytes_sent,
            bytes_transferred: self.bytes_transferred,
            attempts: self.attempts,
            stalls: self.stalls,
            last_error: self.last_error.clone(),
            next_attempt_at: self.next_attempt_at,
            publish_at: self.publish_at,
            hold: self.hold,
            priority: self.priority,
            created_at: self.created_at,
            updated_at: self.updated_at,
            metadata: self.metadata.clone(),
            remote: self.location.clone(),
            upload_url: self
                .remote
                .as_ref()
                .and_then(|session| session.0.get("url"))
                .and_then(|url| url.as_str())
                .map(crate::redact::redact_url),
            content_hash: self.content_hash.clone(),
            speed: None,
            warning: self.warning.clone(),
            history: None,
        }
    }

    /// True when the commit may go ahead: no hold and the review window is over.
    pub fn release_due(&self, now: DateTime<Utc>) -> bool {
        !self.hold && self.publish_at.is_none_or(|at| at <= now)
    }

    /// Forgets the remote upload so the next attempt starts a new one from byte 0: nothing
    /// sent, no hash, not committed, nowhere published. Returns the session to clean up.
    pub fn start_afresh(&mut self) -> Option<RemoteSession> {
        self.bytes_sent = 0;
        self.content_hash = None;
        self.committed = false;
        self.location = None;
        self.remote.take()
    }

    /// Passes the commit point: from now on cancel is too late.
    pub fn commit(&mut self) {
        self.committed = true;
    }

    /// Lifts the hold and the review time (publish command, or a held job's release).
    pub fn lift_hold(&mut self) {
        self.hold = false;
        self.publish_at = None;
    }

    /// Records the offset the destination confirms. Whatever it holds was pushed at some
    /// point, even if the counter's last update was lost in a crash.
    pub fn record_offset(&mut self, offset: u64) {
        self.bytes_sent = offset;
        self.bytes_transferred = self.bytes_transferred.max(offset);
    }

    /// Records a chunk of `len` bytes confirmed up to `offset`: progress ends the run of
    /// failed and stalled attempts.
    pub fn record_chunk(&mut self, offset: u64, len: u64) {
        self.bytes_sent = offset;
        self.bytes_transferred += len;
        self.attempts = 0;
        self.stalls = 0;
    }

    /// Keeps the remote upload the destination opened or re-attached to.
    pub fn attach(&mut self, session: RemoteSession) {
        self.remote = Some(session);
    }

    /// Records the content hash once every byte was read.
    pub fn record_content_hash(&mut self, hash: String) {
        self.content_hash = Some(hash);
    }

    /// Records where the upload lives (after the commit step, processing or publish).
    pub fn record_location(&mut self, location: String) {
        self.location = Some(location);
    }

    /// Counts bytes that left but were never acknowledged as transferred.
    pub fn record_unacknowledged(&mut self, bytes: u64) {
        self.bytes_transferred += bytes;
    }

    /// No retry time is pending: the job may start when the scheduler says.
    pub fn clear_retry_time(&mut self) {
        self.next_attempt_at = None;
    }

    /// Forgets the failed attempts, their last error and the retry time.
    pub fn forget_failures(&mut self) {
        self.attempts = 0;
        self.last_error = None;
        self.next_attempt_at = None;
    }

    /// Records a failed attempt: its count, its error and when the next one may start
    /// (`None` when there is none).
    pub fn record_failure(
        &mut self,
        attempts: u32,
        error: JobError,
        next_attempt_at: Option<DateTime<Utc>>,
    ) {
        self.attempts = attempts;
        self.last_error = Some(error);
        self.next_attempt_at = next_attempt_at;
    }
}

/// What can happen to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A worker takes the job (from `queued`, or `retrying` when its time has come):
    /// to `uploading`, or straight to `processing` once committed.
    Start,
    /// All bytes but the commit are at the destination and the job must wait.
    Hold,
    /// The commit point is being passed; the destination now processes.
    Commit,
    /// The commit point is being passed by a separate step (a folder's rename, a
    /// platform's privacy change): the job is `publishing` while that step runs.
    CommitStep,
    /// The destination finished processing and needs an explicit publish.
    NeedsPublish,
    /// The upload is public.
    Published,
    /// The attempt failed and will be tried again.
    FailTransient,
    /// The job cannot succeed.
    FailPermanent,
    /// The daemon stopped while the job was active; it runs again on start.
    Interrupted,
    Pause,
    Resume,
    Cancel,
    /// Re-queue a failed job, or a retrying one without waiting.
    Retry,
    /// Release a held job (publish command or its time came).
    Release,
    /// Put a draft back in the queue.
    Recover,
}

/// Why an event does not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("a {state} job cannot be {verb}")]
    InvalidState { state: JobState, verb: &'static str },
    #[error("the upload has passed its commit point and can no longer be stopped")]
    TooLate,
}

impl Event {
    fn verb(self) -> &'static str {
        match self {
            Event::Start => "started",
            Event::Hold => "held",
            Event::Commit => "committed",
            Event::CommitStep => "committed",
            Event::NeedsPublish => "published",
            Event::Published => "published",
            Event::FailTransient => "retried",
            Event::FailPermanent => "failed",
            Event::Interrupted => "interrupted",
            Event::Pause => "paused",
            Event::Resume => "resumed",
            Event::Cancel => "canceled",
            Event::Retry => "retried",
            Event::Release => "released",
            Event::Recover => "recovered",
        }
    }
}

/// What a user can ask of a job (over any door).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    Pause,
    Resume,
    Cancel,
    Retry,
    Publish,
    Recover,
    Discard,
}

impl Command {
    pub const ALL: [Command; 7] = [
        Command::Pause,
        Command::Resume,
        Command::Cancel,
        Command::Retry,
        Command::Publish,
        Command::Recover,
        Command::Discard,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Cancel => "cancel",
            Command::Retry => "retry",
            Command::Publish => "publish",
            Command::Recover => "recover",
            Command::Discard => "discard",
        }
    }

    /// The past participle, for "a {state} job cannot be {verb}".
    pub fn verb(self) -> &'static str {
        match self {
            Command::Pause => "paused",
            Command::Resume => "resumed",
            Command::Cancel => "canceled",
            Command::Retry => "retried",
            Command::Publish => "published",
            Command::Recover => "recovered",
            Command::Discard => "discarded",
        }
    }
}

/// What a command does to a job in a given state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The job moves to this state.
    To(JobState),
    /// The state stays; the job's hold and review time are lifted (publish before the hold).
    LiftsHold,
    /// The draft is forgotten (the file stays).
    Removed,
    /// Refused with `too_late`: the commit point is passed.
    TooLate,
    /// Refused with `invalid_state`: the command means nothing in this state.
    Refused,
}

/// The contract of the user commands: one row per state and commit mark, one column per
/// command, in `Command::ALL` order. README's "What each command does" is this table.
const CONTRACT: [(JobState, bool, [Outcome; 7]); 20] = {
    use JobState::*;
    use Outcome::{LiftsHold as Lift, Refused as No, Removed as Gone, To, TooLate as Late};
    [
        //                  pause       resume      cancel         retry      publish    recover    discard
        (
            Queued,
            false,
            [To(Paused), No, To(Canceled), No, Lift, No, No],
        ),
        (Queued, true, [Late, No, Late, No, No, No, No]),
        (
            Uploading,
            false,
            [To(Paused), No, To(Canceled), No, Lift, No, No],
        ),
        (Uploading, true, [Late, No, Late, No, No, No, No]),
        (
            Retrying,
            false,
            [To(Paused), No, To(Canceled), To(Queued), Lift, No, No],
        ),
        (Retrying, true, [Late, No, Late, To(Queued), No, No, No]),
        (
            Paused,
            false,
            [No, To(Queued), To(Canceled), No, Lift, No, No],
        ),
        (Paused, true, [No, To(Queued), Late, No, No, No, No]),
        (Held, false, [No, No, To(Canceled), No, To(Queued), No, No]),
        (Held, true, [No, No, Late, No, No, No, No]),
        (Processing, false, [No, No, To(Canceled), No, No, No, No]),
        (Processing, true, [Late, No, Late, No, No, No, No]),
        (Publishing, false, [Late, No, Late, No, No, No, No]),
        (Publishing, true, [Late, No, Late, No, No, No, No]),
        (Published, false, [No, No, Late, No, No, No, No]),
        (Published, true, [No, No, Late, No, No, No, No]),
        (Failed, false, [No, No, No, To(Queued), No, No, No]),
        (Failed, true, [No, No, No, To(Queued), No, No, No]),
        (Canceled, false, [No, No, No, No, No, To(Queued), Gone]),
        (Canceled, true, [No, No, No, No, No, To(Queued), Gone]),
    ]
};

/// What `command` does to a job in `state`; `committed` says whether its commit point is passed.
pub fn command_outcome(state: JobState, committed: bool, command: Command) -> Outcome {
    let column = Command::ALL
        .iter()
        .position(|c| *c == command)
        .expect("every command has a column");
    CONTRACT
        .iter()
        .find(|(s, c, _)| *s == state && *c == committed)
        .map(|(_, _, outcomes)| outcomes[column])
        .expect("every state has a row for each commit mark")
}

impl Event {
    /// The user command an event carries out, for the events that are one.
    fn command(self) -> Option<Command> {
        match self {
            Event::Pause => Some(Command::Pause),
            Event::Resume => Some(Command::Resume),
            Event::Cancel => Some(Command::Cancel),
            Event::Retry => Some(Command::Retry),
            Event::Release => Some(Command::Publish),
            Event::Recover => Some(Command::Recover),
            _ => None,
        }
    }
}

/// The state machine. `committed` says whether the commit point has been passed.
/// User commands follow `CONTRACT`; the rest are the workers' steps.
pub fn transition(
    state: JobState,
    committed: bool,
    event: Event,
) -> Result<JobState, TransitionError> {
    use JobState::*;
    let refuse = || {
        Err(TransitionError::InvalidState {
            state,
            verb: event.verb(),
        })
    };
    if let Some(command) = event.command() {
        return match command_outcome(state, committed, command) {
            Outcome::To(next) => Ok(next),
            Outcome::TooLate => Err(TransitionError::TooLate),
            Outcome::LiftsHold | Outcome::Removed | Outcome::Refused => refuse(),
        };
    }
    match (event, state) {
        // A committed job only has processing left to do.
        (Event::Start, Queued | Retrying) if committed => Ok(Processing),
        (Event::Start, Queued | Retrying) => Ok(Uploading),
        (Event::Hold, Uploading) if !committed => Ok(Held),
        (Event::Commit, Uploading | Processing) if !committed => Ok(Processing),
        (Event::CommitStep, Uploading) if !committed => Ok(Publishing),
        // After an interruption, a commit step that never finished runs again.
        (Event::CommitStep, Queued | Retrying) if committed => Ok(Publishing),
        (Event::NeedsPublish, Processing) => Ok(Publishing),
        (Event::Published, Processing | Publishing) => Ok(Published),
        // From `retrying` too: an attempt can fail before the job is back in `uploading`.
        (Event::FailTransient, Queued | Retrying | Uploading | Processing | Publishing) => {
            Ok(Retrying)
        }
        (Event::FailPermanent, Queued | Uploading | Retrying | Processing | Publishing) => {
            Ok(Failed)
        }
        (Event::Interrupted, Uploading | Processing | Publishing) => Ok(Queued),
        _ => refuse(),
    }
}

#[cfg(test)]
mod tests;
