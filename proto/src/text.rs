//! Words and figures for people, shared by every client: sizes, rates, durations, a
//! job's name and how far it is.

use bytesize::ByteSize;

use crate::{JobState, JobView};

/// A size for people: "48.2 MiB", "4 MiB", "512 B".
pub fn human_size(bytes: u64) -> String {
    let text = ByteSize(bytes).display().iec().to_string();
    text.replacen(".0 ", " ", 1)
}

/// A transfer speed: "4 MiB/s".
pub fn human_speed(bytes_per_second: u64) -> String {
    format!("{}/s", human_size(bytes_per_second))
}

/// A rate limit: "4 MiB/s", or "none" for 0.
pub fn human_rate_limit(bytes_per_second: u64) -> String {
    if bytes_per_second == 0 {
        "none".to_owned()
    } else {
        human_speed(bytes_per_second)
    }
}

/// Whole percent of `size` done, rounded down and capped at 100; "-" for an empty file.
pub fn percent(done: u64, size: u64) -> String {
    if size == 0 {
        return "-".to_owned();
    }
    let whole = (u128::from(done) * 100 / u128::from(size)).min(100);
    format!("{whole}%")
}

/// A duration in at most two units: "45s", "12m 5s", "3h 4m", "2d 5h".
pub fn compact_duration(seconds: u64) -> String {
    const MINUTE: u64 = 60;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;
    let pair = |big: u64, big_unit: &str, small: u64, small_unit: &str| {
        if small == 0 {
            format!("{big}{big_unit}")
        } else {
            format!("{big}{big_unit} {small}{small_unit}")
        }
    };
    match seconds {
        s if s < MINUTE => format!("{s}s"),
        s if s < HOUR => pair(s / MINUTE, "m", s % MINUTE, "s"),
        s if s < DAY => pair(s / HOUR, "h", s % HOUR / MINUTE, "m"),
        s => pair(s / DAY, "d", s % DAY / HOUR, "h"),
    }
}

/// The last component of a path, or the whole path when it has none.
pub fn file_name(path: &str) -> &str {
    path.rsplit('/')
        .find(|part| !part.is_empty())
        .unwrap_or(path)
}

/// What people call a job: its title, or its file name.
pub fn job_name(job: &JobView) -> String {
    match job.metadata.title.as_deref().map(str::trim) {
        Some(title) if !title.is_empty() => title.to_owned(),
        _ => file_name(&job.file).to_owned(),
    }
}

/// Bytes at the destination as far as anyone can tell: the confirmed offset, plus while
/// uploading what left in the request under way (one long request is confirmed only when
/// it ends).
pub fn moved(job: &JobView) -> u64 {
    let in_flight = match job.state {
        JobState::Uploading => job.bytes_in_flight.unwrap_or(0),
        _ => 0,
    };
    job.bytes_sent.saturating_add(in_flight).min(job.size)
}

/// `20.0 MiB / 76.3 MiB (26%)`. Where bytes are not moving, the figure is what the
/// destination last confirmed, and says so: those bytes are safe and resume picks up there.
pub fn progress_text(job: &JobView) -> String {
    let stored = !job.state.is_terminal()
        && !matches!(job.state, JobState::Uploading)
        && job.bytes_sent > 0
        && job.bytes_sent < job.size;
    format!(
        "{}{} / {} ({})",
        human_size(moved(job)),
        if stored { " confirmed" } else { "" },
        human_size(job.size),
        percent(moved(job), job.size)
    )
}

/// A platform's processing: "37 of 1000 parts (3.7%), about 12s left".
pub fn processing_text(progress: &crate::ProcessingProgress) -> String {
    let mut text = format!(
        "{} of {} parts ({})",
        progress.parts_processed,
        progress.parts_total,
        percent(progress.parts_processed, progress.parts_total)
    );
    if let Some(ms) = progress.time_left_ms {
        text.push_str(&format!(
            ", about {} left",
            compact_duration(ms.div_ceil(1000))
        ));
    }
    text
}
