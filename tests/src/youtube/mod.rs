//! `YouTubeServer`: an in-process stand-in for the YouTube Data API v3 as an uploader meets it
//! (resumable `videos.insert`, `videos.list`, `videos.update`, `videos.delete`) and, when
//! `YouTubeOptions::oauth` is set, Google's OAuth 2.0 for desktop apps (see [`oauth`]).
//!
//! It is strict: a request that breaks a documented rule is refused the way Google refuses it
//! and recorded in [`YouTubeServer::violations`]. Received bytes go to files in the server's own
//! temp dir, streamed and hashed (BLAKE3) as they are persisted. Session lifetimes, quota days
//! (midnight Pacific Time), `publishAt` and token lifetimes run on a virtual clock a test can
//! compress or advance. Owns its own small tokio runtime and temp dir, nothing else.
//!
//! Sources: the resumable upload guide (`youtube/v3/guides/using_resumable_upload_protocol`),
//! the `videos` resource and method references, the quota cost page
//! (`youtube/v3/determine_quota_cost`) and the errors page. Where they leave room:
//! - Quota. The current quota page gives `videos.insert` a bucket of its own, 100 calls a day
//!   at 1 per call, beside 10,000 units a day for every other method; earlier versions charged
//!   `videos.insert` 1600 units of the 10,000. [`InsertQuota::Calls`]`(100)` is the default,
//!   [`InsertQuota::Units`]`(1600)` the older rule. `videos.list` costs 1, `videos.update` and
//!   `videos.delete` 50. "All API requests, including invalid requests, incur a quota cost of at
//!   least one point": a request refused after authentication costs 1 unit. Quotas reset at
//!   midnight Pacific Time (US daylight saving rules).
//! - A `quotaExceeded` is the client's violation only when it asks again the same quota day
//!   (the first one tells it to wait for the reset); likewise an `uploadLimitExceeded` asked
//!   again within 24 hours ("try again in 24 hours").
//! - `X-Upload-Content-Length` and `X-Upload-Content-Type` are required (Google lets a client
//!   leave them out; an uploader that knows its file has no reason to).
//! - A session URI is its own credential, as on Google's upload servers: its PUTs need no
//!   `Authorization`. It lives `session_lifetime` (a week, as Google's upload sessions do);
//!   after that, or after [`Fault::ExpireSession`], it answers 404. The first 404 of a session
//!   that expired is not a violation; asking again is.
//! - A chunk that does not start at the next byte the server needs is refused with 400 and the
//!   `Range` it holds: after an interruption the guide's recovery is a status query (Step 4.1),
//!   so resending blindly is the client's mistake. A non-final chunk whose size is not a
//!   multiple of 262,144 bytes is refused with 400 and nothing of it is kept. A `Content-Range`
//!   total may be `*` until the final chunk; a PUT without `Content-Range` carries the whole
//!   video (the guide's Step 3). A body that breaks off keeps what arrived, rounded down to
//!   `persist_granularity`; that refusal is nobody's violation (nobody reads it).
//! - A `publishAt` in the past is not refused: the `videos` resource says such a video "will
//!   be published right away", and it is.
//! - An unknown field in the video resource is refused (Google's JSON parser refuses unknown
//!   names); the properties of a part not named in `part` are ignored, as the API ignores them.
//! - `videos.list` needs `youtube`, `youtube.force-ssl` or `youtube.readonly`: `youtube.upload`
//!   alone is refused with `insufficientPermissions`. Unsigned 64-bit numbers
//!   (`processingProgress`) are JSON strings, as in every Google API.
//! - A status update replaces the settable status: a `publishAt` left out is cancelled,
//!   `license`, `embeddable` and `publicStatsViewable` go back to their defaults;
//!   `privacyStatus` and `selfDeclaredMadeForKids` left out are kept.
//! - `YouTubeOptions::unverified_project`: videos uploaded from an unaudited API project are
//!   made private, whatever was asked.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use hyper::StatusCode;
use serde_json::Value;

use crate::serve::{CloseWith, HttpServer};
use crate::vclock::VirtualClock;

