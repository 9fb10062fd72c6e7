//! `TikTokServer`: an in-process stand-in for TikTok's Content Posting API (creator info,
//! direct post and inbox video init, status fetch), the upload URLs it hands out, and, when
//! `TikTokOptions::oauth` is set, the OAuth v2 sign-in a desktop app goes through (see
//! [`oauth`]).
//!
//! It is strict: every documented rule is enforced and a request that breaks one is answered
//! the way TikTok answers it and recorded. Received bytes go to files in the server's own temp
//! dir, streamed and hashed (BLAKE3) as they arrive. The upload URL lifetime, the rate windows,
//! the pending-share window and the OAuth code and token lifetimes run on a virtual clock a
//! test can compress or advance.
//! Owns its own small tokio runtime and nothing else.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Map, Value};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tokio::sync::Notify;

use crate::http;
use crate::serve::{CloseWith, HttpServer};
use crate::vclock::VirtualClock;

mod answer;
mod api;
pub mod client;
pub mod oauth;
mod plan;
mod upload;

pub use oauth::{AuthorizationRecord, OAuthApp, TokenRequestRecord};
pub use plan::plan_chunks;

use answer::*;
use api::Api;

/// The documented limits, in bytes where they are sizes. "MB" is read as decimal.
pub mod limits {
    /// Largest video accepted through FILE_UPLOAD.
    pub const MAX_VIDEO_SIZE: u64 = 4_000_000_000;
    /// Smallest chunk; a file smaller than this is sent as one chunk of its whole size.
    pub const MIN_CHUNK: u64 = 5_000_000;
    /// Largest non-final chunk; a file larger than this must be chunked.
    pub const MAX_CHUNK: u64 = 64_000_000;
    /// Largest final chunk (it absorbs the remainder).
    pub const MAX_FINAL_CHUNK: u64 = 128_000_000;
    pub const MAX_CHUNKS: u64 = 1000;
    /// `post_info.title`, counted in UTF-16 code units.
    pub const MAX_TITLE_UTF16: usize = 2200;
    pub const MAX_PUBLISH_ID: usize = 64;
    pub const MAX_UPLOAD_URL: usize = 256;
    /// Largest JSON request body read from an API call.
    pub const MAX_API_BODY: usize = 1024 * 1024;
}

use limits::*;

pub const CREATOR_INFO_PATH: &str = "/v2/post/publish/creator_info/query/";
pub const DIRECT_INIT_PATH: &str = "/v2/post/publish/video/init/";
pub const INBOX_INIT_PATH: &str = "/v2/post/publish/inbox/video/init/";
pub const STATUS_PATH: &str = "/v2/post/publish/status/fetch/";
/// Where upload URLs point (with `?upload_id=..&upload_token=..`).
pub const UPLOAD_PATH: &str = "/upload/video/";

/// Login Kit's authorization page (TikTok's is on `https://www.tiktok.com`; here the same
/// server serves it).
pub const AUTHORIZE_PATH: &str = "/v2/auth/authorize/";
pub const TOKEN_PATH: &str = "/v2/oauth/token/";
pub const REVOKE_PATH: &str = "/v2/oauth/revoke/";
pub const USER_INFO_PATH: &str = "/v2/user/info/";

pub const SCOPE_PUBLISH: &str = "video.publish";
pub const SCOPE_UPLOAD: &str = "video.upload";
pub const SCOPE_USER_INFO_BASIC: &str = "user.info.basic";

pub const PRIVACY_LEVELS: [&str; 4] = [
    "PUBLIC_TO_EVERYONE",
    "MUTUAL_FOLLOW_FRIENDS",
    "FOLLOWER_OF_CREATOR",
    "SELF_ONLY",
];

/// The `Content-Type`s a chunk PUT may carry.
pub const VIDEO_CONTENT_TYPES: [&str; 3] = ["video/mp4", "video/quicktime", "video/webm"];

/// The `Content-Type` every API call must carry (compared case-insensitively, spaces
/// around `;` ignored).
pub const JSON_CONTENT_TYPE: &str = "application/json; charset=UTF-8";

/// How long a PUT waits for another PUT of the same upload that is still being received
/// (a client that gave up on a connection may retry before the server noticed).
const BUSY_WAIT: Duration = Duration::from_secs(5);

/// At most this much of a refused PUT's body is read (and discarded) before answering.
const MAX_DRAIN: u64 = MAX_FINAL_CHUNK + 1024 * 1024;

