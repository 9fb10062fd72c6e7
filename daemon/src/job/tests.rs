//! The state machine's tests: README's command table is the contract, and random event
//! sequences never cancel after the commit point or lose a draft.

use super::*;
use proptest::prelude::*;
use std::collections::HashMap;

const EVENTS: [Event; 16] = [
    Event::Start,
    Event::Hold,
    Event::AwaitProcessing,
    Event::Commit,
    Event::CommitStep,
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

/// README's words for an outcome, written out here rather than derived from `CONTRACT`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Documented {
    State(String),
    Refused,
    TooLate,
    LiftsHold,
    Removed,
}

/// The table under "What each command does" in README.md: (state, committed, command) → outcome.
fn documented_contract() -> HashMap<(String, bool, String), Documented> {
    let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"));
    let section = readme
        .split("### What each command does")
        .nth(1)
        .expect("README has the command table");
    let mut rows = section
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            line.trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().to_string())
                .collect::<Vec<_>>()
        });
    let header = rows.next().expect("a header row");
    assert_eq!(header[..2], ["state".to_string(), "committed".to_string()]);
    let mut table = HashMap::new();
    for row in rows.skip(1) {
        let committed = match row[1].as_str() {
            "yes" => true,
            "no" => false,
            other => panic!("committed is yes or no, not {other:?}"),
        };
        for (command, cell) in header[2..].iter().zip(&row[2..]) {
            let outcome = match cell.as_str() {
                "refused" => Documented::Refused,
                "too late" => Documented::TooLate,
                "lifts hold" => Documented::LiftsHold,
                "removed" => Documented::Removed,
                state => Documented::State(state.to_string()),
            };
            table.insert((row[0].clone(), committed, command.clone()), outcome);
        }
    }
    table
}

fn documented(
    table: &HashMap<(String, bool, String), Documented>,
    state: JobState,
    committed: bool,
    command: Command,
) -> Documented {
    table
        .get(&(
            state.as_str().to_string(),
            committed,
            command.as_str().to_string(),
        ))
        .unwrap_or_else(|| panic!("README has no cell for {state} {committed} {command:?}"))
        .clone()
}

fn as_documented(outcome: Outcome) -> Documented {
    match outcome {
        Outcome::To(state) => Documented::State(state.as_str().to_string()),
        Outcome::TooLate => Documented::TooLate,
        Outcome::Refused => Documented::Refused,
        Outcome::LiftsHold => Documented::LiftsHold,
        Outcome::Removed => Documented::Removed,
    }
}

/// What `transition` answers for a command's event, in README's words.
fn transition_as_documented(state: JobState, committed: bool, event: Event) -> Option<Documented> {
    event.command()?;
    Some(match transition(state, committed, event) {
        Ok(next) => Documented::State(next.as_str().to_string()),
        Err(TransitionError::TooLate) => Documented::TooLate,
        Err(TransitionError::InvalidState { .. }) => Documented::Refused,
    })
}

#[test]
fn the_readme_table_is_the_contract() {
    let table = documented_contract();
    assert_eq!(table.len(), JobState::ALL.len() * 2 * Command::ALL.len());
    for state in JobState::ALL {
        for committed in [false, true] {
            for command in Command::ALL {
                assert_eq!(
                    as_documented(command_outcome(state, committed, command)),
                    documented(&table, state, committed, command),
                    "{state} committed={committed} {command:?}"
                );
            }
        }
    }
}

#[test]
fn every_committed_job_answers_too_late_to_cancel_until_it_is_over() {
    for state in JobState::ALL
        .into_iter()
        .filter(|s| !matches!(s, JobState::Failed | JobState::Canceled))
    {
        assert_eq!(
            transition(state, true, Event::Cancel),
            Err(TransitionError::TooLate),
            "{state}"
        );
    }
    assert_eq!(
        transition(JobState::Queued, true, Event::Pause),
        Err(TransitionError::TooLate)
    );
    assert_eq!(
        transition(JobState::Held, false, Event::Cancel),
        Ok(JobState::Canceled)
    );
}

#[test]
fn the_happy_path() {
    let mut state = JobState::Queued;
    for event in [Event::Start, Event::Commit, Event::Published] {
        state = transition(state, false, event).unwrap();
    }
    assert_eq!(state, JobState::Published);
}