mod access;
mod answer;
mod api;
pub mod client;
mod metadata;
pub mod oauth;
pub mod pacific;
mod upload;
pub mod world;

pub use oauth::{AuthorizationRecord, GoogleApp, TokenRequestRecord};

/// The resumable `videos.insert` endpoint; session URIs are this path with an `upload_id`.
pub const UPLOAD_PATH: &str = "/upload/youtube/v3/videos";
/// `videos.list`, `videos.update`, `videos.delete`.
pub const VIDEOS_PATH: &str = "/youtube/v3/videos";
/// Google's authorization endpoint (`https://accounts.google.com/o/oauth2/v2/auth`).
pub const AUTH_PATH: &str = "/o/oauth2/v2/auth";
/// Google's token endpoint (`https://oauth2.googleapis.com/token`).
pub const TOKEN_PATH: &str = "/token";
/// Google's revocation endpoint (`https://oauth2.googleapis.com/revoke`).
pub const REVOKE_PATH: &str = "/revoke";

pub const SCOPE_UPLOAD: &str = "https://www.googleapis.com/auth/youtube.upload";
pub const SCOPE_YOUTUBE: &str = "https://www.googleapis.com/auth/youtube";
pub const SCOPE_FORCE_SSL: &str = "https://www.googleapis.com/auth/youtube.force-ssl";
pub const SCOPE_READONLY: &str = "https://www.googleapis.com/auth/youtube.readonly";

/// The documented limits and costs.
pub mod limits {
    /// Every chunk but the last is a multiple of this (256 KiB).
    pub const CHUNK_GRANULE: u64 = 262_144;
    /// "Maximum file size: 256GB", read as binary gigabytes.
    pub const MAX_VIDEO_SIZE: u64 = 256 * 1024 * 1024 * 1024;
    /// `snippet.title`, in characters.
    pub const MAX_TITLE_CHARS: usize = 100;
    /// `snippet.description`, in bytes.
    pub const MAX_DESCRIPTION_BYTES: usize = 5000;
    /// `snippet.tags`, counted as the docs count them (see `metadata::tags_length`).
    pub const MAX_TAGS_CHARS: usize = 500;
    /// Ids one `videos.list` may name.
    pub const MAX_LIST_IDS: usize = 50;
    /// Largest JSON or form body read from an API call.
    pub const MAX_API_BODY: usize = 1024 * 1024;
    pub const COST_LIST: u64 = 1;
    pub const COST_UPDATE: u64 = 50;
    pub const COST_DELETE: u64 = 50;
    /// What any refused request costs.
    pub const COST_INVALID: u64 = 1;
    /// `videos.insert` in the older quota tables.
    pub const COST_INSERT_UNITS: u64 = 1600;
    /// `videos.insert` calls a day in the current quota table.
    pub const INSERT_CALLS_PER_DAY: u64 = 100;
}

/// How `videos.insert` is charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertQuota {
    /// A bucket of its own: this many calls a day (the current quota table: 100).
    Calls(u64),
    /// This many units of `daily_quota` per call (the older tables: 1600).
    Units(u64),
}

#[derive(Debug, Clone)]
pub struct YouTubeOptions {
    /// An access token always accepted (`Authorization: Bearer <token>`), besides those issued
    /// through OAuth.
    pub token: String,
    /// Scopes `token` carries.
    pub scopes: Vec<String>,
    /// The registered desktop app whose OAuth endpoints are live; None: they answer 404 and only
    /// `token` is accepted.
    pub oauth: Option<GoogleApp>,
    /// Units a day for every method but `videos.insert` when it has its own bucket.
    pub daily_quota: u64,
    pub insert_quota: InsertQuota,
    /// Uploads the channel may start in any 24 hours (virtual time).
    pub upload_limit: u32,
    /// How long a resumable session URI lives (virtual time).
    pub session_lifetime: Duration,
    /// `videos.list` answers showing `processing` after the upload, before the outcome.
    pub processing_polls: u32,
    /// Virtual seconds per real second.
    pub time_scale: f64,
    /// When Some(n), a chunk is persisted only up to a multiple of n bytes (from the start of
    /// the file), the final byte excepted, so a 308's `Range` may confirm less than was sent.
    pub persist_granularity: Option<u64>,
    /// The UTC instant virtual time zero stands for.
    pub start_utc: DateTime<Utc>,
    /// The API project is unaudited: every upload is made private.
    pub unverified_project: bool,
}

