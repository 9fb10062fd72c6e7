//! `TikTokServer`: an in-process stand-in for TikTok's Content Posting API (creator info,
//! direct post and inbox video init, status fetch) and the upload URLs it hands out.
//!
//! It is strict: every documented rule is enforced and a request that breaks one is answered
//! the way TikTok answers it and recorded. Received bytes go to files in the server's own temp
//! dir, streamed and hashed (BLAKE3) as they arrive. The upload URL lifetime, the rate windows
//! and the pending-share window run on a virtual clock a test can compress or advance.
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

pub const SCOPE_PUBLISH: &str = "video.publish";
pub const SCOPE_UPLOAD: &str = "video.upload";

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
    /// The one access token the server accepts (`Authorization: Bearer <token>`).
    pub token: String,
    /// Scopes the token carries.
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
}

impl Default for TikTokOptions {
    /// Token `act.test-token` with both scopes, the default creator, an audited client,
    /// 1 h URLs, the documented rate limits per 60 s, 2 processing polls, 5 pending shares,
    /// real time.
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
        }
    }
}

/// A one-shot fault a test queues; each is used by the first event it applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The next call to this endpoint ("creator_info", "init", "status", "put") answers this
    /// status and error code without doing anything (its body is read and discarded).
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
    /// "creator_info", "init" (direct or inbox), "status", "put", or "unknown".
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

