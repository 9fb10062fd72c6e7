//! Live progress bars for `watch`: one line per active job on stderr, each fitted to the
//! terminal's width. Fed with job snapshots and progress numbers; knows nothing about the socket.

use std::collections::BTreeMap;
use std::io::Write;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use upq_proto::{JobState, JobView};

use super::{
    compact_duration, human_size, human_speed, job_name, outcome_line, percent, Paint, Style,
};

/// At most this many redraws a second: smooth for bytes on the move, cheap for the terminal.
const REFRESH_HZ: u8 = 10;
/// Columns assumed when the terminal does not say.
const DEFAULT_WIDTH: usize = 80;
/// From this width on, the bar is 30 columns and the sizes have aligned columns of their own.
const WIDE: usize = 100;
/// The name column never takes more than this.
const NAME_MAX: usize = 28;

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

/// `segments` one after the other, cut to `room` characters (the last one "…" when cut),
/// each painted in its style.
fn fit(segments: &[(&str, Style)], room: usize, paint: Paint) -> String {
    let total: usize = segments.iter().map(|(text, _)| text.chars().count()).sum();
    let mut keep = if total <= room {
        total
    } else {
        room.saturating_sub(1)
    };
    let mut out = String::new();
    for (text, style) in segments {
        let part: String = text.chars().take(keep).collect();
        keep -= part.chars().count();
        out.push_str(&paint.style(*style, &part));
    }
    if total > room && room > 0 {
        out.push('…');
    }
    out
}

/// The bar itself, `width` columns between its brackets.
fn bar_body(sent: u64, size: u64, width: usize) -> String {
    let filled = if size == 0 {
        0
    } else {
        let share = u128::from(sent.min(size)) * width as u128 / u128::from(size);
        usize::try_from(share).unwrap_or(width)
    };
    let mut body = "=".repeat(filled);
    if filled < width {
        body.push(if filled > 0 { '>' } else { ' ' });
        body.push_str(&" ".repeat(width - filled - 1));
    }
    body
}

/// What one line shows of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineParts<'a> {
    /// `#7 concert.mp4`, indented under a post.
    pub name: &'a str,
    pub state: JobState,
    pub sent: u64,
    pub size: u64,
    /// The state and what follows it (see [`bar_message`]).
    pub message: &'a str,
}

/// One job's line in at most `width` columns: the name, the bar, then as much of the sizes
/// and the message as fits (only the percentage when the sizes do not).
pub fn bar_line(parts: &LineParts<'_>, width: usize, paint: Paint) -> String {
    let name_width = (width * 3 / 10).clamp(8, NAME_MAX);
    let bar_width = if width >= WIDE {
        30
    } else {
        (width / 4).clamp(5, 30)
    };
    // `name [bar]`, then a space and at least the percentage and a character of the state.
    let left = name_width + 1 + bar_width + 2;
    let state = parts.state.as_str();
    let after_state = parts.message.strip_prefix(state).unwrap_or(parts.message);
    let state_style = Style::of_state(parts.state);
    let share = percent(parts.sent, parts.size);
    if width < left + 1 + share.len() + 2 {
        // Too narrow for a bar: the name, the share and the state, as far as they go.
        let name = format!("{} {share} ", parts.name);
        return fit(&[(&name, Style::Plain), (state, state_style)], width, paint);
    }
    let name: String = {
        let cut = fit(&[(parts.name, Style::Plain)], name_width, Paint::OFF);
        format!("{cut:<name_width$}")
    };
    let sizes = if width >= WIDE {
        format!(
            "{:>10} / {:<10} ",
            human_size(parts.sent),
            human_size(parts.size)
        )
    } else {
        format!("{} / {} ", human_size(parts.sent), human_size(parts.size))
    };
    let room = width - left - 1;
    let numbers = if sizes.chars().count() + state.len() <= room {
        sizes
    } else {
        format!("{share} ")
    };
    let right = fit(
        &[
            (&numbers, Style::Plain),
            (state, state_style),
            (after_state, Style::Plain),
        ],
        room,
        paint,
    );
    format!(
        "{name} [{}] {right}",
        bar_body(parts.sent, parts.size, bar_width)
    )
}

/// The terminal's width in columns, from stderr, where the bars are drawn.
fn terminal_width() -> usize {
    // SAFETY: winsize is plain data, and TIOCGWINSZ only fills it in (or fails, leaving it
    // zeroed).
    let (found, size) = unsafe {
        let mut size: libc::winsize = std::mem::zeroed();
        let found = libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) == 0;
        (found, size)
    };
    if found && size.ws_col > 0 {
        usize::from(size.ws_col)
    } else {
        DEFAULT_WIDTH
    }
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
    name: String,
    state: JobState,
    detail: Option<String>,
    speed: u64,
}

