//! The public view of a job, as clients see it over the socket and D-Bus.
//!
//! Field names and state names are part of the contract (DESIGN.md "Jobs").

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a job is in its life. Lower case on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Uploading,
    Retrying,
    Paused,
    Held,
    Processing,
    Publishing,
    Published,
    Failed,
    Canceled,
}

impl JobState {
    pub const ALL: [JobState; 10] = [
        JobState::Queued,
        JobState::Uploading,
        JobState::Retrying,
        JobState::Paused,
        JobState::Held,
        JobState::Processing,
        JobState::Publishing,
        JobState::Published,
        JobState::Failed,
        JobState::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Uploading => "uploading",
            JobState::Retrying => "retrying",
            JobState::Paused => "paused",
            JobState::Held => "held",
            JobState::Processing => "processing",
            JobState::Publishing => "publishing",
            JobState::Published => "published",
            JobState::Failed => "failed",
            JobState::Canceled => "canceled",
        }
    }

    /// Terminal states: nothing happens to the job without a user command.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Published | JobState::Failed | JobState::Canceled
        )
    }
}

/// What a user can ask of a job, over any door.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    Pause,
    Resume,
    Cancel,
    Retry,
    Publish,
    Recover,
    Discard,
}

impl Command {
    pub const ALL: [Command; 7] = [
        Command::Pause,
        Command::Resume,
        Command::Cancel,
        Command::Retry,
        Command::Publish,
        Command::Recover,
        Command::Discard,
    ];

    /// The command's name, as upqctl and the socket spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Cancel => "cancel",
            Command::Retry => "retry",
            Command::Publish => "publish",
            Command::Recover => "recover",
            Command::Discard => "discard",
        }
    }

    /// The past participle, for "a {state} job cannot be {participle}".
    pub fn participle(self) -> &'static str {
        match self {
            Command::Pause => "paused",
            Command::Resume => "resumed",
            Command::Cancel => "canceled",
            Command::Retry => "retried",
            Command::Publish => "published",
            Command::Recover => "recovered",
            Command::Discard => "discarded",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown state '{s}'"))
    }
}

/// What the user typed about the video. Travels with the job and survives cancel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<String>,
    /// Further destination-specific fields (`key=value` from the command line).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

/// The last error of a job: a stable machine-readable kind and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    pub kind: String,
    pub message: String,
}

/// One state change in a job's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    /// `null` for the entry that created the job.
    pub from: Option<JobState>,
    pub to: JobState,
    pub reason: String,
}

/// A job as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    pub id: u64,
    pub file: String,
    pub destination: String,
    pub state: JobState,
    pub size: u64,
    /// Bytes the destination has acknowledged (its confirmed offset).
    pub bytes_sent: u64,
    /// Every byte pushed to the destination, re-sends included.
    #[serde(default)]
    pub bytes_transferred: u64,
    pub attempts: u32,
    /// Stalled attempts in a row without progress: the current stall episode (0: none).
    #[serde(default)]
    pub stalls: u32,
    pub last_error: Option<JobError>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub publish_at: Option<DateTime<Utc>>,
    /// Held until `publish` with no time set.
    #[serde(default)]
    pub hold: bool,
    #[serde(default)]
    pub priority: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub metadata: Metadata,
    /// Where the published file or post lives, once known.
    pub remote: Option<String>,
    /// The remote upload in progress, where the destination has a URL for it
    /// (tus: the upload's Location). Absent once the upload is discarded.
    #[serde(default)]
    pub upload_url: Option<String>,
    /// Content hash (BLAKE3, hex) of the bytes read from the source, once all were read.
    pub content_hash: Option<String>,
    /// Upload speed over the last seconds, bytes per second, while uploading.
    pub speed: Option<u64>,
    /// Bytes of the attempt under way that left and are not yet confirmed (a long
    /// request is confirmed when it ends), while uploading.
    #[serde(default)]
    pub bytes_in_flight: Option<u64>,
    /// Where the creator can look at the uploaded, not yet public video on the platform
    /// itself (YouTube Studio), for destinations that upload privately before the release.
    #[serde(default)]
    pub review_url: Option<String>,
    /// How far the platform's processing is, while the job is processing and the
    /// platform says (YouTube's `processingProgress`).
    #[serde(default)]
    pub processing_progress: Option<ProcessingProgress>,
    /// Why a queued job does not start yet, where it is not its start time
    /// (`next_attempt_at`) or a full queue: what it waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    /// The job ignores the upload policies (`add --now`, `resume --now`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_policies: bool,
    /// The post the job belongs to, if it was added with others for the same video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post: Option<crate::ids::PostId>,
    /// Set on drafts whose file changed or vanished since the job was queued.
    pub warning: Option<String>,
    /// The commands the job's state allows now (`pause`, `resume`, `cancel`, `retry`,
    /// `publish`, `recover`, `discard`): what every door offers for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryEntry>>,
}

/// The platform's processing of an uploaded video, as far as it tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessingProgress {
    pub parts_processed: u64,
    pub parts_total: u64,
    /// The platform's estimate of the time left, in milliseconds.
    #[serde(default)]
    pub time_left_ms: Option<u64>,
}

/// `status`: what the daemon is and what it is doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusView {
    pub version: String,
    pub protocol: u32,
    pub pid: u32,
    pub started_at: DateTime<Utc>,
    pub uptime_secs: u64,
    /// Every state with its count, zeros included (keys sorted by name).
    pub counts: BTreeMap<String, u64>,
    pub max_active: u32,
    /// Global rate limit in bytes per second; 0 means none.
    pub rate_limit: u64,
    /// When a rate set by `upqctl limit` gives way to the configured one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_until: Option<DateTime<Utc>>,
    /// True while `pause --all` holds the queue.
    pub queue_paused: bool,
    pub destinations: Vec<String>,
    pub data_dir: String,
    pub socket: String,
    /// Records of the queue database set aside because they do not decode.
    #[serde(default)]
    pub quarantined: u64,
    /// Jobs the queue database lost (found missing against the job catalogue at a start).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost: Vec<LostJob>,
    /// What upq believes about the machine and where it learned it.
    #[serde(default)]
    pub system: SystemView,
    /// What the policies do now, in words ("uploads wait: metered connection
    /// (on_metered = pause)"); empty when nothing holds uploads back or slows them.
    #[serde(default)]
    pub policies: Vec<String>,
    /// The desk's address (`http://127.0.0.1:PORT/`), while it serves.
    #[serde(default)]
    pub web_url: Option<String>,
}

/// The facts the policies read: each with the service that said it ("NetworkManager",
/// "desktop portal", "UPower") or why nobody did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SystemView {
    pub metered: bool,
    pub metered_source: String,
    pub on_battery: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery_percent: Option<f64>,
    pub battery_source: String,
    /// "full", "limited", "portal", "none" or "unknown".
    pub connectivity: String,
    pub connectivity_source: String,
}

/// A job the queue database no longer has, as its catalogue remembers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LostJob {
    pub id: u64,
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub noticed_at: DateTime<Utc>,
}