/// The chunks `(offset, length)` of a FILE_UPLOAD plan, or why TikTok refuses it.
pub fn plan_chunks(
    video_size: u64,
    chunk_size: u64,
    total_chunk_count: u64,
) -> Result<Vec<(u64, u64)>, String> {
    let invalid = |why: String| Err(format!("The chunk size is invalid: {why}"));
    if video_size == 0 {
        return Err("The video size is invalid: video_size must be at least 1".to_string());
    }
    if video_size > MAX_VIDEO_SIZE {
        return Err(format!(
            "The video size is invalid: {video_size} bytes is over the {MAX_VIDEO_SIZE}-byte limit"
        ));
    }
    if chunk_size == 0 {
        return invalid("chunk_size must be at least 1".to_string());
    }
    if !(1..=MAX_CHUNKS).contains(&total_chunk_count) {
        return invalid(format!(
            "total_chunk_count {total_chunk_count} is outside 1..={MAX_CHUNKS}"
        ));
    }
    if total_chunk_count != video_size / chunk_size {
        return invalid(format!(
            "total_chunk_count {total_chunk_count} is not floor(video_size / chunk_size) = {}",
            video_size / chunk_size
        ));
    }
    if total_chunk_count == 1 {
        if chunk_size != video_size {
            return invalid(format!(
                "a single chunk must be the whole file ({video_size} bytes), not {chunk_size}"
            ));
        }
        if video_size > MAX_CHUNK {
            return invalid(format!(
                "a {video_size}-byte file is over {MAX_CHUNK} bytes and must be chunked"
            ));
        }
        return Ok(vec![(0, video_size)]);
    }
    if video_size < MIN_CHUNK {
        return invalid(format!(
            "a file under {MIN_CHUNK} bytes must be sent as one chunk of its whole size"
        ));
    }
    if !(MIN_CHUNK..=MAX_CHUNK).contains(&chunk_size) {
        return invalid(format!(
            "chunk_size {chunk_size} is outside {MIN_CHUNK}..={MAX_CHUNK}"
        ));
    }
    let last = video_size - (total_chunk_count - 1) * chunk_size;
    if last > MAX_FINAL_CHUNK {
        return invalid(format!(
            "the final chunk would be {last} bytes, over {MAX_FINAL_CHUNK}"
        ));
    }
    Ok((0..total_chunk_count)
        .map(|index| {
            let offset = index * chunk_size;
            let len = if index + 1 == total_chunk_count {
                last
            } else {
                chunk_size
            };
            (offset, len)
        })
        .collect())
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

/// The virtual clock: real elapsed time × scale + whatever tests advanced it by.
struct Clock {
    start: Instant,
    scale: f64,
    advanced: Mutex<Duration>,
}

impl Clock {
    fn now(&self) -> Duration {
        self.start.elapsed().mul_f64(self.scale) + *lock(&self.advanced)
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
}

struct Shared {
    addr: SocketAddr,
    dir: PathBuf,
    clock: Clock,
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
        let dir = tempfile::Builder::new()
            .prefix("upq-tiktok-")
            .tempdir_in(std::env::temp_dir())
            .expect("create the TikTok server's temp dir");
        let mut built = None;
        let server = HttpServer::start("tiktok", CloseWith::Fin, |addr| {
            let shared = Arc::new(Shared {
                addr,
                dir: dir.path().to_path_buf(),
                clock: Clock {
                    start: Instant::now(),
                    scale: options.time_scale,
                    advanced: Mutex::new(Duration::ZERO),
                },
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
                }),
            });
            built = Some(shared.clone());
            move |request, closer| handle(request, shared.clone(), closer)
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
        *lock(&self.shared.clock.advanced) += by;
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
                ["creator_info", "init", "status", "put"].contains(endpoint),
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

    /// Every 4xx the client caused (injected answers and the first resend of a chunk whose
    /// answer a fault lost are not), one line each.
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

/// What the server answers, before it becomes a response.
struct Answer {
    status: u16,
    code: String,
    message: String,
    /// Boxed: answers travel in `Result`s and should stay small.
    data: Box<Value>,
    content_range: Option<String>,
    /// A PUT success carries no body.
    empty_body: bool,
    publish_id: Option<String>,
    injected: bool,
    /// A 4xx that is not counted as the client's violation.
    excused: bool,
    /// Close the connection instead of answering.
    drop_connection: bool,
}

impl Answer {
    fn ok(data: Value) -> Answer {
        Answer {
            status: 200,
            code: "ok".to_string(),
            message: String::new(),
            data: Box::new(data),
            content_range: None,
            empty_body: false,
            publish_id: None,
            injected: false,
            excused: false,
            drop_connection: false,
        }
    }

    fn error(status: u16, code: &str, message: impl Into<String>) -> Answer {
        Answer {
            status,
            code: code.to_string(),
            message: message.into(),
            ..Answer::ok(json!({}))
        }
    }

    fn invalid(message: impl Into<String>) -> Answer {
        Answer::error(400, "invalid_param", message)
    }

    fn publish_id(mut self, publish_id: &str) -> Answer {
        self.publish_id = Some(publish_id.to_string());
        self
    }

    fn range(mut self, range: String) -> Answer {
        self.content_range = Some(range);
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    CreatorInfo,
    DirectInit,
    InboxInit,
    Status,
}

impl Api {
    fn endpoint(self) -> &'static str {
        match self {
            Api::CreatorInfo => "creator_info",
            Api::DirectInit | Api::InboxInit => "init",
            Api::Status => "status",
        }
    }

    /// The token must carry one of these.
    fn scopes(self) -> &'static [&'static str] {
        match self {
            Api::CreatorInfo | Api::DirectInit => &[SCOPE_PUBLISH],
            Api::InboxInit => &[SCOPE_UPLOAD],
            Api::Status => &[SCOPE_PUBLISH, SCOPE_UPLOAD],
        }
    }
}

async fn handle(
    request: Request<Incoming>,
    shared: Arc<Shared>,
    closer: Arc<Notify>,
) -> Response<Full<Bytes>> {
    let at = shared.now();
    let method = request.method().as_str().to_string();
    let path = request.uri().path().to_string();
    let (endpoint, answer) = match path.as_str() {
        CREATOR_INFO_PATH => (
            "creator_info",
            api(request, &shared, Api::CreatorInfo).await,
        ),
        DIRECT_INIT_PATH => ("init", api(request, &shared, Api::DirectInit).await),
        INBOX_INIT_PATH => ("init", api(request, &shared, Api::InboxInit).await),
        STATUS_PATH => ("status", api(request, &shared, Api::Status).await),
        UPLOAD_PATH => ("put", put(request, &shared).await),
        _ => {
            drain(request.into_body()).await;
            (
                "unknown",
                Answer::error(404, "not_found", format!("no endpoint {path}")),
            )
        }
    };
    let log_id = format!(
        "{}{:010X}",
        chrono::Utc::now().format("%Y%m%d%H%M%S"),
        shared.log_ids.fetch_add(1, Ordering::Relaxed) + 1
    );
    record(&shared, at, method, path, endpoint, &answer, &log_id);
    if answer.drop_connection {
        closer.notify_one();
        std::future::pending::<()>().await;
    }
    respond(answer, &log_id)
}

fn record(
    shared: &Shared,
    at: Duration,
    method: String,
    path: String,
    endpoint: &'static str,
    answer: &Answer,
    log_id: &str,
) {
    let record = RequestRecord {
        method,
        path,
        endpoint,
        status: if answer.drop_connection {
            0
        } else {
            answer.status
        },
        code: answer.code.clone(),
        message: answer.message.clone(),
        log_id: log_id.to_string(),
        at,
        injected: answer.injected,
        publish_id: answer.publish_id.clone(),
    };
    let mut inner = shared.inner();
    if !answer.injected {
        if (400..500).contains(&answer.status) && !answer.excused {
            inner.violations.push(format!(
                "{} {}: {} {}: {}{}",
                record.method,
                record.path,
                record.status,
                record.code,
                record.message,
                record
                    .publish_id
                    .as_ref()
                    .map(|id| format!(" [{id}]"))
                    .unwrap_or_default()
            ));
        }
        if answer.status == 429 {
            inner.rate_limited += 1;
        }
    }
    inner.requests.push(record);
}

fn respond(answer: Answer, log_id: &str) -> Response<Full<Bytes>> {
    let body = if answer.empty_body {
        Bytes::new()
    } else {
        let envelope = json!({
            "data": answer.data,
            "error": {"code": answer.code, "message": answer.message, "log_id": log_id},
        });
        Bytes::from(envelope.to_string())
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = StatusCode::from_u16(answer.status).expect("a valid status");
    let headers = response.headers_mut();
    if !answer.empty_body {
        headers.insert(
            "content-type",
            "application/json; charset=UTF-8".parse().expect("header"),
        );
    }
    headers.insert("x-tt-logid", log_id.parse().expect("header"));
    if let Some(range) = answer.content_range {
        headers.insert("content-range", range.parse().expect("header"));
    }
    response
}

/// Reads and discards a body (at most [`MAX_DRAIN`] bytes), so the client that sent it can
/// read the answer.
async fn drain(mut body: Incoming) {
    let mut seen = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return };
        if let Some(data) = frame.data_ref() {
            seen += data.len() as u64;
            if seen > MAX_DRAIN {
                return;
            }
        }
    }
}

/// Reads a small body whole.
async fn read_small(mut body: Incoming) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("reading the request body: {e}"))?;
        if let Some(data) = frame.data_ref() {
            bytes.extend_from_slice(data);
            if bytes.len() > MAX_API_BODY {
                return Err(format!("the request body is over {MAX_API_BODY} bytes"));
            }
        }
    }
    Ok(bytes)
}

