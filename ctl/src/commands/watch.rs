//! `upqctl watch [ID…]`: live progress of jobs until interrupted, or until the named jobs end.
//! Bars on a terminal, plain lines otherwise, NDJSON events with `--json`. Ctrl-C is the
//! normal end of watching every job: the bars stay as last drawn, the exit code is 0.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::Local;
use upq_proto::{ErrorCode, Event, JobState, JobView, PostId, PostState, ProcessingProgress};

use super::wait::exit_for;
use super::{unique_ids, Ctx};
use crate::exit;
use crate::render::{
    job_name, outcome_line, percent, print_json_line, processing_text, short_time, Bars, Paint,
};

/// The exit code of a watch of named jobs interrupted before they all ended (128 + SIGINT,
/// as a shell reports a command Ctrl-C stopped), so that `watch 7 && next` does not go on.
const INTERRUPTED: u8 = 130;

/// The state of each post whose jobs are watched, as far as those jobs tell.
#[derive(Default)]
struct Posts(BTreeMap<PostId, BTreeMap<u64, JobState>>);

impl Posts {
    /// Notes job `job`'s state; returns its post and the post's state when that changed.
    fn update(&mut self, job: &JobView) -> Option<(PostId, PostState)> {
        let post = job.post?;
        let jobs = self.0.entry(post).or_default();
        let states = |jobs: &BTreeMap<u64, JobState>| {
            PostState::of(&jobs.values().copied().collect::<Vec<_>>())
        };
        let before = (!jobs.is_empty()).then(|| states(jobs));
        jobs.insert(job.id, job.state);
        let after = states(jobs);
        (before != Some(after)).then_some((post, after))
    }
}

/// Where updates go.
enum Output {
    Bars(Box<Bars>),
    /// stderr is not a terminal: one line per state change on stdout.
    Lines(Paint),
    Json,
}

impl Output {
    /// A post's state changed: a line of its own.
    fn post(&mut self, post: PostId, state: PostState, title: &str) {
        match self {
            Output::Bars(bars) if state.is_terminal() => {
                bars.post(post, None);
                bars.println(&format!("post {post} {state}: {title}"));
            }
            Output::Bars(bars) => bars.post(post, Some(format!("post {post} {state}: {title}"))),
            Output::Lines(_) => println!("post {post} {state}"),
            Output::Json => {}
        }
    }

    fn job(&mut self, job: &JobView) {
        match self {
            Output::Bars(bars) => bars.job(job),
            Output::Lines(paint) if job.state.is_terminal() => {
                println!("{}", outcome_line(job, *paint))
            }
            Output::Lines(_) => println!(
                "{} {} {} {}",
                job.id,
                job.state,
                percent(job.bytes_sent, job.size),
                job_name(job)
            ),
            Output::Json => {}
        }
    }

    fn transition(&mut self, from: Option<JobState>, job: &JobView, reason: &str) {
        match self {
            Output::Lines(_) if !job.state.is_terminal() => {
                let from = from.map_or_else(|| "new".to_owned(), |state| state.to_string());
                println!(
                    "{} {} {from} -> {}: {reason}",
                    short_time(&job.updated_at, &Local::now()),
                    job.id,
                    job.state
                );
            }
            _ => self.job(job),
        }
    }

    fn removed(&mut self, id: u64) {
        match self {
            Output::Bars(bars) => {
                bars.removed(id);
                bars.println(&format!("{id} discarded"));
            }
            Output::Lines(_) => println!("{id} discarded"),
            Output::Json => {}
        }
    }
}

/// The named jobs and their last known state (`None` once discarded); empty when watching all.
struct Named(BTreeMap<u64, Option<JobState>>);

impl Named {
    fn update(&mut self, id: u64, state: Option<JobState>) {
        if let Some(known) = self.0.get_mut(&id) {
            *known = state;
        }
    }

    /// True when jobs were named and every one of them has ended.
    fn all_ended(&self) -> bool {
        !self.0.is_empty()
            && self
                .0
                .values()
                .all(|state| state.is_none_or(JobState::is_terminal))
    }