/// 2025-01-15 01:00 PST: a quota day that started an hour ago.
pub fn default_start_utc() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 15, 9, 0, 0)
        .single()
        .expect("a valid instant")
}

impl Default for YouTubeOptions {
    /// Token `ya29.test-token` with `youtube.upload` and `youtube`, no OAuth, the current quota
    /// table, 1000 uploads a day, week-long sessions, 2 processing polls, real time, every byte
    /// persisted, starting at [`default_start_utc`], an audited project.
    fn default() -> YouTubeOptions {
        YouTubeOptions {
            token: "ya29.test-token".to_string(),
            scopes: vec![SCOPE_UPLOAD.to_string(), SCOPE_YOUTUBE.to_string()],
            oauth: None,
            daily_quota: 10_000,
            insert_quota: InsertQuota::Calls(limits::INSERT_CALLS_PER_DAY),
            upload_limit: 1000,
            session_lifetime: Duration::from_secs(7 * 24 * 3600),
            processing_polls: 2,
            time_scale: 1.0,
            persist_granularity: None,
            start_utc: default_start_utc(),
            unverified_project: false,
        }
    }
}

/// The endpoints a [`Fault::Respond`] may name.
pub const INJECTABLE_ENDPOINTS: [&str; 8] = [
    "start",
    "put",
    "status_query",
    "list",
    "update",
    "delete",
    "token",
    "revoke",
];

/// A one-shot fault a test queues; each is used by the first event it applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The next request to this endpoint ("start", "put" (a chunk), "status_query", "list",
    /// "update", "delete", "token", "revoke") is answered with this status and error reason
    /// without doing anything (its body is read and discarded). On the OAuth endpoints the
    /// reason and message become `error` and `error_description`.
    Respond {
        endpoint: &'static str,
        status: u16,
        reason: String,
        message: String,
    },
    /// The next chunk accepted is persisted, then its connection is closed without an answer.
    DropAfterStoring,
    /// The next chunk accepted is persisted, then answered with this status (a 5xx: the client
    /// must ask what was kept).
    FailAfterStoring(u16),
    /// The next chunk accepted keeps only its first n bytes.
    PersistPartially(u64),
    /// The session the next PUT names has expired.
    ExpireSession,
    /// The next completed upload ends `failed` with this `status.failureReason`.
    FailProcessing(String),
    /// The next completed upload ends `rejected` with this `status.rejectionReason`.
    RejectProcessing(String),
}

impl Fault {
    /// A `Respond` fault.
    pub fn respond(endpoint: &'static str, status: u16, reason: &str, message: &str) -> Fault {
        Fault::Respond {
            endpoint,
            status,
            reason: reason.to_string(),
            message: message.to_string(),
        }
    }
}

/// One resumable session and, once its last byte arrived, the video it became.
#[derive(Debug, Clone)]
pub struct VideoRecord {
    /// The video id (11 characters), told to the client only when the upload completes.
    pub id: String,
    pub session_uri: String,
    /// The snippet as stored (the settable properties the client sent, checked).
    pub snippet: Value,
    /// The status as it is now: `privacyStatus`, `publishAt`, `selfDeclaredMadeForKids`,
    /// `license`, `embeddable`, `publicStatsViewable`, `uploadStatus`, `failureReason`, ...
    pub status: Value,
    /// Bytes persisted so far.
    pub received: u64,
    /// `X-Upload-Content-Length`.
    pub size: u64,
    /// `X-Upload-Content-Type`.
    pub content_type: String,
    /// BLAKE3 (hex) of the persisted bytes.
    pub blake3: String,
    /// The file holding the persisted bytes (created by the first chunk).
    pub path: PathBuf,
    /// "uploading" until the last byte, then "uploaded", "processed", "failed", "rejected" or
    /// "deleted".
    pub upload_status: String,
    pub deleted: bool,
    /// (virtual time, privacyStatus) from the completed upload on: its first privacy, then
    /// every change.
    pub privacy_changes: Vec<(Duration, String)>,
    /// The server made it public when the clock passed its `publishAt`.
    pub published_by_publish_at: bool,
    /// (first, last) of every chunk PUT whose range could be read, as sent.
    pub chunks: Vec<(u64, u64)>,
    /// Virtual time of the session's start.
    pub created: Duration,
    /// The session URI answers 404 now (past its lifetime, or a fault).
    pub expired: bool,
}

