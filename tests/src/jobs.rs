//! Reading a job's history: transitions into a state and the offsets uploads resumed at.
//!
//! Pure functions over `JobView`; they ask the daemon nothing.

use chrono::{DateTime, Utc};
use upq_proto::{HistoryEntry, JobState, JobView};

/// History entries that moved the job into `state`, oldest first.
pub fn history_to(job: &JobView, state: JobState) -> Vec<&HistoryEntry> {
    job.history
        .as_deref()
        .unwrap_or_else(|| panic!("job {} was shown without its history", job.id))
        .iter()
        .filter(|entry| entry.to == state)
        .collect()
}

/// `(at, N)` of every transition into `uploading` whose reason says `resuming at byte N`.
pub fn resume_offsets(job: &JobView) -> Vec<(DateTime<Utc>, u64)> {
    history_to(job, JobState::Uploading)
        .into_iter()
        .filter_map(|entry| Some((entry.at, parse_resume_offset(&entry.reason)?)))
        .collect()
}

/// `... resuming at byte 123 ...` → 123.
pub fn parse_resume_offset(reason: &str) -> Option<u64> {
    let (_, rest) = reason.split_once("resuming at byte ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The whole history as text, for assertion messages.
pub fn describe_history(job: &JobView) -> String {
    job.history
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let from = e.from.map_or("-".to_string(), |s| s.to_string());
            format!("  {} {from} -> {}: {}", e.at.to_rfc3339(), e.to, e.reason)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_resume_offsets() {
        assert_eq!(
            parse_resume_offset("resuming at byte 4194304"),
            Some(4194304)
        );
        assert_eq!(
            parse_resume_offset("restart: resuming at byte 12 of 99"),
            Some(12)
        );
        assert_eq!(parse_resume_offset("upload started"), None);
    }
}
