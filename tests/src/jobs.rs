//! Reading a job's history: transitions into a state and the offsets uploads resumed at;
//! and the job ids of a post's JSON view.
//!
//! Pure functions over views; they ask the daemon nothing.

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

/// Panics unless the history is one unbroken chain from `queued` to the job's state,
/// in time order, with at most one `published`; `seed` names the run in messages.
pub fn assert_consistent_history(job: &JobView, seed: u64) {
    let history = job.history.as_ref().expect("show includes the history");
    assert!(
        !history.is_empty(),
        "seed {seed}: job {} has no history",
        job.id
    );
    assert_eq!(
        history[0].from, None,
        "seed {seed}: job {} first entry",
        job.id
    );
    assert_eq!(
        history[0].to,
        JobState::Queued,
        "seed {seed}: job {}",
        job.id
    );
    for pair in history.windows(2) {
        assert_eq!(
            pair[1].from,
            Some(pair[0].to),
            "seed {seed}: job {} history jumps from {:?} to an entry that starts at {:?}",
            job.id,
            pair[0].to,
            pair[1].from
        );
        assert!(
            pair[1].at >= pair[0].at,
            "seed {seed}: job {} history goes back in time",
            job.id
        );
    }
    assert_eq!(
        history.last().map(|e| e.to),
        Some(job.state),
        "seed {seed}: job {}",
        job.id
    );
    let published = history
        .iter()
        .filter(|e| e.to == JobState::Published)
        .count();
    assert!(
        published <= 1,
        "seed {seed}: job {} published {published} times",
        job.id
    );
}

/// A small deterministic generator (xorshift64*), so a seed replays a run exactly.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The seed of a kill loop: `UPQ_KILL_SEED` to replay a run, else the clock. Printed.
pub fn kill_seed() -> u64 {
    let seed = std::env::var("UPQ_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7)
                | 1
        });
    eprintln!("kill loop seed: {seed} (replay with UPQ_KILL_SEED={seed})");
    seed
}

/// The ids of the jobs of a post's JSON view (`show pN --json`), in order.
pub fn post_job_ids(post: &serde_json::Value) -> Vec<u64> {
    post["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("a post with jobs: {post}"))
        .iter()
        .map(|job| job["id"].as_u64().expect("a job id"))
        .collect()
}

/// The ids of the jobs of `post` in a JSON list of jobs (`drafts --json`), in order.
pub fn jobs_of_post(jobs: &serde_json::Value, post: &str) -> Vec<u64> {
    jobs.as_array()
        .unwrap_or_else(|| panic!("a list of jobs: {jobs}"))
        .iter()
        .filter(|job| job["post"] == post)
        .map(|job| job["id"].as_u64().expect("a job id"))
        .collect()
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