/// Removes and returns the first queued fault `pick` accepts.
fn take_fault<T>(inner: &mut Inner, pick: impl Fn(&Fault) -> Option<T>) -> Option<T> {
    let index = inner.faults.iter().position(|f| pick(f).is_some())?;
    inner.faults.remove(index).and_then(|f| pick(&f))
}

fn take_respond(shared: &Shared, endpoint: &str) -> Option<Answer> {
    let mut inner = shared.inner();
    take_fault(&mut inner, |fault| match fault {
        Fault::Respond {
            endpoint: e,
            status,
            code,
            message,
        } if *e == endpoint => {
            let mut answer = Answer::error(*status, code, message.clone());
            answer.injected = true;
            Some(answer)
        }
        _ => None,
    })
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"))
}

/// `application/json; charset=UTF-8`, in any case, with any spaces around `;`.
fn is_json_content_type(value: Option<&str>) -> bool {
    let Some(value) = value else { return false };
    let parts: Vec<String> = value
        .split(';')
        .map(|part| part.trim().to_ascii_lowercase())
        .collect();
    parts == ["application/json", "charset=utf-8"]
}

async fn api(request: Request<Incoming>, shared: &Shared, api: Api) -> Answer {
    if request.method() != Method::POST {
        drain(request.into_body()).await;
        return Answer::error(405, "invalid_param", "this endpoint only takes POST");
    }
    if let Some(answer) = take_respond(shared, api.endpoint()) {
        drain(request.into_body()).await;
        return answer;
    }
    let (parts, body) = request.into_parts();
    let body = match read_small(body).await {
        Ok(body) => body,
        Err(why) => return Answer::invalid(why),
    };
    let now = shared.now();
    let mut inner = shared.inner();

    let expected = format!("Bearer {}", inner.options.token);
    if header(&parts.headers, "authorization") != Some(expected.as_str()) {
        return Answer::error(
            401,
            "access_token_invalid",
            "The access token is invalid or not found in the request.",
        );
    }
    if !api
        .scopes()
        .iter()
        .any(|scope| inner.options.scopes.iter().any(|s| s == scope))
    {
        return Answer::error(
            401,
            "scope_not_authorized",
            format!(
                "The user did not authorize the scope required for completing this request ({}).",
                api.scopes().join(" or ")
            ),
        );
    }
    if !inner.admit(api.endpoint(), now) {
        return Answer::error(
            429,
            "rate_limit_exceeded",
            "The API rate limit was exceeded. Please try again later.",
        );
    }
    if !is_json_content_type(header(&parts.headers, "content-type")) {
        return Answer::invalid(format!(
            "Content-Type must be {JSON_CONTENT_TYPE:?}, not {:?}",
            header(&parts.headers, "content-type").unwrap_or("(none)")
        ));
    }
    let value = if api == Api::CreatorInfo && body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(value) => value,
            Err(e) => return Answer::invalid(format!("the request body is not valid JSON: {e}")),
        }
    };
    let result = match api {
        Api::CreatorInfo => inner.creator_info(&value),
        Api::DirectInit => inner.init(shared, &value, Mode::Direct, now),
        Api::InboxInit => inner.init(shared, &value, Mode::Inbox, now),
        Api::Status => inner.status(&value),
    };
    result.unwrap_or_else(|answer| answer)
}

/// Field checks on a JSON object, each failing with an `invalid_param` answer.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    what: &'a str,
}

impl<'a> Fields<'a> {
    fn of(value: &'a Value, what: &'a str, allowed: &[&str]) -> Result<Fields<'a>, Answer> {
        let map = value
            .as_object()
            .ok_or_else(|| Answer::invalid(format!("{what} must be a JSON object")))?;
        if let Some(unknown) = map.keys().find(|key| !allowed.contains(&key.as_str())) {
            return Err(Answer::invalid(format!(
                "{what} has an unknown field {unknown:?} (known: {})",
                allowed.join(", ")
            )));
        }
        Ok(Fields { map, what })
    }

    fn missing(&self, key: &str) -> Answer {
        Answer::invalid(format!("{}.{key} is required", self.what))
    }

    fn wrong(&self, key: &str, kind: &str) -> Answer {
        Answer::invalid(format!("{}.{key} must be {kind}", self.what))
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key)
    }

    fn string(&self, key: &str) -> Result<Option<&'a str>, Answer> {
        match self.map.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_str()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "a string")),
        }
    }

    fn boolean(&self, key: &str) -> Result<Option<bool>, Answer> {
        match self.map.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "a boolean")),
        }
    }

    fn integer(&self, key: &str) -> Result<Option<u64>, Answer> {
        match self.map.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "a non-negative integer")),
        }
    }

    fn required_integer(&self, key: &str) -> Result<u64, Answer> {
        self.integer(key)?.ok_or_else(|| self.missing(key))
    }
}

