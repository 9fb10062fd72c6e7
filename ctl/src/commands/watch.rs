//! `upqctl watch [ID…]`: live progress of jobs until interrupted, or until the named jobs end.
//! Bars on a terminal, plain lines otherwise, NDJSON events with `--json`.

use std::collections::BTreeMap;

use chrono::Local;
use upq_proto::{ErrorCode, Event, JobState, JobView, PostId, PostState, ProcessingProgress};

use super::wait::exit_for;
use super::{unique_ids, Ctx};
use crate::exit;
use crate::render::{
    job_name, outcome_line, percent, print_json_line, processing_text, short_time, Bars,
};

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
    Bars(Bars),
    /// stderr is not a terminal: one line per state change on stdout.
    Lines,
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
            Output::Lines => println!("post {post} {state}"),
            Output::Json => {}
        }
    }

    fn job(&mut self, job: &JobView) {
        match self {
            Output::Bars(bars) => bars.job(job),
            Output::Lines if job.state.is_terminal() => println!("{}", outcome_line(job)),
            Output::Lines => println!(
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
            Output::Lines if !job.state.is_terminal() => {
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
            Output::Lines => println!("{id} discarded"),
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

/// The current jobs: the active ones, or the named ones (an unknown id is an error at first,
/// a discarded job later).
fn snapshot(ctx: &Ctx, named: &Named, first: bool) -> anyhow::Result<Vec<Result<JobView, u64>>> {
    if named.0.is_empty() {
        let (jobs, _) = ctx.backend.list(false)?;
        return Ok(jobs.into_iter().map(Ok).collect());
    }
    let mut jobs = Vec::new();
    for &id in named.0.keys() {
        match ctx.backend.show(id) {
            Ok((job, _)) => jobs.push(Ok(job)),
            Err(error) if !first && error.code() == Some(ErrorCode::NotFound) => jobs.push(Err(id)),
            Err(error) => return Err(error.into()),
        }
    }
    Ok(jobs)
}

/// Tells of a post whose state the job's change moved, before the job itself (a post's
/// line goes above its jobs' bars).
fn follow_post(output: &mut Output, posts: &mut Posts, job: &JobView) {
    if let Some((post, state)) = posts.update(job) {
        let title = job
            .metadata
            .title
            .clone()
            .unwrap_or_else(|| job_name(job).to_string());
        output.post(post, state, &title);
    }
}

fn show_snapshot(
    output: &mut Output,
    named: &mut Named,
    posts: &mut Posts,
    jobs: Vec<Result<JobView, u64>>,
) {
    for job in jobs {
        match job {
            Ok(job) => {
                named.update(job.id, Some(job.state));
                follow_post(output, posts, &job);
                output.job(&job);
            }
            Err(id) => {
                named.update(id, None);
                output.removed(id);
            }
        }
    }
}

pub fn run(ctx: &Ctx, ids: Vec<u64>) -> anyhow::Result<u8> {
    let ids = unique_ids(ids);
    let mut named = Named(ids.iter().map(|&id| (id, Some(JobState::Queued))).collect());
    let mut events = ctx.backend.subscribe(ids)?;
    let mut output = if ctx.json {
        Output::Json
    } else {
        let bars = Bars::new();
        if bars.is_hidden() {
            Output::Lines
        } else {
            Output::Bars(bars)
        }
    };
    let mut posts = Posts::default();
    let jobs = snapshot(ctx, &named, true)?;
    show_snapshot(&mut output, &mut named, &mut posts, jobs);

    while !named.all_ended() {
        let (event, raw) = events.next_event(None)?;
        if ctx.json {
            print_json_line(&raw)?;
        }
        match event {
            Event::State {
                from, job, reason, ..
            } => {
                named.update(job.id, Some(job.state));
                follow_post(&mut output, &mut posts, &job);
                output.transition(from, &job, &reason);
            }
            Event::Progress {
                id,
                bytes_sent,
                bytes_in_flight,
                size,
                speed,
            } => {
                if let Output::Bars(bars) = &mut output {
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
                match &mut output {
                    Output::Bars(bars) => bars.processing(id, &progress),
                    Output::Lines => println!("{id} processing {}", processing_text(&progress)),
                    Output::Json => {}
                }
            }
            Event::Removed { id } => {
                named.update(id, None);
                output.removed(id);
            }
            Event::Unknown => {}
            Event::Lagged { .. } => {
                if let Output::Bars(bars) = &mut output {
                    bars.clear();
                }
                let jobs = snapshot(ctx, &named, false)?;
                show_snapshot(&mut output, &mut named, &mut posts, jobs);
            }
        }
    }
    Ok(if named.0.is_empty() {
        exit::SUCCESS
    } else {
        named.exit_code()
    })
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