impl Entry {
    /// Lays the line out again for the terminal's width now.
    fn refresh(&self, width: usize, paint: Paint) {
        let size = self.bar.length().unwrap_or(0);
        let sent = self.bar.position();
        let message = bar_message(
            self.state,
            self.detail.as_deref(),
            self.speed,
            size.saturating_sub(sent),
        );
        let parts = LineParts {
            name: &self.name,
            state: self.state,
            sent,
            size,
            message: &message,
        };
        self.bar.set_message(bar_line(&parts, width, paint));
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
    /// Each line is one message laid out here; `{wide_msg}` also cuts it to the width when
    /// drawn, should the terminal have narrowed since.
    style: ProgressStyle,
    paint: Paint,
    width: fn() -> usize,
    entries: BTreeMap<u64, Entry>,
    posts: BTreeMap<upq_proto::PostId, PostLine>,
}

impl Bars {
    /// Bars on stderr, when it is a terminal (hidden otherwise), coloured when `paint` is on.
    pub fn new(paint: Paint) -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(REFRESH_HZ));
        Bars::with(multi, paint, terminal_width)
    }

    fn with(multi: MultiProgress, paint: Paint, width: fn() -> usize) -> Self {
        let style = ProgressStyle::with_template("{wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        Bars {
            multi,
            style,
            paint,
            width,
            entries: BTreeMap::new(),
            posts: BTreeMap::new(),
        }
    }

    /// Prints a line above the bars.
    pub fn println(&self, line: &str) {
        // A failed write to the terminal is not worth stopping the watch for.
        let _ = self.multi.println(line);
    }

    /// Leaves the bars as last drawn, draws nothing more, and puts the cursor on a fresh line
    /// below them: the end of a watch that was interrupted.
    pub fn interrupted(&self) {
        self.multi.set_draw_target(ProgressDrawTarget::hidden());
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(b"\n");
        let _ = stderr.flush();
    }

    /// Shows a job as it is now: a new or updated bar, or its outcome once it ended.
    pub fn job(&mut self, job: &JobView) {
        if job.state.is_terminal() {
            if let Some(entry) = self.entries.remove(&job.id) {
                entry.bar.finish_and_clear();
                self.multi.remove(&entry.bar);
            }
            self.println(&outcome_line(job, self.paint));
            return;
        }
        let indent = if job.post.is_some() { "  " } else { "" };
        let now = Entry {
            bar: ProgressBar::hidden(),
            name: format!("{indent}#{} {}", job.id, job_name(job)),
            state: job.state,
            detail: detail(job),
            speed: job.speed.unwrap_or(0),
        };
        let sent = job.bytes_sent.min(job.size);
        let (width, paint) = ((self.width)(), self.paint);
        match self.entries.get_mut(&job.id) {
            Some(entry) => {
                entry.name = now.name;
                entry.state = now.state;
                entry.detail = now.detail;
                entry.speed = now.speed;
                entry.bar.set_length(job.size);
                entry.bar.set_position(sent);
                entry.refresh(width, paint);
            }
            None => self.add(job.id, now, sent, job.size, job.post),
        }
    }

    /// Puts a new job's line on the screen, laid out before it is first drawn; a post's
    /// jobs go under its line, one after the other.
    fn add(
        &mut self,
        id: u64,
        mut entry: Entry,
        sent: u64,
        size: u64,
        post: Option<upq_proto::PostId>,
    ) {
        let bar = ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::hidden())
            .with_style(self.style.clone())
            .with_position(sent);
        entry.bar = bar;
        entry.refresh((self.width)(), self.paint);
        entry.bar = match post.and_then(|post| self.posts.get_mut(&post)) {
            Some(post) => {
                let bar = self.multi.insert_after(&post.last, entry.bar);
                post.last = bar.clone();
                bar
            }
            None => self.multi.add(entry.bar),
        };
        self.entries.insert(id, entry);
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
        let sent = bytes_sent.saturating_add(bytes_in_flight).min(size);
        let (width, paint) = ((self.width)(), self.paint);
        match self.entries.get_mut(&id) {
            Some(entry) => {
                entry.bar.set_length(size);
                entry.bar.set_position(sent);
                entry.speed = speed;
                entry.refresh(width, paint);
            }
            None => {
                let entry = Entry {
                    bar: ProgressBar::hidden(),
                    name: format!("#{id}"),
                    state: JobState::Uploading,
                    detail: None,
                    speed,
                };
                self.add(id, entry, sent, size, None);
            }
        }
    }

    /// A post's line: created above its jobs' bars the first time, then its text replaced;
    /// `None` removes it (every job of the post ended).
    pub fn post(&mut self, post: upq_proto::PostId, text: Option<String>) {
        match text {
            Some(text) => {
                let multi = &self.multi;
                let style = self.style.clone();
                let line = self.posts.entry(post).or_insert_with(|| {
                    // Its text set before it is first drawn.
                    let line = multi.add(
                        ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden())
                            .with_style(style)
                            .with_message(text.clone()),
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
        let (width, paint) = ((self.width)(), self.paint);
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.detail = Some(crate::render::processing_text(progress));
            entry.refresh(width, paint);
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

    /// `line` without its SGR sequences.
    fn strip(line: &str) -> String {
        let mut plain = String::new();
        let mut rest = line;
        while let Some(start) = rest.find('\x1b') {
            plain.push_str(&rest[..start]);
            let end = rest[start..]
                .find('m')
                .map_or(rest.len(), |m| start + m + 1);
            rest = &rest[end..];
        }
        plain.push_str(rest);
        plain
    }

    fn width_of(line: &str) -> usize {
        strip(line).chars().count()
    }

    #[test]
    fn lines_fit_every_width() {
        let message = bar_message(
            JobState::Retrying,
            Some("STALLED (3x) no progress for 30s"),
            0,
            0,
        );
        let long_name = "#12345 a very long file name for a holiday video.mp4";
        for paint in [Paint::OFF, Paint::ON] {
            for width in 1..=220 {
                for name in ["#7 a.mp4", long_name] {
                    let parts = LineParts {
                        name,
                        state: JobState::Retrying,
                        sent: 25_270_681,
                        size: 50_541_363,
                        message: &message,
                    };
                    let line = bar_line(&parts, width, paint);
                    assert!(
                        width_of(&line) <= width,
                        "{width} columns: {line:?} is {} wide",
                        width_of(&line)
                    );
                    assert_eq!(
                        strip(&line),
                        bar_line(&parts, width, Paint::OFF),
                        "colour changes nothing but the colour"
                    );
                }
            }
        }
    }

    #[test]
    fn narrow_lines_keep_the_bar_and_the_share() {
        let parts = LineParts {
            name: "#7 concert.mp4",
            state: JobState::Uploading,
            sent: 25_270_681,
            size: 50_541_363,
            message: "uploading  4 MiB/s  ETA 20s",
        };
        let cases = [
            (12, "#7 concert.…"),
            (20, "#7 concert.mp4 49% …"),
            (40, "#7 concert.… [====>     ] 49% uploading…"),
            (
                80,
                "#7 concert.mp4           [=========>          ] 24.1 MiB / 48.2 MiB uploading  …",
            ),
            (
                120,
                "#7 concert.mp4               [==============>               ]   24.1 MiB / 48.2 MiB   uploading  4 MiB/s  ETA 20s",
            ),
        ];
        for (width, line) in cases {
            assert_eq!(bar_line(&parts, width, Paint::OFF), line, "{width} columns");
        }
        assert!(bar_line(&parts, 40, Paint::ON).contains(" 49% uploading"));
    }

    #[test]
    fn bars_fill_as_bytes_are_sent() {
        assert_eq!(bar_body(0, 100, 10), "          ");
        assert_eq!(bar_body(50, 100, 10), "=====>    ");
        assert_eq!(bar_body(100, 100, 10), "==========");
        assert_eq!(bar_body(7, 0, 4), "    ");
        assert_eq!(bar_body(u64::MAX, u64::MAX, 3), "===");
    }

    #[test]
    fn bars_follow_jobs_until_they_end() {
        let mut bars = Bars::with(
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
            Paint::OFF,
            || 60,
        );
        let mut job = crate::render::jobs::tests::job(7, JobState::Uploading);
        bars.job(&job);
        bars.progress(7, 100, 50, 1000, 10);
        let entry = &bars.entries[&7];
        assert_eq!(entry.bar.position(), 150);
        assert_eq!(entry.bar.length(), Some(1000));
        assert!(
            entry.bar.message().starts_with("#7 clip7.mp4       [==>"),
            "{}",
            entry.bar.message()
        );
        assert!(entry.bar.message().chars().count() <= 60);
        bars.progress(8, 0, 0, 10, 0);
        assert_eq!(bars.entries.len(), 2);
        job.state = JobState::Published;
        bars.job(&job);
        assert!(!bars.entries.contains_key(&7));
        bars.removed(8);
        assert!(bars.entries.is_empty());
    }
}