impl Inner {
    /// Counts a call in its token's sliding window; false when the window is full.
    fn admit(&mut self, endpoint: &'static str, now: Duration) -> bool {
        let limit = match endpoint {
            "creator_info" => self.options.limits.creator_info,
            "init" => self.options.limits.init,
            _ => self.options.limits.status,
        } as usize;
        let window = self.options.rate_window;
        let calls = self
            .windows
            .entry((self.options.token.clone(), endpoint))
            .or_default();
        while calls.front().is_some_and(|&t| t + window <= now) {
            calls.pop_front();
        }
        if calls.len() >= limit {
            return false;
        }
        calls.push_back(now);
        true
    }

    fn creator_info(&mut self, body: &Value) -> Result<Answer, Answer> {
        Fields::of(body, "the request body", &[])?;
        let creator = &self.options.creator;
        Ok(Answer::ok(json!({
            "creator_avatar_url": format!("https://p16-sign.tiktokcdn.com/{}.jpeg", creator.username),
            "creator_username": creator.username,
            "creator_nickname": creator.nickname,
            "privacy_level_options": creator.privacy_level_options,
            "comment_disabled": creator.comment_disabled,
            "duet_disabled": creator.duet_disabled,
            "stitch_disabled": creator.stitch_disabled,
            "max_video_post_duration_sec": creator.max_video_post_duration_sec,
        })))
    }

    fn init(
        &mut self,
        shared: &Shared,
        body: &Value,
        mode: Mode,
        now: Duration,
    ) -> Result<Answer, Answer> {
        let top = match mode {
            Mode::Direct => Fields::of(body, "the request body", &["post_info", "source_info"])?,
            Mode::Inbox => {
                if body.get("post_info").is_some() {
                    return Err(Answer::invalid(
                        "post_info is not accepted by the inbox upload endpoint",
                    ));
                }
                Fields::of(body, "the request body", &["source_info"])?
            }
        };
        let source_info = top
            .get("source_info")
            .ok_or_else(|| top.missing("source_info"))?;
        let source = Fields::of(
            source_info,
            "source_info",
            &["source", "video_size", "chunk_size", "total_chunk_count"],
        )?;
        match source.string("source")? {
            Some("FILE_UPLOAD") => {}
            Some(other) => {
                return Err(Answer::invalid(format!(
                    "source_info.source must be FILE_UPLOAD here, not {other:?}"
                )))
            }
            None => return Err(source.missing("source")),
        }
        let video_size = source.required_integer("video_size")?;
        let chunk_size = source.required_integer("chunk_size")?;
        let total_chunk_count = source.required_integer("total_chunk_count")?;
        let plan =
            plan_chunks(video_size, chunk_size, total_chunk_count).map_err(Answer::invalid)?;

        let post_info = match mode {
            Mode::Direct => {
                let value = top
                    .get("post_info")
                    .ok_or_else(|| top.missing("post_info"))?;
                self.check_post_info(value)?;
                Some(value.clone())
            }
            Mode::Inbox => {
                let window = Duration::from_secs(24 * 3600);
                while self.inbox_inits.front().is_some_and(|&t| t + window <= now) {
                    self.inbox_inits.pop_front();
                }
                if self.inbox_inits.len() >= self.options.max_pending_shares as usize {
                    return Err(Answer::error(
                        403,
                        "spam_risk_too_many_pending_share",
                        format!(
                            "The user has {} pending shares in the last 24 hours.",
                            self.inbox_inits.len()
                        ),
                    ));
                }
                self.inbox_inits.push_back(now);
                None
            }
        };

        self.next_id += 1;
        let upload_id = 7_300_000_000_000_000_000 + self.next_id;
        let publish_id = match mode {
            Mode::Direct => format!("v_pub_file~v2-1.{upload_id}"),
            Mode::Inbox => format!("v_inbox_file~v2.{upload_id}"),
        };
        let upload_token = blake3::hash(
            format!(
                "{upload_id} {:?} {} {}",
                Instant::now(),
                shared.addr,
                std::process::id()
            )
            .as_bytes(),
        )
        .to_hex()[..32]
            .to_string();
        let upload_url = format!(
            "http://{}{UPLOAD_PATH}?upload_id={upload_id}&upload_token={upload_token}",
            shared.addr
        );
        debug_assert!(publish_id.len() <= MAX_PUBLISH_ID);
        debug_assert!(upload_url.len() <= MAX_UPLOAD_URL);
        let data_path = shared.dir.join(format!("{upload_id}.video"));
        if let Err(e) = std::fs::File::create(&data_path) {
            return Err(Answer::error(
                500,
                "internal_error",
                format!("create {}: {e}", data_path.display()),
            ));
        }
        self.uploads.push(Upload {
            record: UploadRecord {
                publish_id: publish_id.clone(),
                upload_url: upload_url.clone(),
                mode,
                video_size,
                chunk_size,
                total_chunk_count,
                post_info,
                received: 0,
                chunks: Vec::new(),
                content_types: Vec::new(),
                complete: false,
                expired: false,
                statuses: Vec::new(),
                post_id: None,
                blake3: None,
                data_path,
                created: now,
            },
            upload_id,
            upload_token,
            plan,
            hasher: blake3::Hasher::new(),
            busy: Arc::new(tokio::sync::Mutex::new(())),
            processing_left: 0,
            outcome: None,
            lost_ack: None,
        });
        Ok(
            Answer::ok(json!({"publish_id": publish_id, "upload_url": upload_url}))
                .publish_id(&publish_id),
        )
    }

