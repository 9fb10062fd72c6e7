//! The soak's own model of DESIGN.md's state machine: which moves a job's history may make,
//! and which of them only a user command can cause.
//!
//! Written from the design's table and rules, not from the daemon's code, so that a bug in
//! the daemon's transitions cannot hide behind a model that shares it.

use upq_proto::{HistoryEntry, JobState};

/// Commands the soak gave a job and the daemon accepted, by kind.
#[derive(Debug, Default, Clone)]
pub struct UserCommands {
    pub pause: u32,
    pub resume: u32,
    pub cancel: u32,
    pub recover: u32,
    pub retry: u32,
    pub publish: u32,
}

impl UserCommands {
    /// Counts one accepted command (`upqctl` verb).
    pub fn record(&mut self, verb: &str) {
        let counter = match verb {
            "pause" => &mut self.pause,
            "resume" => &mut self.resume,
            "cancel" => &mut self.cancel,
            "recover" => &mut self.recover,
            "retry" => &mut self.retry,
            "publish" => &mut self.publish,
            other => panic!("not a job command: {other}"),
        };
        *counter += 1;
    }
}

/// Whether a job may move `from` → `to`; `committed` is true once the job passed its commit
/// point since it was last queued afresh: it entered `processing` (the final chunk of tus) or
/// `publishing` (the separate commit step of a folder, the rename into place).
///
/// Terminal states: `published` has no way out; `failed` leaves only by `retry` and
/// `canceled` only by `recover`, both to `queued`.
pub fn legal_move(from: JobState, to: JobState, committed: bool) -> bool {
    use JobState::*;
    match (from, to) {
        // A fresh or resumed attempt; a committed job only has processing left.
        (Queued | Retrying, Uploading) => !committed,
        (Queued | Retrying, Processing) => committed,
        // A separate commit step interrupted by a restart or a failure runs again.
        (Queued | Retrying, Publishing) => committed,
        // The user stops it; it keeps its remote session.
        (Queued | Uploading | Retrying, Paused) => true,
        // Cancel before the commit point only: after it, cancel must answer too_late.
        (Queued | Uploading | Retrying | Paused | Held, Canceled) => !committed,
        // Transient failures (and a stall) wait; permanent ones or exhausted attempts give up.
        (Queued | Uploading | Retrying | Processing | Publishing, Retrying | Failed) => true,
        // Interrupted by a restart, or `retry` of a waiting job.
        (Uploading | Processing | Publishing | Retrying, Queued) => true,
        // All bytes but the commit are sent: hold for review, or commit.
        (Uploading, Held | Processing | Publishing) => !committed,
        (Processing, Publishing) => committed,
        (Processing | Publishing, Published) => committed,
        // `resume`, `publish`, `retry`, `recover`.
        (Paused | Failed | Canceled, Queued) => true,
        (Held, Queued) => !committed,
        _ => false,
    }
}

