//! Human views of jobs: the `list` and `drafts` tables, one job's details and history.
//! Pure functions of job views and the current time.

use chrono::{DateTime, TimeZone, Utc};
use upq_proto::{BatchItem, HistoryEntry, JobState, JobView};

use super::{
    file_name, human_size, human_speed, job_name, moved, percent, progress_text, relative,
    short_time, truncate, Align, Paint, Style, Table,
};

const NAME_WIDTH: usize = 40;
const NOTE_WIDTH: usize = 60;

fn error_text(job: &JobView) -> Option<String> {
    job.last_error
        .as_ref()
        .map(|error| format!("{}: {}", error.kind, error.message))
}

fn when<Tz: TimeZone>(at: &DateTime<Utc>, now: &DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    format!("{} ({})", short_time(at, now), relative(at, now))
}

/// Why a job waits or what went wrong, for the NOTE column; empty when nothing to say.
pub fn note<Tz: TimeZone>(job: &JobView, now: &DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    match job.state {
        JobState::Retrying => {
            let error = error_text(job).unwrap_or_else(|| "retrying".to_owned());
            match &job.next_attempt_at {
                Some(at) => format!("{error}; next try {}", relative(at, now)),
                None => error,
            }
        }
        JobState::Failed => error_text(job).unwrap_or_default(),
        JobState::Queued => match (&job.waiting, &job.next_attempt_at) {
            (Some(waiting), _) => format!("waiting: {waiting}"),
            (None, Some(at)) => format!("starts {}", short_time(at, now)),
            (None, None) => String::new(),
        },
        JobState::Held if job.hold => format!("until `upqctl publish {}`", job.id),
        JobState::Held => match &job.publish_at {
            Some(at) => format!("until {}", short_time(at, now)),
            None => String::new(),
        },
        _ => String::new(),
    }
}

/// The `list` table: ID, STATE, PROGRESS, SIZE, DEST, NAME, and NOTE when any job has one;
/// each state in its colour when `paint` is on.
pub fn jobs_table<Tz: TimeZone>(jobs: &[JobView], now: &DateTime<Tz>, paint: Paint) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let notes: Vec<String> = jobs.iter().map(|job| note(job, now)).collect();
    let mut columns = vec![
        ("ID", Align::Right),
        ("STATE", Align::Left),
        ("PROGRESS", Align::Right),
        ("SIZE", Align::Right),
        ("DEST", Align::Left),
        ("NAME", Align::Left),
    ];
    let with_notes = notes.iter().any(|note| !note.is_empty());
    if with_notes {
        columns.push(("NOTE", Align::Left));
    }
    let mut table = Table::new(&columns);
    for (job, note) in jobs.iter().zip(notes) {
        let plain = |text: String| (text, Style::Plain);
        let mut row = vec![
            plain(job.id.to_string()),
            (job.state.to_string(), Style::of_state(job.state)),
            plain(percent(moved(job), job.size)),
            plain(human_size(job.size)),
            plain(job.destination.clone()),
            plain(truncate(&job_name(job), NAME_WIDTH)),
        ];
        if with_notes {
            row.push(plain(truncate(&note, NOTE_WIDTH)));
        }
        table.styled_row(row);
    }
    table.render(paint)
}