    fn exit_code(&self) -> u8 {
        let states: Vec<Option<JobState>> = self.0.values().copied().collect();
        exit_for(&states, false)
    }
}

/// The current jobs: the active ones, or the `named` ones (an unknown id is an error at
/// first, a discarded job later).
fn snapshot(ctx: &Ctx, named: &[u64], first: bool) -> anyhow::Result<Vec<Result<JobView, u64>>> {
    if named.is_empty() {
        let (jobs, _) = ctx.backend.list(false)?;
        return Ok(jobs.into_iter().map(Ok).collect());
    }
    let mut jobs = Vec::new();
    for &id in named {
        match ctx.backend.show(id) {
            Ok((job, _)) => jobs.push(Ok(job)),
            Err(error) if !first && error.code() == Some(ErrorCode::NotFound) => jobs.push(Err(id)),
            Err(error) => return Err(error.into()),
        }
    }
    Ok(jobs)
}

/// What is shown and what is known of the jobs; shared with the thread that ends the watch
/// on Ctrl-C, which waits for the screen to be between two updates.
struct Screen {
    output: Output,
    named: Named,
    posts: Posts,
}

impl Screen {
    /// Tells of a post whose state the job's change moved, before the job itself (a post's
    /// line goes above its jobs' bars).
    fn follow_post(&mut self, job: &JobView) {
        if let Some((post, state)) = self.posts.update(job) {
            let title = job
                .metadata
                .title
                .clone()
                .unwrap_or_else(|| job_name(job).to_string());
            self.output.post(post, state, &title);
        }
    }

    fn show(&mut self, jobs: Vec<Result<JobView, u64>>) {
        for job in jobs {
            match job {
                Ok(job) => {
                    self.named.update(job.id, Some(job.state));
                    self.follow_post(&job);
                    self.output.job(&job);
                }
                Err(id) => {
                    self.named.update(id, None);
                    self.output.removed(id);
                }
            }
        }
    }

    /// Shows an event (any but `Lagged`, which needs the daemon asked again).
    fn event(&mut self, event: Event) {
        match event {
            Event::State {
                from, job, reason, ..
            } => {
                self.named.update(job.id, Some(job.state));
                self.follow_post(&job);
                self.output.transition(from, &job, &reason);
            }
            Event::Progress {
                id,
                bytes_sent,
                bytes_in_flight,
                size,
                speed,
            } => {
                if let Output::Bars(bars) = &mut self.output {
                    bars.progress(id, bytes_sent, bytes_in_flight, size, speed);
                }
            }
            Event::Processing {
                id,
                parts_processed,
                parts_total,
                time_left_ms,
            } => {
                let progress = ProcessingProgress {
                    parts_processed,
                    parts_total,
                    time_left_ms,
                };
                match &mut self.output {
                    Output::Bars(bars) => bars.processing(id, &progress),
                    Output::Lines(_) => println!("{id} processing {}", processing_text(&progress)),
                    Output::Json => {}
                }
            }
            Event::Removed { id } => {
                self.named.update(id, None);
                self.output.removed(id);
            }
            Event::Unknown | Event::Lagged { .. } => {}
        }
    }

    /// The exit code once watching is over.
    fn exit_code(&self, interrupted: bool) -> u8 {
        if self.named.0.is_empty() {
            exit::SUCCESS
        } else if interrupted && !self.named.all_ended() {
            INTERRUPTED
        } else {
            self.named.exit_code()
        }
    }

    /// Ctrl-C: leaves the terminal tidy and says the exit code.
    fn interrupted(&mut self) -> u8 {
        match &self.output {
            Output::Bars(bars) => bars.interrupted(),
            Output::Lines(_) | Output::Json => {
                let _ = std::io::stdout().flush();
            }
        }
        self.exit_code(true)
    }
}

fn lock(screen: &Mutex<Screen>) -> MutexGuard<'_, Screen> {
    // A panic while drawing leaves nothing half-done that matters for the next draw.
    screen.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Ends the process at the first Ctrl-C, between two updates of the screen.