/// Checks one job's history against the model: an unbroken chain from `queued` in time
/// order, every move legal, ending in `state`, and every move only a user can cause backed
/// by an accepted command (pause, resume, cancel, recover, retry of a failed job, publish).
pub fn check_history(
    history: &[HistoryEntry],
    state: JobState,
    commands: &UserCommands,
) -> Result<(), String> {
    use JobState::*;
    let first = history.first().ok_or("the history is empty")?;
    if first.from.is_some() || first.to != Queued {
        return Err(format!(
            "the history starts with {:?} -> {}, not - -> queued",
            first.from, first.to
        ));
    }
    let mut committed = false;
    let mut by_user = UserCommands::default();
    for (index, pair) in history.windows(2).enumerate() {
        let (before, entry) = (&pair[0], &pair[1]);
        let from = entry
            .from
            .ok_or(format!("entry {} has no from state", index + 1))?;
        if from != before.to {
            return Err(format!(
                "entry {} starts at {from} but the job was {}",
                index + 1,
                before.to
            ));
        }
        if entry.at < before.at {
            return Err(format!("entry {} goes back in time", index + 1));
        }
        if !legal_move(from, entry.to, committed) {
            return Err(format!(
                "entry {} moves {from} -> {} ({}committed): not a legal move",
                index + 1,
                entry.to,
                if committed { "" } else { "not " }
            ));
        }
        match (from, entry.to) {
            (_, Paused) => by_user.pause += 1,
            (Paused, Queued) => by_user.resume += 1,
            (_, Canceled) => by_user.cancel += 1,
            (Canceled, Queued) => {
                by_user.recover += 1;
                // A recovered draft starts a fresh remote upload.
                committed = false;
            }
            (Failed, Queued) => by_user.retry += 1,
            (Held, Queued) => by_user.publish += 1,
            (_, Processing | Publishing) => committed = true,
            _ => {}
        }
    }
    let last = history.last().expect("not empty").to;
    if last != state {
        return Err(format!("the history ends at {last} but the job is {state}"));
    }
    for (what, caused, given) in [
        ("paused", by_user.pause, commands.pause),
        ("resumed", by_user.resume, commands.resume),
        ("canceled", by_user.cancel, commands.cancel),
        ("recovered", by_user.recover, commands.recover),
        ("retried after failing", by_user.retry, commands.retry),
        ("released from hold", by_user.publish, commands.publish),
    ] {
        if caused > given {
            return Err(format!(
                "{what} {caused} times, but only {given} such commands were accepted"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, Utc};
    use JobState::*;

    fn history(states: &[JobState]) -> Vec<HistoryEntry> {
        let start = Utc::now();
        states
            .iter()
            .enumerate()
            .map(|(i, &to)| HistoryEntry {
                at: start + Duration::milliseconds(i as i64),
                from: i.checked_sub(1).map(|p| states[p]),
                to,
                reason: String::new(),
            })
            .collect()
    }

    #[test]
    fn accepts_a_restarted_and_published_job() {
        let path = [
            Queued, Uploading, Retrying, Uploading, Queued, Uploading, Processing, Published,
        ];
        assert_eq!(
            check_history(&history(&path), Published, &UserCommands::default()),
            Ok(())
        );
    }

    #[test]
    fn a_folder_commits_in_publishing_and_runs_it_again_after_a_restart() {
        let path = [Queued, Uploading, Publishing, Queued, Publishing, Published];
        assert_eq!(
            check_history(&history(&path), Published, &UserCommands::default()),
            Ok(())
        );
        let canceled = [Queued, Uploading, Publishing, Queued, Canceled];
        let commands = UserCommands {
            cancel: 1,
            ..Default::default()
        };
        let problem = check_history(&history(&canceled), Canceled, &commands).unwrap_err();
        assert!(
            problem.contains("queued -> canceled (committed)"),
            "{problem}"
        );
    }

    #[test]
    fn refuses_a_cancel_after_the_commit_point() {
        let path = [Queued, Uploading, Processing, Retrying, Queued, Canceled];
        let commands = UserCommands {
            cancel: 1,
            ..Default::default()
        };
        let problem = check_history(&history(&path), Canceled, &commands).unwrap_err();
        assert!(
            problem.contains("queued -> canceled (committed)"),
            "{problem}"
        );
    }

    #[test]
    fn refuses_a_pause_nobody_asked_for() {
        let path = [
            Queued, Uploading, Paused, Queued, Uploading, Processing, Published,
        ];
        let commands = UserCommands {
            resume: 1,
            ..Default::default()
        };
        let problem = check_history(&history(&path), Published, &commands).unwrap_err();
        assert!(problem.starts_with("paused 1 times"), "{problem}");
    }

    #[test]
    fn refuses_leaving_published_and_a_broken_chain() {
        let path = [Queued, Uploading, Processing, Published, Queued];
        assert!(check_history(&history(&path), Queued, &UserCommands::default()).is_err());
        let mut broken = history(&[Queued, Uploading, Processing]);
        broken[2].from = Some(Queued);
        assert!(check_history(&broken, Processing, &UserCommands::default()).is_err());
    }

    #[test]
    fn a_recovered_draft_uploads_afresh() {
        let path = [
            Queued, Uploading, Canceled, Queued, Uploading, Processing, Published,
        ];
        let commands = UserCommands {
            cancel: 1,
            recover: 1,
            ..Default::default()
        };
        assert_eq!(check_history(&history(&path), Published, &commands), Ok(()));
    }
}
