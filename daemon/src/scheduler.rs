//! Deciding what runs: upload slots by priority then age, retry times, review windows.
//!
//! Woken by state changes and by the earliest pending timer; never polls.

use std::cmp::Reverse;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use upq_proto::JobState;

use crate::destinations::Destinations;
use crate::job::Event;
use crate::pacer::Progress;
use crate::service::{
    start_time, uses_network, waits_for_post, Effects, Gate, Live, Running, Service, State,
};
use crate::worker;

/// The least time between two passes that changes asked for (timers are not held back).
const MIN_PASS_INTERVAL: std::time::Duration = std::time::Duration::from_millis(20);

impl Service {
    /// Runs until shutdown: one scheduling pass per wake-up or timer.
    pub(crate) async fn run_scheduler(self) {
        let shutdown = self.inner.shutdown.clone();
        loop {
            let next_timer = self.schedule_pass();
            let passed = tokio::time::Instant::now();
            let timer = async {
                match next_timer {
                    Some(at) => {
                        let wait = (at - self.now()).to_std().unwrap_or_default();
                        tokio::time::sleep(wait).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.inner.wake.notified() => {
                    // A burst of changes (a thousand adds) makes a few passes, not one each:
                    // a pass reads the whole queue.
                    tokio::select! {
                        _ = tokio::time::sleep_until(passed + MIN_PASS_INTERVAL) => {}
                        _ = shutdown.cancelled() => break,
                    }
                }
                _ = timer => {}
                _ = shutdown.cancelled() => break,
            }
        }
    }

    /// Releases due holds and starts what may start. Returns when the next timer is due.
    fn schedule_pass(&self) -> Option<DateTime<Utc>> {
        if self.inner.shutdown.is_cancelled() {
            return None;
        }
        let now = self.now();
        let mut state = self.lock();

        let due: Vec<u64> = state
            .jobs
            .iter()
            .filter(|(_, job)| job.state() == JobState::Held && job.release_due(now))
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            if let Err(e) = self.apply_locked(
                &mut state,
                id,
                Event::Release,
                "review window over".into(),
                |_| Effects::default(),
            ) {
                tracing::warn!(job = id, error = %e, "cannot release a held job");
            }
        }

        // Outside what the upload policies allow, uploads under way stop at their next
        // piece and wait as `queued`, keeping what the destination confirmed; new ones do
        // not start. Neither counts as an attempt or a stall.
        let gate = self.upload_gate(now);
        let destinations = self.destinations();
        if gate.closed.is_some() || gate.offline.is_some() {
            self.hold_back_uploads(&mut state, &gate, &destinations);
        }

        // Jobs whose remote upload would expire if started now wait for their start time
        // (TikTok: an upload_url lives an hour, so a far publish time starts late).
        let mut later: Option<DateTime<Utc>> = None;
        let mut candidates: Vec<(Reverse<i32>, u64, bool)> = state
            .jobs
            .iter()
            .filter(|(id, _)| !state.running.contains_key(id))
            // A paused queue starts nothing new, but lets committed jobs finish processing.
            .filter(|(_, job)| !state.queue_paused || job.committed())
            .filter(|(_, job)| match job.state() {
                // A queued job may have a start time (an upload timed to its publish time).
                JobState::Queued | JobState::Retrying => {
                    job.next_attempt_at().is_none_or(|at| at <= now)
                }
                _ => false,
            })
            .filter(|(_, job)| match start_time(&destinations, job) {
                Some(at) if at > now => {
                    later = Some(later.map_or(at, |l| l.min(at)));
                    false
                }
                _ => true,
            })
            .filter(|(_, job)| {
                let network = uses_network(&destinations, job.destination());
                // A committed job has nothing left to upload; it waits only for a network.
                match job.committed() {
                    true => !network || gate.offline.is_none(),
                    false => gate.holds(job.ignores_policies(), network).is_none(),
                }
            })
            .filter(|&(&id, job)| waits_for_post(&state, &destinations, id, job).is_none())
            .map(|(&id, job)| (Reverse(job.priority()), id, job.committed()))
            .collect();
        candidates.sort_unstable();
        let mut active = state.running.values().filter(|r| r.uses_slot).count();
        let max_active = self.config().daemon.max_active as usize;
        for (_, id, committed) in candidates {
            if committed {
                self.spawn_worker(&mut state, id, false);
            } else if active < max_active {
                self.spawn_worker(&mut state, id, true);
                active += 1;
            }
        }

        state
            .jobs
            .iter()
            .filter_map(|(id, job)| match job.state() {
                JobState::Queued | JobState::Retrying if !state.running.contains_key(id) => {
                    job.next_attempt_at()
                }
                JobState::Held if !job.hold() => job.publish_at(),
                _ => None,
            })
            .chain(later)
            .chain(gate.changes_at)
            // A due job that did not start waits for something that wakes the scheduler
            // itself (a free slot, a post's other job, the gate's change): a timer already
            // due would make the next pass at once, and the one after, without end.
            .filter(|&at| at > now)
            .min()
    }

    /// Stops every upload under way that the gate holds, back to `queued` with why.
    fn hold_back_uploads(&self, state: &mut State, gate: &Gate, destinations: &Destinations) {
        let held: Vec<(u64, String)> = state
            .running
            .keys()
            .filter_map(|id| {
                let job = state.jobs.get(id)?;
                if job.state() != JobState::Uploading || job.committed() {
                    return None;
                }
                let network = uses_network(destinations, job.destination());
                let why = gate.holds(job.ignores_policies(), network)?;
                Some((*id, why.to_string()))
            })
            .collect();
        for (id, why) in held {
            let safe = match self.record(id) {
                Ok(job) => format!(
                    "waiting: {why}; at least {} are safe at the destination",
                    crate::policy::size_text(job.bytes_sent())
                ),
                Err(e) => {
                    tracing::error!(job = id, error = %e, "cannot read a job to hold it back");
                    continue;
                }
            };
            match self.apply_locked(state, id, Event::Interrupted, safe, |_| Effects::default()) {
                Ok(_) => {
                    if let Some(running) = state.running.get(&id) {
                        running.token.cancel();
                    }
                }
                Err(e) => tracing::warn!(job = id, error = %e, "cannot hold back an upload"),
            }
        }
    }

    fn spawn_worker(&self, state: &mut State, id: u64, uses_slot: bool) {
        let token = self.inner.shutdown.child_token();
        let finished = CancellationToken::new();
        let progress = Arc::new(Progress::default());
        let live = Arc::new(Live::default());
        state.running.insert(
            id,
            Running {
                token: token.clone(),
                finished: finished.clone(),
                live: live.clone(),
                uses_slot,
            },
        );
        let service = self.clone();
        self.inner
            .tasks
            .spawn_named(format!("job {id}: upload worker"), async move {
                worker::run(&service, id, token, progress, live).await;
                service.lock().running.remove(&id);
                finished.cancel();
                service.inner.wake.notify_one();
            });
    }
}