/// The creator `creator_info/query/` describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatorInfo {
    pub username: String,
    pub nickname: String,
    pub privacy_level_options: Vec<String>,
    pub comment_disabled: bool,
    pub duet_disabled: bool,
    pub stitch_disabled: bool,
    pub max_video_post_duration_sec: u64,
}

impl Default for CreatorInfo {
    /// All four privacy levels, no interaction disabled, 600 s videos.
    fn default() -> CreatorInfo {
        CreatorInfo {
            username: "upq.test.creator".to_string(),
            nickname: "upq test creator".to_string(),
            privacy_level_options: PRIVACY_LEVELS.iter().map(|s| s.to_string()).collect(),
            comment_disabled: false,
            duet_disabled: false,
            stitch_disabled: false,
            max_video_post_duration_sec: 600,
        }
    }
}

/// Requests per token per `rate_window`; direct and inbox init share `init`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub creator_info: u32,
    pub init: u32,
    pub status: u32,
}

impl Default for RateLimits {
    /// The documented 20 / 6 / 30 per minute.
    fn default() -> RateLimits {
        RateLimits {
            creator_info: 20,
            init: 6,
            status: 30,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TikTokOptions {
    /// An access token always accepted (`Authorization: Bearer <token>`), besides those
    /// issued through OAuth.
    pub token: String,
    /// Scopes `token` carries.
    pub scopes: Vec<String>,
    pub creator: CreatorInfo,
    /// An unaudited client may only post `SELF_ONLY`.
    pub unaudited: bool,
    /// How long an upload URL lives (virtual time).
    pub url_lifetime: Duration,
    /// The sliding window the rate limits count in (virtual time).
    pub rate_window: Duration,
    pub limits: RateLimits,
    /// Status fetches answered `PROCESSING_UPLOAD` after the final chunk, before the outcome.
    pub processing_polls: u32,
    /// Inbox uploads allowed in any 24 hours (virtual time).
    pub max_pending_shares: u32,
    /// Virtual seconds per real second.
    pub time_scale: f64,
    /// The registered app whose OAuth endpoints are live; None: they answer 404 and only
    /// `token` is accepted.
    pub oauth: Option<OAuthApp>,
}

impl Default for TikTokOptions {
    /// Token `act.test-token` with both scopes, the default creator, an audited client,
    /// 1 h URLs, the documented rate limits per 60 s, 2 processing polls, 5 pending shares,
    /// real time, no OAuth.
    fn default() -> TikTokOptions {
        TikTokOptions {
            token: "act.test-token".to_string(),
            scopes: vec![SCOPE_PUBLISH.to_string(), SCOPE_UPLOAD.to_string()],
            creator: CreatorInfo::default(),
            unaudited: false,
            url_lifetime: Duration::from_secs(3600),
            rate_window: Duration::from_secs(60),
            limits: RateLimits::default(),
            processing_polls: 2,
            max_pending_shares: 5,
            time_scale: 1.0,
            oauth: None,
        }
    }
}

/// The endpoints a [`Fault::Respond`] may name.
const INJECTABLE_ENDPOINTS: [&str; 7] = [
    "creator_info",
    "init",
    "status",
    "put",
    "token",
    "revoke",
    "user_info",
];

/// A one-shot fault a test queues; each is used by the first event it applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The next call to this endpoint ("creator_info", "init", "status", "put", "token",
    /// "revoke", "user_info") answers this status and error code without doing anything (its
    /// body is read and discarded). On the OAuth endpoints the code and message become
    /// `error` and `error_description`.
    Respond {
        endpoint: &'static str,
        status: u16,
        code: String,
        message: String,
    },
    /// The next PUT that is accepted is stored and counted but answered with 500 (a lost
    /// acknowledgement: the client's retry of that chunk then meets 416).
    AcceptThenFail,
    /// The next PUT that is accepted is stored, then its connection is closed without a
    /// response.
    AcceptThenDrop,
    /// The next completed upload ends FAILED with this fail_reason (after the
    /// PROCESSING_UPLOAD polls).
    FailProcessing(String),
    /// The next completed upload stays in PROCESSING_UPLOAD this many extra polls.
    SlowProcessing(u32),
}

impl Fault {
    /// A `Respond` fault.
    pub fn respond(endpoint: &'static str, status: u16, code: &str, message: &str) -> Fault {
        Fault::Respond {
            endpoint,
            status,
            code: code.to_string(),
            message: message.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `video/init/`: published on the creator's profile.
    Direct,
    /// `inbox/video/init/`: sent to the creator's inbox as a draft.
    Inbox,
}

/// One upload, from its successful init on.
#[derive(Debug, Clone)]
pub struct UploadRecord {
    pub publish_id: String,
    pub upload_url: String,
    pub mode: Mode,
    pub video_size: u64,
    pub chunk_size: u64,
    pub total_chunk_count: u64,
    pub post_info: Option<Value>,
    /// Bytes accepted so far.
    pub received: u64,
    /// `(first, last, status)` for every PUT to this upload's URL whose `Content-Range`
    /// parsed; status 0 when the connection was dropped instead of answered.
    pub chunks: Vec<(u64, u64, u16)>,
    /// The `Content-Type` of each PUT in `chunks` (empty when absent).
    pub content_types: Vec<String>,
    pub complete: bool,
    /// The upload URL is past its lifetime (virtual clock), whether or not it was used.
    pub expired: bool,
    /// Every status `status/fetch/` served for this publish_id, in order.
    pub statuses: Vec<String>,
    /// Set once PUBLISH_COMPLETE was served.
    pub post_id: Option<u64>,
    /// BLAKE3 (hex) of all received bytes, once complete.
    pub blake3: Option<String>,
    /// The file holding the received bytes.
    pub data_path: PathBuf,
    /// The virtual time of the init.
    pub created: Duration,
}

/// One request as the server answered it.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// "creator_info", "init" (direct or inbox), "status", "put", "authorize", "token",
    /// "revoke", "user_info", or "unknown".
    pub endpoint: &'static str,
    /// The status answered (0: the connection was closed without an answer).
    pub status: u16,
    /// The `error.code` answered ("ok" on success).
    pub code: String,
    pub message: String,
    pub log_id: String,
    /// Virtual time of arrival.
    pub at: Duration,
    /// Answered by an injected fault.
    pub injected: bool,
    /// The upload it concerned, when known.
    pub publish_id: Option<String>,
}

impl RequestRecord {
    fn describe(&self) -> String {
        format!(
            "{:>10.3}s {} {} -> {} {}{}{}{}",
            self.at.as_secs_f64(),
            self.method,
            self.path,
            self.status,
            self.code,
            if self.message.is_empty() {
                String::new()
            } else {
                format!(": {}", self.message)
            },
            self.publish_id
                .as_ref()
                .map(|id| format!(" [{id}]"))
                .unwrap_or_default(),
            if self.injected { " (injected)" } else { "" }
        )
    }
}

/// `Content-Range` of a PUT answer: `bytes 0-{received-1}/{total}`, or `bytes */{total}`
/// when nothing was received.
pub fn progress_range(received: u64, total: u64) -> String {
    if received == 0 {
        format!("bytes */{total}")
    } else {
        format!("bytes 0-{}/{total}", received - 1)
    }
}

/// How an upload ends once its polls are done.
#[derive(Debug, Clone)]
enum Outcome {
    Published,
    Inboxed,
    Failed(String),
}

struct Upload {
    record: UploadRecord,
    upload_id: u64,
    upload_token: String,
    plan: Vec<(u64, u64)>,
    hasher: blake3::Hasher,
    /// Held by the PUT being received, so chunks are taken one at a time.
    busy: Arc<tokio::sync::Mutex<()>>,
    /// PROCESSING_UPLOAD polls still to serve after completion.
    processing_left: u32,
    outcome: Option<Outcome>,
    /// A chunk stored whose answer was lost by an injected fault: its first resend's 416
    /// is the expected recovery, not the client's mistake.
    lost_ack: Option<(u64, u64)>,
}

struct Inner {
    options: TikTokOptions,
    faults: VecDeque<Fault>,
    uploads: Vec<Upload>,
    /// Per (token, endpoint): virtual times of the calls counted in the window.
    windows: HashMap<(String, &'static str), VecDeque<Duration>>,
    /// Virtual times of successful inbox inits.
    inbox_inits: VecDeque<Duration>,
    requests: Vec<RequestRecord>,
    violations: Vec<String>,
    rate_limited: usize,
    next_id: u64,
    oauth: oauth::OAuthState,
}

struct Shared {
    addr: SocketAddr,
    dir: PathBuf,
    clock: VirtualClock,
    log_ids: AtomicU64,
    inner: Mutex<Inner>,
}

impl Shared {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    fn now(&self) -> Duration {
        self.clock.now()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running server; dropping it stops it and deletes the received bytes.
pub struct TikTokServer {
    /// First, so that it stops before the state and the received bytes go.
    server: HttpServer,
    shared: Arc<Shared>,
    _dir: tempfile::TempDir,
}

impl TikTokServer {
    /// Listens on `127.0.0.1:0`.
    pub fn start(options: TikTokOptions) -> TikTokServer {
        assert!(
            options.time_scale.is_finite() && options.time_scale >= 0.0,
            "time_scale must be a finite, non-negative number"
        );
        if let Some(app) = &options.oauth {
            if let Err(why) = app.check_registration() {
                panic!("OAuthApp: {why}");
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("upq-tiktok-")
            .tempdir_in(std::env::temp_dir())
            .expect("create the TikTok server's temp dir");
        let mut built = None;
        let scale = options.time_scale;
        let server = HttpServer::start("tiktok", CloseWith::Fin, |addr| {
            let shared = Arc::new(Shared {
                addr,
                dir: dir.path().to_path_buf(),
                clock: VirtualClock::new(options.time_scale),
                log_ids: AtomicU64::new(0),
                inner: Mutex::new(Inner {
                    options,
                    faults: VecDeque::new(),
                    uploads: Vec::new(),
                    windows: HashMap::new(),
                    inbox_inits: VecDeque::new(),
                    requests: Vec::new(),
                    violations: Vec::new(),
                    rate_limited: 0,
                    next_id: 0,
                    oauth: oauth::OAuthState::with_scale(scale),
                }),
            });
            built = Some(shared.clone());
            move |request, closer| answer::handle(request, shared.clone(), closer)
        });
        let shared = built.expect("the handler is built at start");
        TikTokServer {
            server,
            shared,
            _dir: dir,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://127.0.0.1:PORT`, the stand-in for `https://open.tiktokapis.com`.
    pub fn api_base(&self) -> String {
        self.server.url("")
    }

    /// `api_base()` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api_base())
    }

    /// The token currently accepted.
    pub fn token(&self) -> String {
        self.shared.inner().options.token.clone()
    }

    /// The virtual time since the server started.
    pub fn now(&self) -> Duration {
        self.shared.now()
    }

    /// Moves the virtual clock forward.
    pub fn advance(&self, by: Duration) {
        self.shared.clock.advance(by);
    }

    /// Replaces the token's scopes (a user revoking or granting a permission).
    pub fn set_scopes(&self, scopes: &[&str]) {
        self.shared.inner().options.scopes = scopes.iter().map(|s| s.to_string()).collect();
    }

    /// Replaces the accepted token (the old one is revoked at once).
    pub fn set_token(&self, token: &str) {
        self.shared.inner().options.token = token.to_string();
    }

    pub fn set_creator(&self, creator: CreatorInfo) {
        self.shared.inner().options.creator = creator;
    }

    pub fn set_unaudited(&self, unaudited: bool) {
        self.shared.inner().options.unaudited = unaudited;
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
        self.shared.inner().faults.push_back(fault);
    }

    /// Faults queued and not used yet.
    pub fn pending_faults(&self) -> Vec<Fault> {
        self.shared.inner().faults.iter().cloned().collect()
    }

    /// Every init that succeeded, in order.
    pub fn uploads(&self) -> Vec<UploadRecord> {
        let now = self.shared.now();
        let inner = self.shared.inner();
        let lifetime = inner.options.url_lifetime;
        inner
            .uploads
            .iter()
            .map(|upload| {
                let mut record = upload.record.clone();
                record.expired = now > record.created + lifetime;
                record
            })
            .collect()
    }

    /// The upload with this publish_id.
    pub fn upload(&self, publish_id: &str) -> Option<UploadRecord> {
        self.uploads()
            .into_iter()
            .find(|u| u.publish_id == publish_id)
    }

    /// Every request so far, in the order they were answered.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.inner().requests.clone()
    }

    /// Every refusal the client caused, one line each: every 4xx, and every OAuth error
    /// whatever its status. Not: injected answers, the first resend of a chunk whose answer
    /// a fault lost, tokens the test ended (`revoke_grants`, `expire_access_tokens`).
    pub fn violations(&self) -> Vec<String> {
        self.shared.inner().violations.clone()
    }

    /// How many 429s were answered (injected ones not counted).
    pub fn rate_limited(&self) -> usize {
        self.shared.inner().rate_limited
    }

    /// All requests as text, for assertion messages.
    pub fn describe(&self) -> String {
        self.requests()
            .iter()
            .map(|r| format!("  {}", r.describe()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
