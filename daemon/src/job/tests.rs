//! The state machine's tests: README's command table is the contract, and random event
//! sequences never cancel after the commit point or lose a draft.

use super::*;
use proptest::prelude::*;
use std::collections::HashMap;

const EVENTS: [Event; 15] = [
    Event::Start,
    Event::Hold,
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
