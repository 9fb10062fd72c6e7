//! Where uploads go: the `Destination` trait every kind implements, and its errors.
//!
//! A destination speaks one remote's protocol; the worker owns retries, holds, state and pacing policy.

pub mod bearer;
pub mod body;
pub mod dir;
#[cfg(test)]
pub mod fake;
pub mod http;
pub mod ratelimit;
pub mod tiktok;

pub mod tus;
pub mod youtube;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use upq_proto::Metadata;

use crate::config::DestinationConfig;
use crate::job::RemoteSession;
use crate::pacer::Pacer;

/// The metadata key under which a job keeps the account it was queued for.
pub const ACCOUNT_KEY: &str = "account";

/// The `kind` of an error that says the remote upload no longer exists (an expired upload
/// URL or session): it is started afresh, and the old one is not discarded, since a request
/// to it would only be refused again.
pub const KIND_EXPIRED: &str = "expired";

/// How an error affects the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Try again later (after `retry_after` if the server said so).
    Transient { retry_after: Option<Duration> },
    /// The destination's offset differs from ours: ask it again, then go on.
    OffsetMismatch,
    /// The remote upload is gone (expired, removed): start a fresh one.
    SessionGone,
    /// The remote dropped the upload without publishing it, even past the commit point
    /// (an expired upload URL on the final chunk, a processing failure worth retrying):
    /// upload the whole file again as a new remote upload.
    Restart,
    /// A person must sign in (or sign in again): the job waits, visibly, without counting
    /// attempts, and goes on by itself after the sign-in.
    SigninRequired,
    /// A quota is used up: the job waits, visibly, until it resets, without counting attempts.
    Quota { until: DateTime<Utc> },
    /// Retrying cannot help.
    Permanent,
}

/// An error from a destination: its class, a stable kind for `last_error.kind`, and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DestError {
    pub class: ErrorClass,
    pub kind: &'static str,
    pub message: String,
}

impl DestError {
    pub fn transient(kind: &'static str, message: impl Into<String>) -> DestError {
        DestError {
            class: ErrorClass::Transient { retry_after: None },
            kind,
            message: message.into(),
        }
    }

    pub fn permanent(kind: &'static str, message: impl Into<String>) -> DestError {
        DestError {
            class: ErrorClass::Permanent,
            kind,
            message: message.into(),
        }
    }

    pub fn with_class(mut self, class: ErrorClass) -> DestError {
        self.class = class;
        self
    }
}

/// What a destination is told about the job it serves.
#[derive(Debug, Clone)]
pub struct UploadInfo {
    pub job_id: u64,
    /// The local file (destinations that inspect it, such as a video preflight).
    pub path: PathBuf,
    /// The file's name, as the destination should call it.
    pub name: String,
    pub size: u64,
    pub metadata: Metadata,
    /// The job's review window: held until `publish`, or until this time.
    pub hold: bool,
    pub publish_at: Option<DateTime<Utc>>,
}

impl UploadInfo {
    /// What the destination is told of `job`.
    pub fn of(job: &crate::job::Job) -> UploadInfo {
        UploadInfo {
            job_id: job.id(),
            path: job.file().to_path_buf(),
            name: job.file_name(),
            size: job.fingerprint().size,
            metadata: job.metadata().clone(),
            hold: job.hold(),
            publish_at: job.publish_at(),
        }
    }
}

/// One chunk of the file at its offset; its bytes are read as they are sent.
pub struct Chunk {
    pub offset: u64,
    pub len: u64,
    pub body: body::ChunkBody,
    /// The last bytes of the file: for destinations that commit with the final chunk,
    /// sending it is the commit point.
    pub is_final: bool,
}

/// What the commit step leaves behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Where the upload lives now (path, URL, post id).
    pub location: String,
    /// What the history should say of how it went public, where that is worth knowing
    /// (who released a video scheduled on the platform too).
    pub note: Option<String>,
}