    fn check_post_info(&self, value: &Value) -> Result<(), Answer> {
        let info = Fields::of(
            value,
            "post_info",
            &[
                "title",
                "privacy_level",
                "disable_duet",
                "disable_stitch",
                "disable_comment",
                "video_cover_timestamp_ms",
                "brand_content_toggle",
                "brand_organic_toggle",
                "is_aigc",
            ],
        )?;
        let privacy = info
            .string("privacy_level")?
            .ok_or_else(|| info.missing("privacy_level"))?;
        if let Some(title) = info.string("title")? {
            let units = title.encode_utf16().count();
            if units > MAX_TITLE_UTF16 {
                return Err(Answer::invalid(format!(
                    "post_info.title is {units} UTF-16 code units, over {MAX_TITLE_UTF16}"
                )));
            }
        }
        let disable_comment = info.boolean("disable_comment")?;
        let disable_duet = info.boolean("disable_duet")?;
        let disable_stitch = info.boolean("disable_stitch")?;
        info.integer("video_cover_timestamp_ms")?;
        for key in ["brand_content_toggle", "brand_organic_toggle", "is_aigc"] {
            info.boolean(key)?;
        }
        let creator = &self.options.creator;
        if !creator.privacy_level_options.iter().any(|p| p == privacy) {
            return Err(Answer::error(
                403,
                "privacy_level_option_mismatch",
                format!(
                    "privacy_level {privacy:?} is not one of the creator's options {:?}",
                    creator.privacy_level_options
                ),
            ));
        }
        if self.options.unaudited && privacy != "SELF_ONLY" {
            return Err(Answer::error(
                403,
                "unaudited_client_can_only_post_to_private_accounts",
                format!("an unaudited client may only post SELF_ONLY, not {privacy}"),
            ));
        }
        for (disabled, flag, key) in [
            (creator.comment_disabled, disable_comment, "disable_comment"),
            (creator.duet_disabled, disable_duet, "disable_duet"),
            (creator.stitch_disabled, disable_stitch, "disable_stitch"),
        ] {
            if disabled && flag != Some(true) {
                return Err(Answer::invalid(format!(
                    "post_info.{key} must be true: the creator has it disabled"
                )));
            }
        }
        Ok(())
    }

    fn status(&mut self, body: &Value) -> Result<Answer, Answer> {
        let fields = Fields::of(body, "the request body", &["publish_id"])?;
        let publish_id = fields
            .string("publish_id")?
            .ok_or_else(|| fields.missing("publish_id"))?;
        let upload = self
            .uploads
            .iter_mut()
            .find(|u| u.record.publish_id == publish_id)
            .ok_or_else(|| {
                Answer::invalid(format!("publish_id {publish_id:?} does not exist"))
                    .publish_id(publish_id)
            })?;
        let mut data = Map::new();
        let status = match (&upload.outcome, upload.record.complete) {
            (Some(outcome), true) if upload.processing_left == 0 => match outcome {
                Outcome::Published => {
                    let post_id = *upload
                        .record
                        .post_id
                        .get_or_insert(7_400_000_000_000_000_000 + upload.upload_id % 1_000_000);
                    data.insert("publicaly_available_post_id".into(), json!([post_id]));
                    "PUBLISH_COMPLETE"
                }
                Outcome::Inboxed => "SEND_TO_USER_INBOX",
                Outcome::Failed(reason) => {
                    data.insert("fail_reason".into(), json!(reason));
                    "FAILED"
                }
            },
            (_, true) => {
                upload.processing_left = upload.processing_left.saturating_sub(1);
                "PROCESSING_UPLOAD"
            }
            (_, false) => "PROCESSING_UPLOAD",
        };
        data.insert("status".into(), json!(status));
        data.insert("uploaded_bytes".into(), json!(upload.record.received));
        data.entry("publicaly_available_post_id")
            .or_insert_with(|| json!([]));
        upload.record.statuses.push(status.to_string());
        Ok(Answer::ok(Value::Object(data)).publish_id(publish_id))
    }
}

/// `bytes {first}-{last}/{total}`, strictly.
fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let rest = value.strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    Some((number(first)?, number(last)?, number(total)?))
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A chunk that passed every header check and may be written.
struct Accepted {
    first: u64,
    len: u64,
    path: PathBuf,
    hasher: blake3::Hasher,
}