/// The `drafts` table: what was typed into each canceled job, and a WARNING column when set
/// (in the warning colour when `paint` is on).
pub fn drafts_table<Tz: TimeZone>(jobs: &[JobView], now: &DateTime<Tz>, paint: Paint) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let mut columns = vec![
        ("ID", Align::Right),
        ("PROGRESS", Align::Right),
        ("SIZE", Align::Right),
        ("DEST", Align::Left),
        ("FILE", Align::Left),
        ("TITLE", Align::Left),
        ("PRIVACY", Align::Left),
        ("CANCELED", Align::Left),
    ];
    let with_warnings = jobs.iter().any(|job| job.warning.is_some());
    if with_warnings {
        columns.push(("WARNING", Align::Left));
    }
    let mut table = Table::new(&columns);
    for job in jobs {
        let plain = |text: String| (text, Style::Plain);
        let mut row = vec![
            plain(job.id.to_string()),
            plain(percent(job.bytes_sent, job.size)),
            plain(human_size(job.size)),
            plain(job.destination.clone()),
            plain(truncate(file_name(&job.file), NAME_WIDTH)),
            plain(truncate(
                job.metadata.title.as_deref().unwrap_or("-"),
                NAME_WIDTH,
            )),
            plain(
                job.metadata
                    .privacy
                    .clone()
                    .unwrap_or_else(|| "-".to_owned()),
            ),
            plain(short_time(&job.updated_at, now)),
        ];
        if with_warnings {
            row.push((
                truncate(job.warning.as_deref().unwrap_or(""), NOTE_WIDTH),
                Style::Warning,
            ));
        }
        table.styled_row(row);
    }
    table.render(paint)
}

/// `show`: one `key  value` line per field, then the history table; the state, the last
/// error and a warning in their colours when `paint` is on.
pub fn job_details<Tz: TimeZone>(job: &JobView, now: &DateTime<Tz>, paint: Paint) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let mut lines: Vec<(String, String)> = Vec::new();
    let mut add = |key: &str, value: String| lines.push((key.to_owned(), value));
    let or_dash = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());

    add("id", job.id.to_string());
    add("file", job.file.clone());
    add("destination", job.destination.clone());
    // What a queued job waits for belongs with its state: "queued (waiting: metered
    // connection (on_metered = pause))".
    add(
        "state",
        match &job.waiting {
            Some(waiting) => format!("{} (waiting: {waiting})", paint.state(job.state)),
            None => paint.state(job.state),
        },
    );
    add("progress", progress_text(job));
    if let Some(processing) = &job.processing_progress {
        add("processing", crate::render::processing_text(processing));
    }
    if let Some(speed) = job.speed {
        add("speed", human_speed(speed));
    }
    add("attempts", job.attempts.to_string());
    if job.stalls > 0 {
        add(
            "stalled",
            format!(
                "{} attempt{} in a row without progress",
                job.stalls,
                if job.stalls == 1 { "" } else { "s" }
            ),
        );
    }
    add(
        "last error",
        or_dash(error_text(job).map(|error| paint.problem(&error))),
    );
    add(
        "next attempt",
        or_dash(job.next_attempt_at.as_ref().map(|at| when(at, now))),
    );
    let publish = match (&job.publish_at, job.hold) {
        (_, true) => Some(format!("on `upqctl publish {}`", job.id)),
        (Some(at), false) => Some(when(at, now)),
        (None, false) => None,
    };
    add("publish at", or_dash(publish));
    if job.priority != 0 {
        add("priority", job.priority.to_string());
    }
    add("title", or_dash(job.metadata.title.clone()));
    add("caption", or_dash(job.metadata.caption.clone()));
    add("privacy", or_dash(job.metadata.privacy.clone()));
    for (key, value) in &job.metadata.extra {
        add(&format!("meta {key}"), value.clone());
    }
    add("created", short_time(&job.created_at, now));
    add("updated", short_time(&job.updated_at, now));
    add("remote", or_dash(job.remote.clone()));
    if let Some(review) = &job.review_url {
        add("review at", review.clone());
    }
    add("content hash", or_dash(job.content_hash.clone()));
    if let Some(warning) = &job.warning {
        add("warning", paint.warning(warning));
    }
    if !job.actions.is_empty() {
        add("actions", job.actions.join(", "));
    }

    let width = lines.iter().map(|(key, _)| key.len()).max().unwrap_or(0) + 2;
    let indent = format!("\n{}", " ".repeat(width));
    let mut out = String::new();
    for (key, value) in lines {
        // Multi-line captions stay aligned under their first line.
        let value = value.trim_end().replace('\n', &indent);
        out.push_str(&format!("{key:<width$}{value}\n"));
    }
    if let Some(history) = &job.history {
        out.push('\n');
        out.push_str(&history_table(history, now, paint));
    }
    out
}

