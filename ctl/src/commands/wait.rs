//! `upqctl wait ID…`: blocks until the named jobs end, then exits 0 only if all were published.
//! Subscribes before reading the current state, so no change can slip between the two.

use std::time::{Duration, Instant};

use serde_json::Value;
use upq_proto::{ErrorCode, Event, JobState, JobView};

use super::{unique_ids, Ctx};
use crate::exit;
use crate::render::{outcome_line, print_json};

/// What is known of one waited-for job.
struct Waited {
    id: u64,
    job: Option<JobView>,
    /// The job object as the daemon sent it, for `--json`.
    raw: Value,
    /// Forgotten by the daemon (`discard`) while we waited.
    removed: bool,
    /// A held-job hint was already printed.
    hinted: bool,
}

impl Waited {
    fn state(&self) -> Option<JobState> {
        if self.removed {
            None
        } else {
            self.job.as_ref().map(|job| job.state)
        }
    }

    fn is_done(&self) -> bool {
        self.removed || self.state().is_some_and(JobState::is_terminal)
    }
}

/// 124 on timeout, 0 when every job was published, else 1. `None` is a job that vanished.
pub fn exit_for(states: &[Option<JobState>], timed_out: bool) -> u8 {
    if timed_out {
        exit::TIMEOUT
    } else if states
        .iter()
        .all(|state| *state == Some(JobState::Published))
    {
        exit::SUCCESS
    } else {
        exit::FAILED
    }
}

struct Waiter<'a> {
    ctx: &'a Ctx,
    jobs: Vec<Waited>,
}

impl Waiter<'_> {
    fn all_done(&self) -> bool {
        self.jobs.iter().all(Waited::is_done)
    }

    /// Records a job snapshot and says what changed when it matters.
    fn update(&mut self, job: JobView, raw: Value) {
        let json = self.ctx.json;
        let Some(waited) = self.jobs.iter_mut().find(|waited| waited.id == job.id) else {
            return;
        };
        if waited.is_done() && waited.job.as_ref().map(|known| known.state) == Some(job.state) {
            return;
        }
        if !json && job.state.is_terminal() {
            println!("{}", outcome_line(&job, self.ctx.paint));
        }
        if !json && job.state == JobState::Held && job.hold && !waited.hinted {
            eprintln!(
                "{} is held; release it with `upqctl publish {}`",
                job.id, job.id
            );
            waited.hinted = true;
        }
        waited.job = Some(job);
        waited.raw = raw;
    }

    fn removed(&mut self, id: u64) {
        if let Some(waited) = self.jobs.iter_mut().find(|waited| waited.id == id) {
            if !waited.removed && !self.ctx.json {
                println!("{id} was discarded");
            }
            waited.removed = true;
        }
    }

    /// Reads the current state of every job still running; unknown ids are an error
    /// the first time and a discarded job afterwards.
    fn refresh(&mut self, first: bool) -> anyhow::Result<()> {
        let pending: Vec<u64> = self
            .jobs
            .iter()
            .filter(|waited| !waited.is_done())
            .map(|waited| waited.id)
            .collect();
        for id in pending {
            match self.ctx.backend.show(id) {
                Ok((job, raw)) => self.update(job, raw),
                Err(error) if !first && error.code() == Some(ErrorCode::NotFound) => {
                    self.removed(id)
                }
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    fn still_waiting(&self) -> String {
        let parts: Vec<String> = self
            .jobs
            .iter()
            .filter(|waited| !waited.is_done())
            .map(|waited| match waited.state() {
                Some(state) => format!("{} ({state})", waited.id),
                None => waited.id.to_string(),
            })
            .collect();
        parts.join(", ")
    }
}

pub fn run(ctx: &Ctx, ids: Vec<u64>, timeout: Option<Duration>) -> anyhow::Result<u8> {
    let deadline = timeout.map(|timeout| Instant::now() + timeout);
    let ids = unique_ids(ids);
    let mut events = ctx.backend.subscribe(ids.clone())?;
    let mut waiter = Waiter {
        ctx,
        jobs: ids
            .iter()
            .map(|&id| Waited {
                id,
                job: None,
                raw: Value::Null,
                removed: false,
                hinted: false,
            })
            .collect(),
    };
    waiter.refresh(true)?;

    let mut timed_out = false;
    while !waiter.all_done() {
        match events.next_event(deadline) {
            Ok((Event::State { job, .. }, raw)) => {
                let raw_job = raw.get("job").cloned().unwrap_or(Value::Null);
                waiter.update(*job, raw_job);
            }
            Ok((Event::Removed { id }, _)) => waiter.removed(id),
            Ok((Event::Lagged { .. }, _)) => waiter.refresh(false)?,
            Ok((Event::Progress { .. } | Event::Processing { .. } | Event::Unknown, _)) => {}
            Err(error) if error.is_timeout() => {
                timed_out = true;
                break;
            }
            Err(error) => return Err(error.into()),
        }
    }

    if timed_out {
        let waited = timeout.unwrap_or_default();
        eprintln!(
            "upqctl: timed out after {}; still waiting for {}",
            humantime::format_duration(waited),
            waiter.still_waiting()
        );
    }
    if ctx.json {
        let jobs: Vec<Value> = waiter
            .jobs
            .iter()
            .map(|waited| waited.raw.clone())
            .collect();
        print_json(&Value::Array(jobs))?;
    }
    let states: Vec<Option<JobState>> = waiter.jobs.iter().map(Waited::state).collect();
    Ok(exit_for(&states, timed_out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        let published = Some(JobState::Published);
        assert_eq!(exit_for(&[published, published], false), 0);
        assert_eq!(exit_for(&[published, Some(JobState::Failed)], false), 1);
        assert_eq!(exit_for(&[Some(JobState::Canceled)], false), 1);
        assert_eq!(exit_for(&[published, None], false), 1);
        assert_eq!(exit_for(&[published, Some(JobState::Uploading)], true), 124);
    }
}