/// State of remote processing after the commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processing {
    /// Still working; ask again after this long.
    Pending {
        poll_after: Duration,
        detail: String,
        /// How far, where the platform says.
        progress: Option<upq_proto::ProcessingProgress>,
    },
    /// Processed; an explicit publish step follows when `needs_publish` is true.
    Done {
        location: Option<String>,
        needs_publish: bool,
        /// What the history should add to the job's `published` entry.
        note: Option<String>,
    },
}

/// A place uploads go to. Every call must be safe to drop midway (cancel, pause, shutdown).
#[async_trait]
pub trait Destination: Send + Sync + fmt::Debug {
    fn kind(&self) -> &'static str;

    /// Bytes per chunk for a file of `size` bytes.
    fn chunk_size(&self, size: u64) -> u64;

    /// Length of the chunk starting at `offset` (destinations whose final chunk absorbs
    /// the remainder override this).
    fn chunk_len(&self, _session: &RemoteSession, size: u64, offset: u64) -> u64 {
        self.chunk_size(size)
            .max(1)
            .min(size.saturating_sub(offset))
    }

    /// The earliest time a job with this review window should start uploading, for
    /// destinations whose remote uploads expire before a far publish time.
    fn start_not_before(
        &self,
        _hold: bool,
        _publish_at: Option<DateTime<Utc>>,
    ) -> Option<DateTime<Utc>> {
        None
    }

    /// How long a started remote upload lives, where the platform forgets it if it is not
    /// committed in time (TikTok's upload_url). A job of a post held for a common release
    /// starts its upload only once the post's other jobs are ready, so that it waits at
    /// its commit point as little as possible.
    fn upload_lifetime(&self) -> Option<Duration> {
        None
    }

    /// Which of a job's `title`, `caption` and `privacy` may still change once its upload
    /// has started. Most destinations take them all when the upload is created.
    fn editable_after_start(&self, _upload: &UploadInfo) -> &'static [&'static str] {
        &[]
    }

    /// Whether its uploads go over the network: those wait while NetworkManager reports
    /// no (or limited) connectivity, rather than spend attempts on requests that fail.
    fn uses_network(&self) -> bool {
        true
    }

    /// What `add` should say about this review window on this destination.
    fn schedule_warning(
        &self,
        _hold: bool,
        _publish_at: Option<DateTime<Utc>>,
        _now: DateTime<Utc>,
    ) -> Option<String> {
        None
    }

    /// A few words naming a remote upload for the job's history (`publish_id …`).
    fn describe_session(&self, _session: &RemoteSession) -> Option<String> {
        None
    }

    /// Bytes read and sent at a time: small enough for smooth pacing and progress over a
    /// network, larger where the far side is a local disk.
    fn piece_size(&self) -> usize {
        crate::pacer::PIECE_BYTES
    }

    /// True when the platform processes an uncommitted upload (a private video) and a review
    /// window should hold only once it has, so the creator reviews the real result.
    fn processes_before_commit(&self) -> bool {
        false
    }

    /// True when the final chunk is the commit point (tus, TikTok); false when
    /// a separate `commit` call makes the upload public (a folder's rename).
    fn commits_with_final_chunk(&self) -> bool;

    /// The account a job queued now would be posted as (the platform's id for it), for
    /// destinations that sign in; the job keeps it as its `account` metadata.
    async fn account_tag(&self) -> Option<String> {
        None
    }

    /// Checks a job before it is queued; returns warnings that do not block.
    async fn preflight(&self, upload: &UploadInfo) -> Result<Vec<String>, DestError>;

    /// Creates a remote upload, or re-attaches to `existing`. Returns the session to keep.
    async fn open(
        &self,
        upload: &UploadInfo,
        existing: Option<&RemoteSession>,
    ) -> Result<RemoteSession, DestError>;

    /// The offset the destination has durably received: the truth to resume from.
    /// `recorded` is the offset the job last recorded as confirmed, for destinations
    /// that cannot be asked.
    async fn confirmed_offset(
        &self,
        session: &RemoteSession,
        upload: &UploadInfo,
        recorded: u64,
    ) -> Result<u64, DestError>;

    /// Sends one chunk; returns the new confirmed offset.
    async fn send_chunk(
        &self,
        session: &RemoteSession,
        upload: &UploadInfo,
        chunk: Chunk,
        pacer: &Pacer,
    ) -> Result<u64, DestError>;

    /// Once every byte is confirmed: the session to keep from now on, where the platform
    /// gave the finished upload an id of its own that later steps need (a YouTube video id,
    /// which outlives the upload's session URI). `None` keeps the session as it is.
    async fn settled(&self, _session: &RemoteSession) -> Result<Option<RemoteSession>, DestError> {
        Ok(None)
    }

    /// Where the creator can look at an uploaded, not yet public video on the platform
    /// itself during the review window (YouTube Studio).
    fn review_url(&self, _session: &RemoteSession) -> Option<String> {
        None
    }

    /// The separate commit step (only when `commits_with_final_chunk` is false).
    /// `content_hash` is BLAKE3 (hex) of the bytes read from the source.
    async fn commit(
        &self,
        _session: &RemoteSession,
        _upload: &UploadInfo,
        _content_hash: &str,
    ) -> Result<Committed, DestError> {
        Err(DestError::permanent(
            "internal",
            format!(
                "{} uploads commit with their final chunk; there is no separate commit",
                self.kind()
            ),
        ))
    }

    /// Asks how processing is going after the commit.
    async fn poll_processing(
        &self,
        session: &RemoteSession,
        upload: &UploadInfo,
    ) -> Result<Processing, DestError>;

    /// The explicit publish step, for destinations that have one.
    async fn publish(
        &self,
        _session: &RemoteSession,
        _upload: &UploadInfo,
    ) -> Result<Option<String>, DestError> {
        Ok(None)
    }

    /// Throws away a partial upload. Succeeds if it is already gone.
    async fn discard(&self, session: &RemoteSession) -> Result<(), DestError>;

    /// `doctor`: whether uploads can go here now, found without uploading anything. Each
    /// finding is named `destination` (the place itself) or `account` (its sign-in); the
    /// service adds the destination's name and bounds the time taken.
    async fn check(&self) -> Vec<upq_proto::CheckView> {
        vec![upq_proto::CheckView::ok(
            "destination",
            format!(
                "a {} destination; nothing to check short of uploading",
                self.kind()
            ),
        )]
    }
}