fn end_on_interrupt(screen: Arc<Mutex<Screen>>) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT])?;
    std::thread::Builder::new()
        .name("interrupt".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                // Held until the process ends: nothing is drawn after the tidy-up.
                let mut screen = lock(&screen);
                let code = screen.interrupted();
                std::process::exit(i32::from(code));
            }
        })?;
    Ok(())
}

/// Bars need a terminal that can move its cursor.
fn draws_bars() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("TERM").is_none_or(|term| term != "dumb")
}

pub fn run(ctx: &Ctx, ids: Vec<u64>) -> anyhow::Result<u8> {
    let ids = unique_ids(ids);
    let named = Named(ids.iter().map(|&id| (id, Some(JobState::Queued))).collect());
    let mut events = ctx.backend.subscribe(ids.clone())?;
    let output = if ctx.json {
        Output::Json
    } else if draws_bars() {
        Output::Bars(Box::new(Bars::new(ctx.paint)))
    } else {
        Output::Lines(ctx.paint)
    };
    let screen = Arc::new(Mutex::new(Screen {
        output,
        named,
        posts: Posts::default(),
    }));
    end_on_interrupt(Arc::clone(&screen))?;
    let jobs = snapshot(ctx, &ids, true)?;
    lock(&screen).show(jobs);

    while !lock(&screen).named.all_ended() {
        let (event, raw) = events.next_event(None)?;
        // The daemon is asked again outside the lock, so that Ctrl-C never waits for it.
        let missed = match event {
            Event::Lagged { .. } => Some(snapshot(ctx, &ids, false)?),
            _ => None,
        };
        let mut screen = lock(&screen);
        if ctx.json {
            print_json_line(&raw)?;
        }
        match missed {
            Some(jobs) => {
                if let Output::Bars(bars) = &mut screen.output {
                    bars.clear();
                }
                screen.show(jobs);
            }
            None => screen.event(event),
        }
    }
    let code = lock(&screen).exit_code(false);
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_s_state_is_told_when_it_changes() {
        let job = |id: u64, state: JobState| -> JobView {
            serde_json::from_value(serde_json::json!({
                "id": id, "file": "/v/a.mp4", "destination": "local", "state": state,
                "size": 10, "bytes_sent": 0, "attempts": 0, "last_error": null,
                "next_attempt_at": null, "publish_at": null,
                "created_at": "2026-12-01T11:00:00Z", "updated_at": "2026-12-01T11:00:00Z",
                "metadata": {}, "remote": null, "content_hash": null, "speed": null,
                "warning": null, "post": "p1"
            }))
            .unwrap()
        };
        let mut posts = Posts::default();
        let p1 = PostId(1);
        assert_eq!(
            posts.update(&job(1, JobState::Held)),
            Some((p1, PostState::Held))
        );
        assert_eq!(
            posts.update(&job(2, JobState::Uploading)),
            Some((p1, PostState::Uploading))
        );
        assert_eq!(
            posts.update(&job(2, JobState::Retrying)),
            None,
            "still uploading"
        );
        assert_eq!(
            posts.update(&job(2, JobState::Held)),
            Some((p1, PostState::Held))
        );
        let mut alone = job(3, JobState::Queued);
        alone.post = None;
        assert_eq!(posts.update(&alone), None);
    }

    #[test]
    fn named_jobs_end_when_all_are_terminal_or_gone() {
        let mut named = Named([(1, Some(JobState::Queued)), (2, Some(JobState::Uploading))].into());
        assert!(!named.all_ended());
        named.update(1, Some(JobState::Published));
        named.update(3, Some(JobState::Failed));
        assert!(!named.all_ended());
        named.update(2, Some(JobState::Published));
        assert!(named.all_ended());
        assert_eq!(named.exit_code(), 0);
        named.update(2, None);
        assert!(named.all_ended());
        assert_eq!(named.exit_code(), 1);
        assert!(!Named(BTreeMap::new()).all_ended());
    }
}
