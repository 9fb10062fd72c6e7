//! Live progress bars for `watch`: one bar per active job on stderr.
//! Fed with job snapshots and progress numbers; knows nothing about the socket.

use std::collections::BTreeMap;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use upq_proto::{JobState, JobView};

use super::{compact_duration, human_speed, job_name, outcome_line, truncate};

const TEMPLATE: &str = "{prefix:28} [{bar:30}] {bytes:>10} / {total_bytes:<10} {msg}";
const PREFIX_WIDTH: usize = 28;

/// The text after a bar: the state, and while bytes move the speed and time left.
pub fn bar_message(
    job_state: JobState,
    detail: Option<&str>,
    speed: u64,
    remaining: u64,
) -> String {
    let mut message = job_state.to_string();
    if let Some(detail) = detail.filter(|text| !text.is_empty()) {
        message.push_str(": ");
        message.push_str(detail);
    }
    if job_state == JobState::Uploading && speed > 0 {
        message.push_str(&format!(
            "  {}  ETA {}",
            human_speed(speed),
            compact_duration(remaining.div_ceil(speed))
        ));
    }
    message
}

/// What follows the state in a bar's message, from a job snapshot.
fn detail(job: &JobView) -> Option<String> {
    match job.state {
        JobState::Retrying if job.stalls > 0 => Some(format!(
            "STALLED ({}x) {}",
            job.stalls,
            job.last_error
                .as_ref()
                .map(|error| error.message.as_str())
                .unwrap_or("")
        )),
        JobState::Retrying => job.last_error.as_ref().map(|error| error.kind.clone()),
        JobState::Held if job.hold => Some(format!("release with `upqctl publish {}`", job.id)),
        JobState::Processing => job
            .processing_progress
            .as_ref()
            .map(crate::render::processing_text),
        JobState::Paused | JobState::Queued if job.bytes_sent > 0 => Some(format!(
            "{} confirmed",
            crate::render::human_size(job.bytes_sent)
        )),
        _ => None,
    }
}

struct Entry {
    bar: ProgressBar,
    state: JobState,
    detail: Option<String>,
    speed: u64,
}

impl Entry {
    fn refresh_message(&self) {
        let remaining = self
            .bar
            .length()
            .unwrap_or(0)
            .saturating_sub(self.bar.position());
        self.bar.set_message(bar_message(
            self.state,
            self.detail.as_deref(),
            self.speed,
            remaining,
        ));
    }
}

/// A post's line above the bars of its jobs.
struct PostLine {
    line: ProgressBar,
    /// The bar the next job of the post goes under.
    last: ProgressBar,
}

/// The bars of every job being watched that has not ended.
pub struct Bars {
    multi: MultiProgress,
    style: ProgressStyle,
    entries: BTreeMap<u64, Entry>,
    posts: BTreeMap<upq_proto::PostId, PostLine>,
}

impl Default for Bars {
    fn default() -> Self {
        Self::new()
    }
}

impl Bars {
    pub fn new() -> Self {
        let style = ProgressStyle::with_template(TEMPLATE)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        Bars {
            multi: MultiProgress::new(),
            style,
            entries: BTreeMap::new(),
            posts: BTreeMap::new(),
        }
    }

    /// True when stderr is not a terminal and nothing would be drawn.
    pub fn is_hidden(&self) -> bool {
        self.multi.is_hidden()
    }

    /// Prints a line above the bars.
    pub fn println(&self, line: &str) {
        // A failed write to the terminal is not worth stopping the watch for.
        let _ = self.multi.println(line);
    }

    /// Shows a job as it is now: a new or updated bar, or its outcome once it ended.
    pub fn job(&mut self, job: &JobView) {
        if job.state.is_terminal() {
            if let Some(entry) = self.entries.remove(&job.id) {
                entry.bar.finish_and_clear();
                self.multi.remove(&entry.bar);
            }
            self.println(&outcome_line(job));
            return;
        }
        let style = self.style.clone();
        let multi = &self.multi;
        let posts = &mut self.posts;
        let entry = self.entries.entry(job.id).or_insert_with(|| {
            let bar = ProgressBar::new(job.size).with_style(style);
            // A post's jobs go under its line, one after the other.
            let bar = match job.post.and_then(|post| posts.get_mut(&post)) {
                Some(post) => {
                    let bar = multi.insert_after(&post.last, bar);
                    post.last = bar.clone();
                    bar
                }
                None => multi.add(bar),
            };
            Entry {
                bar,
                state: job.state,
                detail: None,
                speed: 0,
            }
        });
        let indent = if job.post.is_some() { "  " } else { "" };
        entry.bar.set_prefix(truncate(
            &format!("{indent}#{} {}", job.id, job_name(job)),
            PREFIX_WIDTH,
        ));
        entry.bar.set_length(job.size);
        entry.bar.set_position(job.bytes_sent.min(job.size));
        entry.state = job.state;
        entry.detail = detail(job);
        entry.speed = job.speed.unwrap_or(0);
        entry.refresh_message();
    }