#[test]
fn a_separate_commit_step_runs_in_publishing() {
    let mut state = JobState::Queued;
    for event in [Event::Start, Event::CommitStep, Event::Published] {
        state = transition(state, event == Event::Published, event).unwrap();
        if event == Event::CommitStep {
            assert_eq!(state, JobState::Publishing);
        }
    }
    assert_eq!(state, JobState::Published);
    // Interrupted mid-step: the step runs again, and cancel stays too late.
    assert_eq!(
        transition(JobState::Queued, true, Event::CommitStep),
        Ok(JobState::Publishing)
    );
    assert_eq!(
        transition(JobState::Queued, false, Event::CommitStep),
        Err(TransitionError::InvalidState {
            state: JobState::Queued,
            verb: "committed"
        })
    );
    assert_eq!(
        transition(JobState::Publishing, true, Event::Cancel),
        Err(TransitionError::TooLate)
    );
}

#[test]
fn a_review_of_what_the_platform_made_holds_after_processing() {
    let mut state = JobState::Queued;
    for (event, expected) in [
        (Event::Start, JobState::Uploading),
        (Event::AwaitProcessing, JobState::Processing),
        (Event::Hold, JobState::Held),
        (Event::Release, JobState::Queued),
        (Event::Start, JobState::Uploading),
        (Event::CommitStep, JobState::Publishing),
    ] {
        state = transition(state, false, event).unwrap();
        assert_eq!(state, expected, "{event:?}");
    }
    // Uncommitted while the platform processes: cancel still deletes, publish lifts the hold.
    assert_eq!(
        transition(JobState::Processing, false, Event::Cancel),
        Ok(JobState::Canceled)
    );
    assert_eq!(
        command_outcome(JobState::Processing, false, Command::Publish),
        Outcome::LiftsHold
    );
    assert!(transition(JobState::Processing, true, Event::Hold).is_err());
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
    /// Along random event sequences, every command answers what README's table says for
    /// the state and commit mark the job is in, and nothing is canceled after the commit.
    #[test]
    fn commands_follow_the_documented_table(events in proptest::collection::vec(any_event(), 0..200)) {
        let table = documented_contract();
        let mut state = JobState::Queued;
        let mut committed = false;
        for event in events {
            for probe in EVENTS {
                if let Some(answer) = transition_as_documented(state, committed, probe) {
                    let command = probe.command().expect("a command event");
                    // Lifting a hold and removing a draft are no state changes: the
                    // service does them, and the state machine refuses them as moves.
                    let expected = match documented(&table, state, committed, command) {
                        Documented::LiftsHold | Documented::Removed => Documented::Refused,
                        other => other,
                    };
                    prop_assert_eq!(answer, expected, "{} committed={} {:?}", state, committed, probe);
                }
            }
            match transition(state, committed, event) {
                Ok(next) => {
                    if matches!(event, Event::Commit | Event::CommitStep) {
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
                    prop_assert!(committed || state == JobState::Publishing || state == JobState::Published);
                    prop_assert!(matches!(event, Event::Cancel | Event::Pause));
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
                if matches!(event, Event::Commit | Event::CommitStep) {
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

/// A flat record as schema 2 wrote it, with `changes` applied.
fn flat_record(changes: serde_json::Value) -> Vec<u8> {
    let mut record = serde_json::json!({
        "id": 9, "file": "/videos/a.mp4", "destination": "local",
        "metadata": {"title": "A"},
        "fingerprint": {"size": 1000, "mtime_ns": 1, "inode": 2, "device": 3},
        "state": "uploading", "bytes_sent": 0, "bytes_transferred": 0, "attempts": 0,
        "last_error": null, "next_attempt_at": null, "publish_at": null, "hold": false,
        "priority": 0, "remote": null, "location": null, "content_hash": null,
        "committed": false, "warning": null,
        "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:01:00Z",
        "history_len": 2
    });
    for (key, value) in changes.as_object().unwrap() {
        record[key] = value.clone();
    }
    serde_json::to_vec(&record).unwrap()
}

#[test]
fn a_flat_record_keeps_what_it_meant() {
    let job = Job::decode(&flat_record(serde_json::json!({
        "state": "retrying", "bytes_sent": 400, "bytes_transferred": 600, "attempts": 2,
        "stalls": 1, "last_error": {"kind": "network", "message": "reset"},
        "next_attempt_at": "2026-01-01T00:02:00Z", "remote": {"url": "http://x/1"},
        "content_hash": null, "hold": true, "publish_at": "2026-01-02T00:00:00Z",
    })))
    .unwrap();
    assert_eq!(job.state(), JobState::Retrying);
    assert_eq!(
        job.next_attempt_at(),
        Some("2026-01-01T00:02:00Z".parse().unwrap())
    );
    assert_eq!((job.bytes_sent(), job.bytes_transferred()), (400, 600));
    assert_eq!((job.attempts(), job.stalls()), (2, 1));
    assert_eq!(job.last_error().map(|e| e.kind.as_str()), Some("network"));
    assert!(job.hold() && job.publish_at().is_some() && !job.committed());
    assert_eq!(
        job.remote(),
        Some(&RemoteSession(serde_json::json!({"url": "http://x/1"})))
    );
    // Written back, it reads in today's layout alone.
    let stored = serde_json::to_vec(&job).unwrap();
    assert_eq!(serde_json::from_slice::<Job>(&stored).unwrap(), job);
}

#[test]
fn a_flat_record_loses_only_what_could_not_be() {
    // A retry time outside `retrying`, and bytes with nothing at the destination.
    let job = Job::decode(&flat_record(serde_json::json!({
        "state": "queued", "next_attempt_at": "2026-01-01T00:02:00Z", "bytes_sent": 10,
    })))
    .unwrap();
    assert_eq!((job.next_attempt_at(), job.bytes_sent()), (None, 0));
    // Past the commit point with no session left: it cannot be followed to its end, and
    // says so instead of starting a second upload.
    let job = Job::decode(&flat_record(serde_json::json!({
        "state": "processing", "committed": true, "location": "https://x/v",
    })))
    .unwrap();
    assert_eq!(job.state(), JobState::Failed);
    assert_eq!(job.last_error().map(|e| e.kind.as_str()), Some("internal"));
    assert!(!job.committed() && job.location().is_none());
    // A published one keeps where it went.
    let job = Job::decode(&flat_record(serde_json::json!({
        "state": "published", "committed": true, "location": "https://x/v",
        "remote": {"url": "http://x/1"}, "bytes_sent": 1000, "content_hash": "ab",
    })))
    .unwrap();
    assert_eq!(job.state(), JobState::Published);
    assert!(job.committed());
    assert_eq!(job.location(), Some("https://x/v"));
    assert_eq!(job.content_hash(), Some("ab"));
}

#[test]
fn a_record_that_reads_in_neither_layout_reports_todays_error() {
    let error = Job::decode(br#"{"id": 1}"#).unwrap_err();
    assert!(error.to_string().contains("missing field"), "{error}");
}

#[test]
fn committing_needs_the_session_and_a_location_needs_the_commit() {
    let (mut job, _) = Job::queued(
        1,
        NewJob {
            file: "/videos/a.mp4".into(),
            destination: "local".into(),
            metadata: Default::default(),
            fingerprint: Fingerprint {
                size: 10,
                mtime_ns: 0,
                inode: 0,
                device: 0,
            },
            publish_at: None,
            hold: false,
            priority: 0,
            warning: None,
            ignore_policies: false,
        },
        chrono::Utc::now(),
    );
    let session = RemoteSession(serde_json::json!({"url": "http://x/1"}));
    job.record_location("too early".into());
    assert_eq!(job.location(), None);
    job.record_chunk(&session, 10, 10);
    job.commit(&session);
    job.record_location("https://x/v".into());
    assert!(job.committed());
    assert_eq!(
        (job.bytes_sent(), job.location()),
        (10, Some("https://x/v"))
    );
    // Leaving `retrying` drops the retry time.
    job.enter(JobState::Retrying, chrono::Utc::now());
    job.retry_at(chrono::Utc::now());
    assert!(job.next_attempt_at().is_some());
    job.enter(JobState::Queued, chrono::Utc::now());
    assert_eq!(job.next_attempt_at(), None);
    // Starting afresh forgets the upload, its commit and location with it.
    assert_eq!(job.start_afresh(), Some(session));
    assert!(!job.committed() && job.location().is_none() && job.bytes_sent() == 0);
}