/// The configured destinations, by name.
pub type Destinations = BTreeMap<String, Arc<dyn Destination>>;

pub use crate::config::checks::{SettingError, SettingProblem};

/// Why the destinations could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Setting(#[from] SettingError),
    #[error("destination '{name}': cannot set up HTTP: {source}")]
    Http {
        name: String,
        source: reqwest::Error,
    },
}

/// Builds the destinations from the config.
pub fn build(
    configs: &BTreeMap<String, DestinationConfig>,
    accounts: &crate::accounts::Accounts,
) -> Result<Destinations, BuildError> {
    configs
        .iter()
        .map(|(name, config)| {
            let destination: Arc<dyn Destination> =
                match config {
                    DestinationConfig::Dir {
                        path, chunk_size, ..
                    } => Arc::new(dir::DirDestination::new(path.clone(), *chunk_size)),
                    DestinationConfig::Tus {
                        endpoint,
                        chunk_size,
                        headers,
                        connect_timeout,
                        io_timeout,
                        ..
                    } => Arc::new(tus::TusDestination::new(tus::TusSettings {
                        name: name.clone(),
                        endpoint: endpoint.clone(),
                        chunk_size: *chunk_size,
                        headers: headers
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                        connect_timeout: *connect_timeout,
                        io_timeout: *io_timeout,
                    })?),
                    DestinationConfig::Youtube(settings) => Arc::new(
                        youtube::YoutubeDestination::new(name.clone(), settings.clone(), accounts)?,
                    ),
                    DestinationConfig::Tiktok(settings) => Arc::new(
                        tiktok::TiktokDestination::new(name.clone(), settings.clone(), accounts)?,
                    ),
                };
            Ok((name.clone(), destination))
        })
        .collect()
}