/// A job's history: AT, FROM, TO, REASON; the states in their colours when `paint` is on.
pub fn history_table<Tz: TimeZone>(
    history: &[HistoryEntry],
    now: &DateTime<Tz>,
    paint: Paint,
) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let mut table = Table::new(&[
        ("AT", Align::Left),
        ("FROM", Align::Left),
        ("TO", Align::Left),
        ("REASON", Align::Left),
    ]);
    for entry in history {
        table.styled_row(vec![
            (short_time(&entry.at, now), Style::Plain),
            entry.from.map_or_else(
                || ("-".to_owned(), Style::Plain),
                |state| (state.to_string(), Style::of_state(state)),
            ),
            (entry.to.to_string(), Style::of_state(entry.to)),
            (entry.reason.clone(), Style::Plain),
        ]);
    }
    table.render(paint)
}

/// One line for one id of a multi-id command: `Ok("7 paused")` or `Err("9: no job 9")`.
/// `with_state` adds the state the job is in now when it differs from `verb`.
pub fn batch_line(item: &BatchItem, verb: &str, with_state: bool) -> Result<String, String> {
    if let Some(error) = &item.error {
        // Messages that already start by naming the job need no second id in front.
        return Err(
            if error.message.starts_with(&format!("job {} ", item.id))
                || error.message.starts_with(&format!("job {}:", item.id))
            {
                error.message.clone()
            } else {
                format!("{}: {}", item.id, error.message)
            },
        );
    }
    let mut line = format!("{} {verb}", item.id);
    if let Some(job) = &item.job {
        if with_state && job.state.as_str() != verb {
            line.push_str(&format!(" (now {})", job.state));
        }
        if let Some(warning) = &job.warning {
            line.push_str(&format!("; warning: {warning}"));
        }
    }
    Ok(line)
}

