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
                .map(str::to_owned),
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

/// The state machine. `committed` says whether the commit point has been passed.
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
    match (event, state) {
        // A committed job only has processing left to do.
        (Event::Start, Queued | Retrying) if committed => Ok(Processing),
        (Event::Start, Queued | Retrying) => Ok(Uploading),
        (Event::Hold, Uploading) if !committed => Ok(Held),
        (Event::Commit, Uploading | Processing) if !committed => Ok(Processing),
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
        (Event::Pause, Queued | Uploading | Retrying) => Ok(Paused),
        (Event::Resume, Paused) => Ok(Queued),
        (Event::Cancel, Queued | Uploading | Retrying | Paused | Held) if !committed => {
            Ok(Canceled)
        }
        (Event::Cancel, Processing) if !committed => Ok(Canceled),
        (Event::Cancel, Uploading | Retrying | Processing | Publishing) if committed => {
            Err(TransitionError::TooLate)
        }
        (Event::Retry, Failed | Retrying) => Ok(Queued),
        (Event::Release, Held) => Ok(Queued),
        (Event::Recover, Canceled) => Ok(Queued),
        _ => refuse(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EVENTS: [Event; 14] = [
        Event::Start,
        Event::Hold,
        Event::Commit,
        Event::NeedsPublish,
        Event::Published,
        Event::FailTransient,
        Event::FailPermanent,
        Event::Interrupted,
        Event::Pause,
        Event::Resume,
        Event::Cancel,
        Event::Retry,
        Event::Release,
        Event::Recover,
    ];

    #[test]
    fn the_happy_path() {
        let mut state = JobState::Queued;
        for event in [Event::Start, Event::Commit, Event::Published] {
            state = transition(state, false, event).unwrap();
        }
        assert_eq!(state, JobState::Published);
    }

    #[test]
    fn cancel_after_commit_is_too_late() {
        assert_eq!(
            transition(JobState::Processing, true, Event::Cancel),
            Err(TransitionError::TooLate)
        );
        assert_eq!(
            transition(JobState::Held, false, Event::Cancel),
            Ok(JobState::Canceled)
        );
    }

    #[test]
    fn terminal_states_only_leave_by_user_command() {
        for event in EVENTS {
            let from_published = transition(JobState::Published, true, event);
            assert!(from_published.is_err(), "{event:?} left published");
            if !matches!(event, Event::Retry) {
                assert!(transition(JobState::Failed, false, event).is_err());
            }
            if !matches!(event, Event::Recover) {
                assert!(transition(JobState::Canceled, false, event).is_err());
            }
        }
    }

    fn any_event() -> impl Strategy<Value = Event> {
        (0..EVENTS.len()).prop_map(|i| EVENTS[i])
    }

    proptest! {
        /// Random event sequences only ever produce states allowed by the rules.
        #[test]
        fn random_sequences_stay_valid(events in proptest::collection::vec(any_event(), 0..200)) {
            let mut state = JobState::Queued;
            let mut committed = false;
            for event in events {
                match transition(state, committed, event) {
                    Ok(next) => {
                        // Once committed, nothing but success, failure, a retry or a pause applies.
                        if committed {
                            prop_assert!(matches!(
                                next,
                                JobState::Processing | JobState::Publishing | JobState::Published
                                    | JobState::Failed | JobState::Retrying | JobState::Queued
                                    | JobState::Paused
                            ), "{state} --{event:?}--> {next} after commit");
                        }
                        if event == Event::Commit {
                            committed = true;
                        }
                        // Both start a fresh remote upload; a retrying job keeps its session.
                        if event == Event::Recover || (event == Event::Retry && state == JobState::Failed) {
                            committed = false;
                        }
                        if next == JobState::Canceled {
                            prop_assert!(!committed, "canceled after the commit point");
                        }
                        prop_assert!(!(state.is_terminal() && next != JobState::Queued), "{state} left to {next}");
                        state = next;
                    }
                    Err(TransitionError::TooLate) => {
                        prop_assert!(committed);
                        prop_assert_eq!(event, Event::Cancel);
                    }
                    Err(TransitionError::InvalidState { state: s, .. }) => prop_assert_eq!(s, state),
                }
            }
        }

        /// A canceled job stays a draft until recovered, and recovery always works.
        #[test]
        fn drafts_are_never_lost(events in proptest::collection::vec(any_event(), 0..200)) {
            let mut state = JobState::Queued;
            let mut committed = false;
            for event in events {
                if let Ok(next) = transition(state, committed, event) {
                    if state == JobState::Canceled {
                        prop_assert_eq!(event, Event::Recover);
                        prop_assert_eq!(next, JobState::Queued);
                        committed = false;
                    }
                    if event == Event::Commit {
                        committed = true;
                    }
                    state = next;
                }
                if state == JobState::Canceled {
                    prop_assert_eq!(transition(state, committed, Event::Recover), Ok(JobState::Queued));
                }
            }
        }
    }
}