/// One request as the server answered it.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// "start", "put", "status_query", "list", "update", "delete", "insert_without_media",
    /// "authorize", "token", "revoke", or "unknown".
    pub endpoint: &'static str,
    /// The status answered (0: the connection was closed without an answer).
    pub status: u16,
    /// `errors[0].reason` (or the OAuth `error`); "ok" on success.
    pub reason: String,
    pub message: String,
    /// Virtual time of arrival.
    pub at: Duration,
    /// Answered by an injected fault.
    pub injected: bool,
    /// The video (session) it concerned, when known.
    pub video_id: Option<String>,
}

impl RequestRecord {
    fn describe(&self) -> String {
        format!(
            "{:>10.3}s {} {} -> {} {}{}{}{}",
            self.at.as_secs_f64(),
            self.method,
            self.path,
            self.status,
            self.reason,
            if self.message.is_empty() {
                String::new()
            } else {
                format!(": {}", self.message)
            },
            self.video_id
                .as_ref()
                .map(|id| format!(" [{id}]"))
                .unwrap_or_default(),
            if self.injected { " (injected)" } else { "" }
        )
    }
}

/// A fresh unguessable base64url string made of `bytes` bytes, for ids and tokens.
fn mint(tag: &str, counter: u64, bytes: usize) -> String {
    let seed = format!(
        "{tag} {counter} {:?} {}",
        std::time::Instant::now(),
        std::process::id()
    );
    let mut out = vec![0u8; bytes];
    blake3::Hasher::new()
        .update(seed.as_bytes())
        .finalize_xof()
        .fill(&mut out);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
}

/// How a completed upload ends once its processing polls are done.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Processed,
    Failed(String),
    Rejected(String),
}

struct Session {
    record: VideoRecord,
    upload_id: String,
    /// The parts named at the start: what the final answer shows.
    parts: Vec<String>,
    /// Of the persisted bytes.
    hasher: blake3::Hasher,
    /// Held by the PUT being received, so chunks are taken one at a time.
    busy: Arc<tokio::sync::Mutex<()>>,
    expired_by_fault: bool,
    /// A 404 for its expiry was answered: asking again is the client's mistake.
    expiry_told: bool,
    complete: bool,
    /// `processing` answers still to give.
    processing_left: u32,
    outcome: Outcome,
    /// Public at least once: `publishAt` can no longer be set.
    ever_public: bool,
}

impl Session {
    fn complete_and_present(&self) -> bool {
        self.complete && !self.record.deleted
    }
}

/// The quota of the current quota day.
#[derive(Debug)]
struct Quota {
    day: NaiveDate,
    units_used: u64,
    inserts_used: u64,
    /// A quotaExceeded was answered this quota day, per bucket (units, inserts).
    told: (bool, bool),
    refusals: usize,
}

struct Inner {
    options: YouTubeOptions,
    faults: VecDeque<Fault>,
    sessions: Vec<Session>,
    requests: Vec<RequestRecord>,
    violations: Vec<String>,
    quota: Quota,
    /// Virtual times of the session starts counted by the channel's upload limit.
    starts: VecDeque<Duration>,
    /// Virtual time of the last uploadLimitExceeded answered.
    limit_told: Option<Duration>,
    next_id: u64,
    oauth: oauth::OAuthState,
}