async fn put(request: Request<Incoming>, shared: &Shared) -> Answer {
    if request.method() != Method::PUT {
        drain(request.into_body()).await;
        return Answer::error(405, "invalid_param", "the upload URL only takes PUT");
    }
    if let Some(answer) = take_respond(shared, "put") {
        drain(request.into_body()).await;
        return answer;
    }
    let query = request.uri().query().unwrap_or("").to_string();
    let found = {
        let inner = shared.inner();
        let id = query_param(&query, "upload_id").and_then(|id| id.parse::<u64>().ok());
        let token = query_param(&query, "upload_token");
        inner
            .uploads
            .iter()
            .find(|u| Some(u.upload_id) == id && Some(u.upload_token.as_str()) == token)
            .map(|u| (u.busy.clone(), u.record.publish_id.clone()))
    };
    let Some((busy, publish_id)) = found else {
        drain(request.into_body()).await;
        return Answer::error(
            404,
            "not_found",
            "no upload task for this upload_id and upload_token",
        );
    };
    let Ok(_guard) = tokio::time::timeout(BUSY_WAIT, busy.lock_owned()).await else {
        drain(request.into_body()).await;
        let range = {
            let inner = shared.inner();
            let upload = find(&inner, &publish_id);
            progress_range(upload.record.received, upload.record.video_size)
        };
        return Answer::error(
            416,
            "range_not_satisfiable",
            "another chunk of this upload is still being received",
        )
        .range(range)
        .publish_id(&publish_id);
    };

    let (parts, body) = request.into_parts();
    let content_type = header(&parts.headers, "content-type")
        .unwrap_or("")
        .to_string();
    let range = header(&parts.headers, "content-range").and_then(parse_content_range);
    let checked = {
        let now = shared.now();
        let mut inner = shared.inner();
        let lifetime = inner.options.url_lifetime;
        let upload = find_mut(&mut inner, &publish_id);
        check_put(&parts.headers, upload, now, lifetime)
    };
    let answer = match checked {
        Err(answer) => {
            drain(body).await;
            answer
        }
        Ok(accepted) => {
            let first = accepted.first;
            let len = accepted.len;
            match write_chunk(body, accepted).await {
                Ok(hasher) => {
                    let mut inner = shared.inner();
                    commit(&mut inner, &publish_id, first, len, hasher)
                }
                Err(why) => Answer::invalid(why),
            }
        }
    }
    .publish_id(&publish_id);

    if let Some((first, last, _)) = range {
        let mut inner = shared.inner();
        let upload = find_mut(&mut inner, &publish_id);
        let status = if answer.drop_connection {
            0
        } else {
            answer.status
        };
        upload.record.chunks.push((first, last, status));
        upload.record.content_types.push(content_type);
    }
    answer
}

fn find<'a>(inner: &'a Inner, publish_id: &str) -> &'a Upload {
    inner
        .uploads
        .iter()
        .find(|u| u.record.publish_id == publish_id)
        .expect("uploads are never removed")
}

fn find_mut<'a>(inner: &'a mut Inner, publish_id: &str) -> &'a mut Upload {
    inner
        .uploads
        .iter_mut()
        .find(|u| u.record.publish_id == publish_id)
        .expect("uploads are never removed")
}

/// Every header rule of a chunk PUT, against the upload's progress and plan.
fn check_put(
    headers: &HeaderMap,
    upload: &mut Upload,
    now: Duration,
    lifetime: Duration,
) -> Result<Accepted, Answer> {
    let total = upload.record.video_size;
    let received = upload.record.received;
    if now > upload.record.created + lifetime {
        return Err(Answer::error(
            403,
            "url_expired",
            format!(
                "the upload URL expired {:.0} s after it was issued",
                lifetime.as_secs_f64()
            ),
        ));
    }
    let content_type = header(headers, "content-type");
    if !content_type.is_some_and(|ct| {
        VIDEO_CONTENT_TYPES
            .iter()
            .any(|allowed| ct.trim().eq_ignore_ascii_case(allowed))
    }) {
        return Err(Answer::invalid(format!(
            "Content-Type must be one of {}, not {:?}",
            VIDEO_CONTENT_TYPES.join(", "),
            content_type.unwrap_or("(none)")
        )));
    }
    if headers.contains_key("transfer-encoding") {
        return Err(Answer::invalid(
            "a chunk must be sent with Content-Length, not Transfer-Encoding",
        ));
    }
    let Some(length) = header(headers, "content-length") else {
        return Err(Answer::invalid("Content-Length is required"));
    };
    let Ok(length) = length.trim().parse::<u64>() else {
        return Err(Answer::invalid(format!(
            "Content-Length {length:?} is not a number"
        )));
    };
    let Some(claimed) = header(headers, "content-range") else {
        return Err(Answer::invalid("Content-Range is required"));
    };
    let Some((first, last, claimed_total)) = parse_content_range(claimed) else {
        return Err(Answer::invalid(format!(
            "Content-Range {claimed:?} is not \"bytes {{first}}-{{last}}/{{total}}\""
        )));
    };
    if claimed_total != total {
        return Err(Answer::invalid(format!(
            "Content-Range total {claimed_total} is not the video_size {total}"
        )));
    }
    if first > last || last >= total {
        return Err(Answer::invalid(format!(
            "Content-Range {claimed:?} is not a range inside the video"
        )));
    }
    if length != last - first + 1 {
        return Err(Answer::invalid(format!(
            "Content-Length {length} does not match Content-Range {claimed:?} ({} bytes)",
            last - first + 1
        )));
    }
    if received == total || first != received {
        let mut answer = Answer::error(
            416,
            "range_not_satisfiable",
            if received == total {
                format!("all {total} bytes were already received")
            } else {
                format!(
                    "the upload has {received} bytes; the next chunk starts there, not at {first}"
                )
            },
        )
        .range(progress_range(received, total));
        if upload.lost_ack == Some((first, last)) {
            upload.lost_ack = None;
            answer.excused = true;
        }
        return Err(answer);
    }
    let planned = upload
        .plan
        .iter()
        .find(|(offset, _)| *offset == received)
        .map(|(_, len)| *len)
        .expect("progress is always at a chunk boundary");
    if length != planned {
        return Err(Answer::invalid(format!(
            "this chunk is {length} bytes; the plan's chunk at {received} is {planned} bytes"
        )));
    }
    Ok(Accepted {
        first,
        len: length,
        path: upload.record.data_path.clone(),
        hasher: upload.hasher.clone(),
    })
}

