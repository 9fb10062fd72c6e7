//! The state machine: which events move a job where, and the contract of the user
//! commands. Pure: no I/O, no clocks, no record.

pub use upq_proto::Command;
use upq_proto::JobState;

/// What can happen to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A worker takes the job (from `queued`, or `retrying` when its time has come):
    /// to `uploading`, or straight to `processing` once committed.
    Start,
    /// All bytes but the commit are at the destination and the job must wait.
    Hold,
    /// Every byte is up, uncommitted (a private video): the platform processes it before the
    /// review window ends, so the review is of what the platform made of it.
    AwaitProcessing,
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
            Event::AwaitProcessing => "processed",
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
        (Processing, false, [No, No, To(Canceled), No, Lift, No, No]),
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
    pub(crate) fn command(self) -> Option<Command> {
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
        (Event::Hold, Uploading | Processing) if !committed => Ok(Held),
        (Event::AwaitProcessing, Uploading) if !committed => Ok(Processing),
        (Event::Commit, Uploading | Processing) if !committed => Ok(Processing),
        (Event::CommitStep, Uploading | Processing) if !committed => Ok(Publishing),
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