struct Shared {
    addr: SocketAddr,
    dir: PathBuf,
    clock: VirtualClock,
    start_utc: DateTime<Utc>,
    inner: Mutex<Inner>,
}

impl Shared {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> Duration {
        self.clock.now()
    }

    /// The UTC instant of virtual time `at`.
    fn utc(&self, at: Duration) -> DateTime<Utc> {
        self.start_utc + chrono::Duration::from_std(at).expect("a representable duration")
    }

    /// The virtual time of a UTC instant (zero for instants before the start).
    fn virtual_at(&self, utc: DateTime<Utc>) -> Duration {
        (utc - self.start_utc).to_std().unwrap_or(Duration::ZERO)
    }

    /// The state, with every `publishAt` that passed applied and the quota day rolled.
    fn settled(&self) -> MutexGuard<'_, Inner> {
        let now = self.now();
        let mut inner = self.inner();
        inner.settle(self, now);
        inner
    }
}

/// A running server; dropping it stops it and deletes the received bytes.
pub struct YouTubeServer {
    /// First, so that it stops before the state and the received bytes go.
    server: HttpServer,
    shared: Arc<Shared>,
    _dir: tempfile::TempDir,
}

impl YouTubeServer {
    /// Listens on `127.0.0.1:0`.
    pub fn start(options: YouTubeOptions) -> YouTubeServer {
        if let Some(app) = &options.oauth {
            if let Err(why) = app.check() {
                panic!("GoogleApp: {why}");
            }
        }
        if let Some(granularity) = options.persist_granularity {
            assert!(granularity > 0, "persist_granularity must be at least 1");
        }
        let clock = VirtualClock::new(options.time_scale);
        let dir = tempfile::Builder::new()
            .prefix("upq-youtube-")
            .tempdir_in(std::env::temp_dir())
            .expect("create the YouTube server's temp dir");
        let mut built = None;
        let server = HttpServer::start("youtube", CloseWith::Fin, |addr| {
            let start_utc = options.start_utc;
            let scale = clock.scale();
            let shared = Arc::new(Shared {
                addr,
                dir: dir.path().to_path_buf(),
                clock,
                start_utc,
                inner: Mutex::new(Inner {
                    options,
                    faults: VecDeque::new(),
                    sessions: Vec::new(),
                    requests: Vec::new(),
                    violations: Vec::new(),
                    quota: Quota {
                        day: pacific::quota_day(start_utc),
                        units_used: 0,
                        inserts_used: 0,
                        told: (false, false),
                        refusals: 0,
                    },
                    starts: VecDeque::new(),
                    limit_told: None,
                    next_id: 0,
                    oauth: oauth::OAuthState::with_scale(scale),
                }),
            });
            built = Some(shared.clone());
            move |request, closer| answer::handle(request, shared.clone(), closer)
        });
        let shared = built.expect("the handler is built at start");
        YouTubeServer {
            server,
            shared,
            _dir: dir,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://127.0.0.1:PORT`, the stand-in for `https://www.googleapis.com` (it serves both
    /// `/upload/youtube/v3/...` and `/youtube/v3/...`) and for Google's OAuth hosts.
    pub fn api_base(&self) -> String {
        self.server.url("")
    }

    /// `api_base()` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api_base())
    }

    /// The fixed token accepted.
    pub fn token(&self) -> String {
        self.shared.inner().options.token.clone()
    }

    /// The virtual time since the server started.
    pub fn now(&self) -> Duration {
        self.shared.now()
    }

    /// The UTC instant the virtual clock stands at.
    pub fn now_utc(&self) -> DateTime<Utc> {
        self.shared.utc(self.shared.now())
    }

    /// The virtual time of a UTC instant (for a `publishAt`).
    pub fn virtual_at(&self, utc: DateTime<Utc>) -> Duration {
        self.shared.virtual_at(utc)
    }

    /// Moves the virtual clock forward.
    pub fn advance(&self, by: Duration) {
        self.shared.clock.advance(by);
    }

    /// Replaces the fixed token's scopes.
    pub fn set_scopes(&self, scopes: &[&str]) {
        self.shared.inner().options.scopes = scopes.iter().map(|s| s.to_string()).collect();
    }

    /// Replaces the fixed token (the old one stops working at once).
    pub fn set_token(&self, token: &str) {
        self.shared.inner().options.token = token.to_string();
    }

    /// Queues a one-shot fault.
    pub fn inject(&self, fault: Fault) {
        if let Fault::Respond {
            endpoint, status, ..
        } = &fault
        {
            assert!(
                INJECTABLE_ENDPOINTS.contains(endpoint),
                "unknown endpoint {endpoint:?}"
            );
            assert!(
                StatusCode::from_u16(*status).is_ok(),
                "invalid status {status}"
            );
        }
        if let Fault::FailAfterStoring(status) = fault {
            assert!((500..600).contains(&status), "FailAfterStoring takes a 5xx");
        }
        self.shared.inner().faults.push_back(fault);
    }

    /// Faults queued and not used yet.
    pub fn pending_faults(&self) -> Vec<Fault> {
        self.shared.inner().faults.iter().cloned().collect()
    }

    /// Every session started, in order, completed or not.
    pub fn videos(&self) -> Vec<VideoRecord> {
        let now = self.shared.now();
        let inner = self.shared.settled();
        let lifetime = inner.options.session_lifetime;
        inner
            .sessions
            .iter()
            .map(|session| {
                let mut record = session.record.clone();
                record.expired = session.expired_by_fault || now > record.created + lifetime;
                record
            })
            .collect()
    }

    /// The session whose video has this id.
    pub fn video(&self, id: &str) -> Option<VideoRecord> {
        self.videos().into_iter().find(|video| video.id == id)
    }

    /// Every request so far, in the order they were answered.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.inner().requests.clone()
    }