/// Streams the body into the upload's file at `first`, hashing it; on any failure the file
/// is cut back to `first` and the progress is unchanged.
async fn write_chunk(mut body: Incoming, accepted: Accepted) -> Result<blake3::Hasher, String> {
    let Accepted {
        first,
        len,
        path,
        mut hasher,
    } = accepted;
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .await
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    let result: Result<(), String> = async {
        file.seek(io::SeekFrom::Start(first))
            .await
            .map_err(|e| format!("seek: {e}"))?;
        let mut written = 0u64;
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| format!("the body ended after {written} of {len} bytes: {e}"))?;
            if let Some(data) = frame.data_ref() {
                written += data.len() as u64;
                if written > len {
                    return Err(format!("the body is longer than {len} bytes"));
                }
                file.write_all(data)
                    .await
                    .map_err(|e| format!("write: {e}"))?;
                hasher.update(data);
            }
        }
        if written != len {
            return Err(format!("the body ended after {written} of {len} bytes"));
        }
        file.flush().await.map_err(|e| format!("flush: {e}"))
    }
    .await;
    match result {
        Ok(()) => Ok(hasher),
        Err(why) => {
            let _ = file.set_len(first).await;
            Err(why)
        }
    }
}

/// Records an accepted chunk and builds its answer (201 when it completed the upload,
/// else 206), applying an accept-then-fail/drop fault if one is queued.
fn commit(
    inner: &mut Inner,
    publish_id: &str,
    first: u64,
    len: u64,
    hasher: blake3::Hasher,
) -> Answer {
    let lost = take_fault(inner, |fault| match fault {
        Fault::AcceptThenFail | Fault::AcceptThenDrop => Some(fault.clone()),
        _ => None,
    });
    let polls = inner.options.processing_polls;
    let upload = find_mut(inner, publish_id);
    upload.record.received = first + len;
    upload.hasher = hasher;
    upload.lost_ack = None;
    let total = upload.record.video_size;
    let complete = upload.record.received == total;
    let mode = upload.record.mode;
    if complete {
        upload.record.complete = true;
        upload.record.blake3 = Some(upload.hasher.finalize().to_hex().to_string());
    }
    let range = progress_range(upload.record.received, total);
    if complete {
        let failed = take_fault(inner, |fault| match fault {
            Fault::FailProcessing(reason) => Some(reason.clone()),
            _ => None,
        });
        let slow = take_fault(inner, |fault| match fault {
            Fault::SlowProcessing(extra) => Some(*extra),
            _ => None,
        });
        let upload = find_mut(inner, publish_id);
        upload.processing_left = polls + slow.unwrap_or(0);
        upload.outcome = Some(match (failed, mode) {
            (Some(reason), _) => Outcome::Failed(reason),
            (None, Mode::Direct) => Outcome::Published,
            (None, Mode::Inbox) => Outcome::Inboxed,
        });
    }
    let upload = find_mut(inner, publish_id);
    match lost {
        Some(Fault::AcceptThenFail) => {
            upload.lost_ack = Some((first, first + len - 1));
            let mut answer =
                Answer::error(500, "internal_error", "injected: chunk stored, answer lost");
            answer.injected = true;
            answer
        }
        Some(_) => {
            upload.lost_ack = Some((first, first + len - 1));
            let mut answer = Answer::error(
                200,
                "connection_dropped",
                "injected: chunk stored, connection closed",
            );
            answer.injected = true;
            answer.drop_connection = true;
            answer
        }
        None => {
            let mut answer = Answer::ok(json!({})).range(range);
            answer.status = if complete { 201 } else { 206 };
            answer.empty_body = true;
            answer
        }
    }
}

/// Blocking helpers for tests that talk to the server directly.
pub mod client {
    use super::*;

    /// POSTs `body` to an API `path` with this token and the documented `Content-Type`.
    pub fn call(server: &TikTokServer, path: &str, body: &Value) -> http::Response {
        call_raw(
            &server.url(path),
            Some(&server.token()),
            Some(JSON_CONTENT_TYPE),
            body.to_string().as_bytes(),
        )
    }