/// How a job ended, for `wait` and `watch`: "7 published", "8 failed: stalled: ...";
/// the outcome in its colour when `paint` is on.
pub fn outcome_line(job: &JobView, paint: Paint) -> String {
    match job.state {
        JobState::Published => match &job.remote {
            Some(remote) => format!("{} {}: {remote}", job.id, paint.ok("published")),
            None => format!("{} {}", job.id, paint.ok("published")),
        },
        JobState::Failed => match error_text(job) {
            Some(error) => format!("{} {}: {error}", job.id, paint.problem("failed")),
            None => format!("{} {}", job.id, paint.problem("failed")),
        },
        JobState::Canceled => format!("{} {}", job.id, paint.dim("canceled (kept as a draft)")),
        state => format!("{} {}", job.id, paint.state(state)),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::FixedOffset;
    use upq_proto::{ErrorBody, ErrorCode, JobError, Metadata};

    fn at(hour: u32, minute: u32, second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, hour, minute, second)
            .unwrap()
    }

    fn now() -> DateTime<FixedOffset> {
        FixedOffset::east_opt(0)
            .unwrap()
            .with_ymd_and_hms(2026, 12, 1, 12, 0, 0)
            .unwrap()
    }

    pub(crate) fn job(id: u64, state: JobState) -> JobView {
        JobView {
            id,
            file: format!("/home/me/Videos/clip{id}.mp4"),
            destination: "local".into(),
            state,
            size: 50_541_363,
            bytes_sent: 25_270_681,
            bytes_transferred: 25_270_681,
            attempts: 1,
            last_error: None,
            next_attempt_at: None,
            publish_at: None,
            hold: false,
            priority: 0,
            created_at: at(11, 0, 0),
            updated_at: at(11, 30, 0),
            metadata: Metadata::default(),
            remote: None,
            upload_url: None,
            content_hash: None,
            speed: None,
            bytes_in_flight: None,
            stalls: 0,
            review_url: None,
            post: None,
            processing_progress: None,
            waiting: None,
            ignore_policies: false,
            warning: None,
            actions: Vec::new(),
            history: None,
        }
    }

    #[test]
    fn list_table_without_notes() {
        let mut titled = job(7, JobState::Uploading);
        titled.metadata.title = Some("Trip to the sea".into());
        let jobs = vec![titled, job(12, JobState::Queued)];
        assert_eq!(
            jobs_table(&jobs, &now(), Paint::OFF),
            "\
ID  STATE      PROGRESS      SIZE  DEST   NAME
 7  uploading       49%  48.2 MiB  local  Trip to the sea
12  queued          49%  48.2 MiB  local  clip12.mp4
"
        );
    }

    #[test]
    fn list_table_notes_retrying_failed_and_held_jobs() {
        let mut retrying = job(3, JobState::Retrying);
        retrying.last_error = Some(JobError {
            kind: "stalled".into(),
            message: "no progress for 30s".into(),
        });
        retrying.next_attempt_at = Some(at(12, 0, 12));
        let mut failed = job(4, JobState::Failed);
        failed.last_error = Some(JobError {
            kind: "http".into(),
            message: "403 Forbidden".into(),
        });
        let mut held = job(5, JobState::Held);
        held.hold = true;
        let mut waiting = job(8, JobState::Queued);
        waiting.waiting = Some("job 7 of p2 to be ready".into());
        let mut timed = job(9, JobState::Queued);
        timed.next_attempt_at = Some(at(13, 10, 0));
        let table = jobs_table(
            &[
                retrying,
                failed,
                held,
                job(6, JobState::Paused),
                waiting,
                timed,
            ],
            &now(),
            Paint::OFF,
        );
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].ends_with("NAME       NOTE"), "{table}");
        assert!(
            lines[1].ends_with("stalled: no progress for 30s; next try in 12s"),
            "{table}"
        );
        assert!(lines[2].ends_with("http: 403 Forbidden"), "{table}");
        assert!(lines[3].ends_with("until `upqctl publish 5`"), "{table}");
        assert!(lines[4].ends_with("clip6.mp4"), "{table}");
        assert!(
            lines[5].ends_with("waiting: job 7 of p2 to be ready"),
            "{table}"
        );
        assert!(lines[6].ends_with("starts 13:10:00"), "{table}");
    }

    #[test]
    fn list_table_paints_states_without_moving_columns() {
        let mut failed = job(4, JobState::Failed);
        failed.last_error = Some(JobError {
            kind: "http".into(),
            message: "403 Forbidden".into(),
        });
        let jobs = vec![
            failed,
            job(5, JobState::Paused),
            job(6, JobState::Published),
            job(7, JobState::Uploading),
        ];
        let plain = jobs_table(&jobs, &now(), Paint::OFF);
        let painted = jobs_table(&jobs, &now(), Paint::ON);
        assert!(!plain.contains('\x1b'), "{plain}");
        assert!(painted.contains("\x1b[31mfailed\x1b[0m"), "{painted}");
        assert!(painted.contains("\x1b[33mpaused\x1b[0m"), "{painted}");
        assert!(painted.contains("\x1b[1;32mpublished\x1b[0m"), "{painted}");
        let unpainted = painted
            .replace("\x1b[31m", "")
            .replace("\x1b[33m", "")
            .replace("\x1b[1;32m", "")
            .replace("\x1b[0m", "");
        assert_eq!(unpainted, plain);
    }

    #[test]
    fn drafts_table_shows_metadata_and_warnings() {
        let mut draft = job(9, JobState::Canceled);
        draft.metadata.title = Some("Trip".into());
        draft.metadata.privacy = Some("private".into());
        let plain = drafts_table(std::slice::from_ref(&draft), &now(), Paint::OFF);
        assert_eq!(
            plain,
            "\
ID  PROGRESS      SIZE  DEST   FILE       TITLE  PRIVACY  CANCELED
 9       49%  48.2 MiB  local  clip9.mp4  Trip   private  11:30:00
"
        );
        draft.warning = Some("the file changed since it was queued".into());
        let warned = drafts_table(&[draft], &now(), Paint::OFF);
        assert!(warned.lines().next().unwrap().ends_with("WARNING"));
        assert!(warned.contains("the file changed since it was queued"));
    }

    #[test]
    fn details_then_history() {
        let mut shown = job(7, JobState::Retrying);
        shown.metadata.title = Some("Trip".into());
        shown.metadata.caption = Some("line one\nline two".into());
        shown.metadata.extra.insert("tag".into(), "travel".into());
        shown.next_attempt_at = Some(at(12, 1, 0));
        shown.history = Some(vec![
            HistoryEntry {
                at: at(11, 0, 0),
                from: None,
                to: JobState::Queued,
                reason: "added".into(),
            },
            HistoryEntry {
                at: at(11, 0, 1),
                from: Some(JobState::Queued),
                to: JobState::Uploading,
                reason: "slot free".into(),
            },
        ]);
        let text = job_details(&shown, &now(), Paint::OFF);
        assert!(
            text.starts_with("id            7\nfile          /home/me/Videos/clip7.mp4\n"),
            "{text}"
        );
        assert!(
            text.contains("progress      24.1 MiB confirmed / 48.2 MiB (49%)\n"),
            "{text}"
        );
        assert!(text.contains("next attempt  12:01:00 (in 1m)\n"), "{text}");
        assert!(text.contains("publish at    -\n"), "{text}");
        assert!(
            text.contains("caption       line one\n              line two\n"),
            "{text}"
        );
        assert!(text.contains("meta tag      travel\n"), "{text}");
        assert!(
            text.ends_with(
                "\nAT        FROM    TO         REASON\n\
                 11:00:00  -       queued     added\n\
                 11:00:01  queued  uploading  slot free\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn batch_lines() {
        let paused = BatchItem {
            id: 7,
            job: Some(Box::new(job(7, JobState::Paused))),
            error: None,
        };
        assert_eq!(batch_line(&paused, "paused", true), Ok("7 paused".into()));
        let resumed = BatchItem {
            id: 7,
            job: Some(Box::new(job(7, JobState::Queued))),
            error: None,
        };
        assert_eq!(
            batch_line(&resumed, "resumed", true),
            Ok("7 resumed (now queued)".into())
        );
        let missing = BatchItem {
            id: 9,
            job: None,
            error: Some(ErrorBody {
                code: ErrorCode::NotFound,
                message: "no job 9".into(),
            }),
        };
        assert_eq!(
            batch_line(&missing, "paused", true),
            Err("9: no job 9".into())
        );
        let refused = BatchItem {
            id: 1,
            job: None,
            error: Some(ErrorBody {
                code: ErrorCode::InvalidState,
                message: "job 1: a published job cannot be canceled".into(),
            }),
        };
        assert_eq!(
            batch_line(&refused, "canceled", true),
            Err("job 1: a published job cannot be canceled".into())
        );
        let discarded = BatchItem {
            id: 2,
            job: Some(Box::new(job(2, JobState::Canceled))),
            error: None,
        };
        assert_eq!(
            batch_line(&discarded, "discarded", false),
            Ok("2 discarded".into())
        );
    }

    #[test]
    fn outcomes() {
        let mut published = job(1, JobState::Published);
        published.remote = Some("/outbox/clip1.mp4".into());
        assert_eq!(
            outcome_line(&published, Paint::OFF),
            "1 published: /outbox/clip1.mp4"
        );
        assert_eq!(
            outcome_line(&published, Paint::ON),
            "1 \x1b[1;32mpublished\x1b[0m: /outbox/clip1.mp4"
        );
        let mut failed = job(2, JobState::Failed);
        failed.last_error = Some(JobError {
            kind: "file".into(),
            message: "changed while uploading".into(),
        });
        assert_eq!(
            outcome_line(&failed, Paint::OFF),
            "2 failed: file: changed while uploading"
        );
        assert_eq!(
            outcome_line(&job(3, JobState::Canceled), Paint::OFF),
            "3 canceled (kept as a draft)"
        );
    }
}