    /// Every refusal the client caused, one line each: every 4xx and every OAuth error, except
    /// injected answers, the first answer telling of an expiry, a quota or a limit the client
    /// could not have known of, and refusals of tokens the test ended (`revoke_grants`,
    /// `expire_access_tokens`).
    pub fn violations(&self) -> Vec<String> {
        self.shared.inner().violations.clone()
    }

    /// Quota units used this quota day (every method but an `videos.insert` with its own
    /// bucket).
    pub fn quota_used(&self) -> u64 {
        self.shared.settled().quota.units_used
    }

    /// Sets the units used this quota day.
    pub fn set_quota_used(&self, units: u64) {
        self.shared.settled().quota.units_used = units;
    }

    /// `videos.insert` calls this quota day (counted whichever way they are charged).
    pub fn inserts_used(&self) -> u64 {
        self.shared.settled().quota.inserts_used
    }

    /// Sets the `videos.insert` calls made this quota day.
    pub fn set_inserts_used(&self, calls: u64) {
        self.shared.settled().quota.inserts_used = calls;
    }

    /// How many `quotaExceeded` were answered.
    pub fn quota_refusals(&self) -> usize {
        self.shared.inner().quota.refusals
    }

    /// The virtual time of the next midnight Pacific Time, when quotas reset.
    pub fn next_quota_reset(&self) -> Duration {
        let utc = self.now_utc();
        self.shared.virtual_at(pacific::next_reset(utc))
    }

    /// Moves the virtual clock to the next midnight Pacific Time, when quotas reset.
    pub fn advance_to_quota_reset(&self) {
        self.advance(self.next_quota_reset().saturating_sub(self.now()));
    }

    /// All requests as text, then every session, for assertion messages.
    pub fn describe(&self) -> String {
        let mut lines: Vec<String> = self
            .requests()
            .iter()
            .map(|r| format!("  {}", r.describe()))
            .collect();
        for video in self.videos() {
            lines.push(format!(
                "  video {} {}: {}/{} bytes, {}, privacy {}{}",
                video.id,
                video.session_uri,
                video.received,
                video.size,
                video.upload_status,
                video.status["privacyStatus"],
                if video.expired { ", expired" } else { "" }
            ));
        }
        lines.join("\n")
    }
}