    /// POSTs raw bytes with the given token and `Content-Type` (either may be left out).
    pub fn call_raw(
        url: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> http::Response {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = Vec::new();
        if let Some(auth) = &auth {
            headers.push(("Authorization", auth.as_str()));
        }
        if let Some(content_type) = content_type {
            headers.push(("Content-Type", content_type));
        }
        http::request("POST", url, &headers, body).expect("API call")
    }

    /// The JSON body of an answer.
    pub fn json(response: &http::Response) -> Value {
        serde_json::from_slice(&response.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {:?}",
                String::from_utf8_lossy(&response.body)
            )
        })
    }

    /// `error.code` of an answer.
    pub fn code(response: &http::Response) -> String {
        json(response)["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// The `source_info` of a FILE_UPLOAD plan.
    pub fn source_info(video_size: u64, chunk_size: u64, total_chunk_count: u64) -> Value {
        json!({
            "source": "FILE_UPLOAD",
            "video_size": video_size,
            "chunk_size": chunk_size,
            "total_chunk_count": total_chunk_count,
        })
    }

    /// A direct post init body.
    pub fn direct_body(privacy_level: &str, source_info: Value) -> Value {
        json!({
            "post_info": {"title": "upq test", "privacy_level": privacy_level},
            "source_info": source_info,
        })
    }

    /// Inits a direct post and returns (publish_id, upload_url); panics unless it succeeds.
    pub fn init_direct(
        server: &TikTokServer,
        video_size: u64,
        chunk_size: u64,
    ) -> (String, String) {
        let count = video_size / chunk_size;
        let body = direct_body("SELF_ONLY", source_info(video_size, chunk_size, count));
        init_ok(call(server, DIRECT_INIT_PATH, &body))
    }

    /// Inits an inbox upload and returns (publish_id, upload_url); panics unless it succeeds.
    pub fn init_inbox(server: &TikTokServer, video_size: u64, chunk_size: u64) -> (String, String) {
        let count = video_size / chunk_size;
        let body = json!({"source_info": source_info(video_size, chunk_size, count)});
        init_ok(call(server, INBOX_INIT_PATH, &body))
    }

    fn init_ok(response: http::Response) -> (String, String) {
        let value = json(&response);
        assert_eq!(response.status, 200, "init failed: {value}");
        (
            value["data"]["publish_id"]
                .as_str()
                .expect("publish_id")
                .to_string(),
            value["data"]["upload_url"]
                .as_str()
                .expect("upload_url")
                .to_string(),
        )
    }

    /// PUTs `bytes` as the range starting at `first` of a `total`-byte video.
    pub fn put_chunk(
        upload_url: &str,
        content_type: &str,
        first: u64,
        total: u64,
        bytes: &[u8],
    ) -> io::Result<http::Response> {
        let range = format!("bytes {first}-{}/{total}", first + bytes.len() as u64 - 1);
        http::request(
            "PUT",
            upload_url,
            &[("Content-Type", content_type), ("Content-Range", &range)],
            bytes,
        )
    }

    /// Fetches the status of a publish_id; returns the whole answer.
    pub fn fetch_status(server: &TikTokServer, publish_id: &str) -> http::Response {
        call(server, STATUS_PATH, &json!({"publish_id": publish_id}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans() {
        assert_eq!(plan_chunks(1000, 1000, 1).unwrap(), vec![(0, 1000)]);
        let plan = plan_chunks(50_000_123, 10_000_000, 5).unwrap();
        assert_eq!(plan.len(), 5);
        assert_eq!(plan[4], (40_000_000, 10_000_123));
        assert!(
            plan_chunks(1000, 500, 2).is_err(),
            "under 5 MB is one chunk"
        );
        assert!(plan_chunks(12_000_000, 7_000_000, 1).is_err());
        assert!(plan_chunks(64_000_001, 64_000_001, 1).is_err());
        assert!(plan_chunks(64_000_000, 64_000_000, 1).is_ok());
        assert!(plan_chunks(12_000_000, 5_000_000, 3).is_err());
        assert!(plan_chunks(200_000_000, 64_000_000, 3).is_ok());
        // With chunks of at most 64 MB and count = floor(size / chunk), the final chunk
        // stays under 128 MB: the largest it gets.
        assert_eq!(
            plan_chunks(255_999_999, 64_000_000, 3).unwrap()[2],
            (128_000_000, 127_999_999)
        );
        assert!(plan_chunks(MAX_VIDEO_SIZE + 1, 64_000_000, 62).is_err());
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_content_range("bytes 0-9/10"), Some((0, 9, 10)));
        assert_eq!(parse_content_range("bytes 0-9/*"), None);
        assert_eq!(parse_content_range("bytes=0-9/10"), None);
        assert_eq!(parse_content_range("bytes -9/10"), None);
        assert_eq!(progress_range(0, 10), "bytes */10");
        assert_eq!(progress_range(10, 10), "bytes 0-9/10");
    }

    #[test]
    fn json_content_types() {
        assert!(is_json_content_type(Some(
            "application/json; charset=UTF-8"
        )));
        assert!(is_json_content_type(Some(
            "Application/JSON ;charset=utf-8"
        )));
        assert!(!is_json_content_type(Some("application/json")));
        assert!(!is_json_content_type(Some(
            "application/json; charset=latin1"
        )));
        assert!(!is_json_content_type(None));
    }
}