    /// Moves a job's bar; a job not seen yet gets a bar named by its id.
    pub fn progress(
        &mut self,
        id: u64,
        bytes_sent: u64,
        bytes_in_flight: u64,
        size: u64,
        speed: u64,
    ) {
        let style = self.style.clone();
        let multi = &self.multi;
        let entry = self.entries.entry(id).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new(size).with_style(style));
            bar.set_prefix(format!("#{id}"));
            Entry {
                bar,
                state: JobState::Uploading,
                detail: None,
                speed: 0,
            }
        });
        entry.bar.set_length(size);
        entry
            .bar
            .set_position(bytes_sent.saturating_add(bytes_in_flight).min(size));
        entry.speed = speed;
        entry.refresh_message();
    }

    /// A post's line: created above its jobs' bars the first time, then its text replaced;
    /// `None` removes it (every job of the post ended).
    pub fn post(&mut self, post: upq_proto::PostId, text: Option<String>) {
        match text {
            Some(text) => {
                let multi = &self.multi;
                let line = self.posts.entry(post).or_insert_with(|| {
                    let line = multi.add(
                        ProgressBar::new(0).with_style(
                            ProgressStyle::with_template("{msg}")
                                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                        ),
                    );
                    PostLine {
                        last: line.clone(),
                        line,
                    }
                });
                line.line.set_message(text);
            }
            None => {
                if let Some(line) = self.posts.remove(&post) {
                    line.line.finish_and_clear();
                    self.multi.remove(&line.line);
                }
            }
        }
    }

    /// Says how far the platform's processing of a job is, on its bar.
    pub fn processing(&mut self, id: u64, progress: &upq_proto::ProcessingProgress) {
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.detail = Some(crate::render::processing_text(progress));
            entry.refresh_message();
        }
    }

    /// Drops the bar of a job that was discarded.
    pub fn removed(&mut self, id: u64) {
        if let Some(entry) = self.entries.remove(&id) {
            entry.bar.finish_and_clear();
            self.multi.remove(&entry.bar);
        }
    }

    /// Drops every bar (before re-reading the state after missed events).
    pub fn clear(&mut self) {
        for (_, entry) in std::mem::take(&mut self.entries) {
            entry.bar.finish_and_clear();
            self.multi.remove(&entry.bar);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_show_speed_and_time_left_while_uploading() {
        assert_eq!(
            bar_message(JobState::Uploading, None, 4 * 1024 * 1024, 80 * 1024 * 1024),
            "uploading  4 MiB/s  ETA 20s"
        );
        assert_eq!(bar_message(JobState::Uploading, None, 0, 1000), "uploading");
        assert_eq!(
            bar_message(JobState::Retrying, Some("stalled"), 100, 1000),
            "retrying: stalled"
        );
        assert_eq!(bar_message(JobState::Queued, Some(""), 0, 0), "queued");
    }

    #[test]
    fn bars_follow_jobs_until_they_end() {
        let mut bars = Bars::new();
        let mut job = crate::render::jobs::tests::job(7, JobState::Uploading);
        bars.job(&job);
        bars.progress(7, 100, 50, 1000, 10);
        let entry = &bars.entries[&7];
        assert_eq!(entry.bar.position(), 150);
        assert_eq!(entry.bar.length(), Some(1000));
        bars.progress(8, 0, 0, 10, 0);
        assert_eq!(bars.entries.len(), 2);
        job.state = JobState::Published;
        bars.job(&job);
        assert!(!bars.entries.contains_key(&7));
        bars.removed(8);
        assert!(bars.entries.is_empty());
    }
}
