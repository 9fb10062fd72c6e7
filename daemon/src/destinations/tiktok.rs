//! The `tiktok` destination: TikTok's Content Posting API, direct post (`video/init`) or
//! the creator's inbox (`inbox/video/init`), with `FILE_UPLOAD` chunks PUT in order.
//!
//! The final chunk is the commit point: TikTok creates the post only once every chunk is
//! in, so a held job keeps its final chunk back. There is no cancel for file uploads; an
//! abandoned `upload_url` expires after an hour. Every API call goes through a per-token
//! limiter at TikTok's published rates (creator_info 20, init 6, status 30 per minute).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use serde_json::{json, Value};

use super::http::{header_str, idle, network_error, redact, retry_after};
use super::ratelimit::WindowLimiter;
use super::tiktok_plan::{self, ChunkPlan};
use super::{
    BuildError, Chunk, DestError, Destination, ErrorClass, Processing, SettingError,
    SettingProblem, UploadInfo,
};
use crate::config::{Privacy, TiktokConfig, TiktokMode};
use crate::job::RemoteSession;
use crate::media;
use crate::pacer::Pacer;

const JSON_UTF8: &str = "application/json; charset=UTF-8";
/// The longest video the upload endpoints take, when the creator's own limit is unknown.
const UPLOAD_MAX_DURATION: Duration = Duration::from_secs(600);
/// The longest post text TikTok takes, in UTF-16 code units.
const MAX_TITLE_UTF16: usize = 2200;
/// The creator's settings, from `creator_info/query/`.
#[derive(Debug, Clone, Default)]
struct CreatorInfo {
    username: String,
    privacy_options: Vec<String>,
    comment_disabled: bool,
    duet_disabled: bool,
    stitch_disabled: bool,
    max_duration: Option<Duration>,
}

impl CreatorInfo {
    fn from_data(data: &Value) -> CreatorInfo {
        let flag = |key: &str| data.get(key).and_then(Value::as_bool).unwrap_or(false);
        CreatorInfo {
            username: data
                .get("creator_username")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            privacy_options: data
                .get("privacy_level_options")
                .and_then(Value::as_array)
                .map(|options| {
                    options
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            comment_disabled: flag("comment_disabled"),
            duet_disabled: flag("duet_disabled"),
            stitch_disabled: flag("stitch_disabled"),
            max_duration: data
                .get("max_video_post_duration_sec")
                .and_then(Value::as_u64)
                .filter(|&seconds| seconds > 0)
                .map(Duration::from_secs),
        }
    }

    fn who(&self) -> String {
        if self.username.is_empty() {
            "this creator".to_string()
        } else {
            format!("@{}", self.username)
        }
    }
}

/// An error answer from the API: HTTP status and TikTok's `error.code`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: String,
    message: String,
    log_id: String,
}

enum CallError {
    Api(ApiError),
    Other(DestError),
}

impl From<DestError> for CallError {
    fn from(e: DestError) -> CallError {
        CallError::Other(e)
    }
}

/// Which limiter and scope an API call uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    CreatorInfo,
    Init,
    Status,
}

/// The stored remote session.
#[derive(Debug, Clone)]
struct Session {
    publish_id: String,
    url: Url,
    plan: ChunkPlan,
    content_type: String,
    username: String,
    /// Why this upload's chunk plan is not the usual one, for the job's history.
    note: Option<String>,
}

impl Session {
    fn to_remote(&self, mode: TiktokMode, created_at: DateTime<Utc>) -> RemoteSession {
        RemoteSession(json!({
            "publish_id": self.publish_id,
            "url": self.url.as_str(),
            "video_size": self.plan.video_size,
            "chunk_size": self.plan.chunk_size,
            "total_chunk_count": self.plan.total_chunk_count,
            "content_type": self.content_type,
            "mode": match mode { TiktokMode::Direct => "direct", TiktokMode::Inbox => "inbox" },
            "username": self.username,
            "note": self.note,
            "created_at": created_at.to_rfc3339(),
        }))
    }

    fn from_remote(remote: &RemoteSession) -> Result<Session, DestError> {
        let value = &remote.0;
        let text = |key: &str| value.get(key).and_then(Value::as_str);
        let number = |key: &str| value.get(key).and_then(Value::as_u64);
        let broken = || {
            DestError::transient(
                "internal",
                "the stored TikTok upload is unreadable; starting a new one",
            )
            .with_class(ErrorClass::Restart)
        };
        let url = text("url")
            .and_then(|url| Url::parse(url).ok())
            .ok_or_else(broken)?;
        Ok(Session {
            publish_id: text("publish_id").ok_or_else(broken)?.to_string(),
            url,
            plan: ChunkPlan {
                video_size: number("video_size").ok_or_else(broken)?,
                chunk_size: number("chunk_size").ok_or_else(broken)?,
                total_chunk_count: number("total_chunk_count").ok_or_else(broken)?,
            },
            content_type: text("content_type").unwrap_or("video/mp4").to_string(),
            username: text("username").unwrap_or_default().to_string(),
            note: text("note").map(str::to_string),
        })
    }
}

/// Bytes TikTok holds, from `Content-Range: bytes 0-{last}/{total}` (or `bytes */{total}`
/// for none). The last position is inclusive as HTTP defines it; a server counting bytes
/// instead is recognised because every offset must fall on a chunk boundary.
fn received_from_range(value: &str, plan: &ChunkPlan) -> Option<u64> {
    let range = value.trim().strip_prefix("bytes")?.trim();
    let (span, _total) = range.split_once('/')?;
    if span.trim() == "*" {
        return Some(0);
    }
    let (_first, last) = span.split_once('-')?;
    let last: u64 = last.trim().parse().ok()?;
    [last + 1, last]
        .into_iter()
        .find(|&candidate| candidate <= plan.video_size && plan.is_boundary(candidate))
}

/// What a job asks of a direct post, after defaults.
#[derive(Debug, Clone)]
struct PostSettings {
    privacy: Privacy,
    privacy_given: bool,
    /// (switch name, allowed, asked for by the job itself)
    interactions: [(&'static str, bool, bool); 3],
    text: Option<String>,
    extra: serde_json::Map<String, Value>,
}

fn meta_bool(value: &str, key: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Ok(true),
        "false" | "no" | "0" | "off" => Ok(false),
        other => Err(format!("--meta {key}={other}: expected true or false")),
    }
}

pub struct TiktokDestination {
    name: String,
    settings: TiktokConfig,
    api_base: Url,
    client: reqwest::Client,
    creator_info_limit: WindowLimiter,
    init_limit: WindowLimiter,
    status_limit: WindowLimiter,
    /// What TikTok last said it holds, by publish_id (206 and 416 answers).
    received: Mutex<HashMap<String, u64>>,
    /// Status polls so far, by publish_id, for the polling backoff.
    polls: Mutex<HashMap<String, u32>>,
    /// The creator's settings as last read, so a batch of `add`s asks once.
    creator: Mutex<Option<(tokio::time::Instant, CreatorInfo)>>,
}

// The token never appears: Debug names the destination only.
impl std::fmt::Debug for TiktokDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TiktokDestination")
            .field("name", &self.name)
            .field("api_base", &self.api_base.as_str())
            .field("mode", &self.settings.mode)
            .finish_non_exhaustive()
    }
}

/// The API's base URL, which must be http or https.
pub fn parse_api_base(name: &str, api_base: &str) -> Result<Url, SettingError> {
    let key = format!("destinations.{name}.api_base");
    let url = Url::parse(api_base).map_err(|e| SettingError {
        key: key.clone(),
        problem: SettingProblem::NotUrl {
            value: api_base.to_string(),
            reason: e.to_string(),
        },
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(SettingError {
            key,
            problem: SettingProblem::NotHttp {
                value: api_base.to_string(),
            },
        });
    }
    Ok(url)
}

impl TiktokDestination {
    pub fn new(name: String, settings: TiktokConfig) -> Result<TiktokDestination, BuildError> {
        let api_base = parse_api_base(&name, &settings.api_base)?;
        let client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .read_timeout(settings.io_timeout)
            .user_agent(concat!("upq/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| BuildError::Http {
                name: name.clone(),
                source,
            })?;
        let window = settings.rate_window;
        Ok(TiktokDestination {
            name,
            api_base,
            client,
            creator_info_limit: WindowLimiter::new(20, window),
            init_limit: WindowLimiter::new(6, window),
            status_limit: WindowLimiter::new(30, window),
            settings,
            received: Mutex::new(HashMap::new()),
            polls: Mutex::new(HashMap::new()),
            creator: Mutex::new(None),
        })
    }

    fn plan(&self, size: u64) -> Result<ChunkPlan, DestError> {
        ChunkPlan::choose(size, self.settings.chunk_size).map_err(|e| {
            DestError::permanent(
                "too_large",
                format!(
                    "destination '{}': TikTok cannot take this file: {e}",
                    self.name
                ),
            )
        })
    }

    /// The token, read again each time so a refreshed file takes effect at once. A file
    /// that is missing or empty for a moment (a refresher rewriting it) is retried.
    async fn token(&self) -> Result<String, DestError> {
        let token = match (
            &self.settings.access_token,
            &self.settings.access_token_file,
        ) {
            (Some(token), _) => token.trim().to_string(),
            (None, Some(path)) => tokio::fs::read_to_string(path)
                .await
                .map_err(|e| {
                    DestError::transient(
                        "token",
                        format!(
                            "destination '{}': cannot read the access token file {}: {e}",
                            self.name,
                            path.display()
                        ),
                    )
                })?
                .trim()
                .to_string(),
            (None, None) => String::new(),
        };
        if token.is_empty() {
            return Err(DestError::transient(
                "token",
                format!(
                    "destination '{}': the access token in {} is empty",
                    self.name,
                    self.token_origin()
                ),
            ));
        }
        Ok(token)
    }

    fn limiter(&self, endpoint: Endpoint) -> &WindowLimiter {
        match endpoint {
            Endpoint::CreatorInfo => &self.creator_info_limit,
            Endpoint::Init => &self.init_limit,
            Endpoint::Status => &self.status_limit,
        }
    }

    /// One API call: rate-limited, authorized, JSON in and out. Returns `data`.
    async fn call(
        &self,
        endpoint: Endpoint,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CallError> {
        let url = self.api_base.join(path).map_err(|e| {
            DestError::permanent(
                "config",
                format!("destination '{}': bad api_base: {e}", self.name),
            )
        })?;
        let token = self.token().await?;
        let limiter = self.limiter(endpoint);
        let permit = limiter.acquire().await;
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut authorization = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| {
                DestError::permanent(
                    "auth",
                    format!(
                        "destination '{}': the access token is not a valid header value",
                        self.name
                    ),
                )
            })?;
        authorization.set_sensitive(true);
        let what = format!("POST {path}");
        let response = self
            .client
            .post(url.clone())
            .header(AUTHORIZATION, authorization)
            .header(CONTENT_TYPE, JSON_UTF8)
            .header(CONTENT_LENGTH, body.len())
            .body(body)
            .send()
            .await
            .map_err(|e| network_error(&what, &url, &e))?;
        let status = response.status();
        permit.done();
        let text = response
            .text()
            .await
            .map_err(|e| network_error(&what, &url, &e))?;
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        let error = parsed.as_ref().and_then(|v| v.get("error"));
        let field = |key: &str| {
            error
                .and_then(|e| e.get(key))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let code = field("code");
        if status.is_success() && (code == "ok" || (code.is_empty() && error.is_none())) {
            return match parsed.as_ref().and_then(|v| v.get("data")) {
                Some(data) => Ok(data.clone()),
                None => Err(DestError::transient(
                    "protocol",
                    format!("TikTok answered {what} without a data object"),
                )
                .into()),
            };
        }
        if status == StatusCode::TOO_MANY_REQUESTS || code == "rate_limit_exceeded" {
            limiter.saturate();
        }
        Err(CallError::Api(ApiError {
            status,
            code: if code.is_empty() {
                format!("http_{}", status.as_u16())
            } else {
                code
            },
            message: field("message"),
            log_id: field("log_id"),
        }))
    }

    /// The error a failed API call means for the job.
    fn api_error(&self, what: &str, error: CallError) -> DestError {
        let e = match error {
            CallError::Other(e) => return e,
            CallError::Api(e) => e,
        };
        let name = &self.name;
        let detail = if e.message.is_empty() {
            format!("{} {}", e.status.as_u16(), e.code)
        } else {
            format!("{} {}: {}", e.status.as_u16(), e.code, e.message)
        };
        let log = if e.log_id.is_empty() {
            String::new()
        } else {
            format!(" [log_id {}]", e.log_id)
        };
        let permanent = |kind: &'static str, text: String| {
            DestError::permanent(kind, format!("{text} ({detail} on {what}){log}"))
        };
        match e.code.as_str() {
            "access_token_invalid" => permanent(
                "auth",
                format!(
                    "destination '{name}': TikTok refused the access token; it is invalid or expired: put a fresh one in {}",
                    self.token_origin()
                ),
            ),
            "scope_not_authorized" => permanent(
                "auth",
                format!(
                    "destination '{name}': the access token lacks the scope {what} needs ({}): authorize the app again with video.publish and video.upload",
                    match (what, self.settings.mode) {
                        ("creator_info", _) | (_, TiktokMode::Direct) => "video.publish",
                        (_, TiktokMode::Inbox) => "video.upload",
                    }
                ),
            ),
            "rate_limit_exceeded" => DestError {
                class: ErrorClass::Transient {
                    retry_after: Some(self.settings.rate_window),
                },
                kind: "rate_limited",
                message: format!(
                    "destination '{name}': TikTok's rate limit is reached ({detail} on {what}); waiting {}{log}",
                    humantime::format_duration(self.settings.rate_window)
                ),
            },
            "spam_risk_too_many_pending_share" => permanent(
                "too_many_pending_shares",
                format!(
                    "destination '{name}': TikTok allows at most 5 pending inbox shares in any 24 hours; \
                     finish or delete the videos waiting in the TikTok app's inbox, then `upqctl retry` this job"
                ),
            ),
            "spam_risk_too_many_posts" => permanent(
                "spam_risk",
                format!("destination '{name}': this creator reached TikTok's daily post limit; `upqctl retry` this job tomorrow"),
            ),
            "spam_risk_user_banned_from_posting" => permanent(
                "banned",
                format!("destination '{name}': TikTok has banned this creator from posting"),
            ),
            "reached_active_user_cap" => permanent(
                "quota",
                format!("destination '{name}': the app reached TikTok's daily quota of posting users; `upqctl retry` this job later"),
            ),
            "unaudited_client_can_only_post_to_private_accounts" => permanent(
                "unaudited",
                format!(
                    "destination '{name}': this app is not audited by TikTok, so it may only post privately: \
                     use --privacy SELF_ONLY (or privacy = \"SELF_ONLY\" in the config)"
                ),
            ),
            "privacy_level_option_mismatch" => permanent(
                "privacy",
                format!("destination '{name}': the privacy level is not one this creator may use"),
            ),
            "url_ownership_unverified" => permanent(
                "auth",
                format!("destination '{name}': TikTok wants the URL's domain verified"),
            ),
            "invalid_param" => permanent(
                "invalid",
                format!("destination '{name}': TikTok rejected the request as invalid"),
            ),
            _ if e.status == StatusCode::UNAUTHORIZED => permanent(
                "auth",
                format!("destination '{name}': TikTok refused the access token"),
            ),
            _ if e.status == StatusCode::TOO_MANY_REQUESTS => DestError {
                class: ErrorClass::Transient {
                    retry_after: Some(self.settings.rate_window),
                },
                kind: "rate_limited",
                message: format!("destination '{name}': TikTok's rate limit is reached ({detail} on {what}){log}"),
            },
            _ if e.status.is_server_error() => DestError::transient(
                "http",
                format!("TikTok answered {detail} to {what}{log}"),
            ),
            _ => permanent("http", format!("destination '{name}': TikTok refused {what}")),
        }
    }

    fn token_origin(&self) -> String {
        match &self.settings.access_token_file {
            Some(path) => path.display().to_string(),
            None => "the access_token setting".to_string(),
        }
    }

    /// The creator's settings: read from TikTok, or the copy read less than half a rate
    /// window ago (adding many files at once would otherwise wait on the 20-per-minute limit).
    async fn creator_info(&self) -> Result<CreatorInfo, DestError> {
        const PATH: &str = "/v2/post/publish/creator_info/query/";
        let fresh_for = self.settings.rate_window / 2;
        if let Ok(cached) = self.creator.lock() {
            if let Some((at, info)) = cached.as_ref() {
                if at.elapsed() < fresh_for {
                    return Ok(info.clone());
                }
            }
        }
        let info = self
            .call(Endpoint::CreatorInfo, PATH, None)
            .await
            .map(|data| CreatorInfo::from_data(&data))
            .map_err(|e| self.api_error("creator_info", e))?;
        if let Ok(mut cached) = self.creator.lock() {
            *cached = Some((tokio::time::Instant::now(), info.clone()));
        }
        Ok(info)
    }

    /// Privacy, interactions and text for a direct post, from the job and the config.
    fn post_settings(&self, upload: &UploadInfo) -> Result<PostSettings, String> {
        let metadata = &upload.metadata;
        let (privacy, privacy_given) = match (&metadata.privacy, self.settings.privacy) {
            (Some(text), _) => (
                Privacy::parse_or_explain(text).map_err(|e| format!("privacy {e}"))?,
                true,
            ),
            (None, Some(configured)) => (configured, true),
            (None, None) => (Privacy::SelfOnly, false),
        };
        let mut interactions = [
            ("comment", self.settings.allow_comment, false),
            ("duet", self.settings.allow_duet, false),
            ("stitch", self.settings.allow_stitch, false),
        ];
        for (switch, allowed, asked) in interactions.iter_mut() {
            let key = format!("allow_{switch}");
            if let Some(value) = metadata.extra.get(&key) {
                *allowed = meta_bool(value, &key)?;
                *asked = true;
            }
        }
        let text = metadata
            .caption
            .clone()
            .filter(|c| !c.trim().is_empty())
            .or_else(|| metadata.title.clone().filter(|t| !t.trim().is_empty()));
        if let Some(text) = &text {
            let units = text.encode_utf16().count();
            if units > MAX_TITLE_UTF16 {
                return Err(format!(
                    "the post text is {units} UTF-16 units; TikTok takes at most {MAX_TITLE_UTF16}"
                ));
            }
        }
        let mut extra = serde_json::Map::new();
        for key in ["is_aigc", "brand_content_toggle", "brand_organic_toggle"] {
            if let Some(value) = metadata.extra.get(key) {
                extra.insert(key.into(), Value::Bool(meta_bool(value, key)?));
            }
        }
        if let Some(value) = metadata.extra.get("video_cover_timestamp_ms") {
            let ms: u64 = value.trim().parse().map_err(|_| {
                format!("--meta video_cover_timestamp_ms={value}: expected milliseconds")
            })?;
            extra.insert("video_cover_timestamp_ms".into(), json!(ms));
        }
        if extra.get("brand_content_toggle") == Some(&Value::Bool(true))
            && privacy == Privacy::SelfOnly
        {
            return Err(
                "branded content (brand_content_toggle) cannot be private on TikTok: choose another privacy level"
                    .into(),
            );
        }
        Ok(PostSettings {
            privacy,
            privacy_given,
            interactions,
            text,
            extra,
        })
    }

    /// Checks a direct post against the creator's settings: errors refuse, warnings do not.
    fn check_against_creator(
        post: &mut PostSettings,
        creator: &CreatorInfo,
    ) -> Result<Vec<String>, String> {
        let mut warnings = Vec::new();
        if !creator.privacy_options.is_empty()
            && !creator
                .privacy_options
                .iter()
                .any(|o| o == post.privacy.api_name())
        {
            return Err(format!(
                "privacy {} is not available to {} (TikTok offers: {})",
                post.privacy,
                creator.who(),
                creator.privacy_options.join(", ")
            ));
        }
        let disabled = [
            creator.comment_disabled,
            creator.duet_disabled,
            creator.stitch_disabled,
        ];
        for ((switch, allowed, asked), off) in post.interactions.iter_mut().zip(disabled) {
            if *allowed && off {
                if *asked {
                    return Err(format!(
                        "{} has turned {switch}s off in TikTok's settings, so allow_{switch}=true cannot be honoured",
                        creator.who()
                    ));
                }
                *allowed = false;
                warnings.push(format!(
                    "{switch}s stay off: {} has turned them off in TikTok's settings",
                    creator.who()
                ));
            }
        }
        Ok(warnings)
    }

    fn post_info(post: &PostSettings) -> Value {
        let mut info = serde_json::Map::new();
        info.insert("privacy_level".into(), json!(post.privacy.api_name()));
        if let Some(text) = &post.text {
            info.insert("title".into(), json!(text));
        }
        for (switch, allowed, _) in &post.interactions {
            info.insert(format!("disable_{switch}"), json!(!allowed));
        }
        info.extend(post.extra.clone());
        Value::Object(info)
    }

    async fn probe(&self, upload: &UploadInfo) -> Result<media::MediaInfo, DestError> {
        let path = upload.path.clone();
        let probed = tokio::task::spawn_blocking(move || media::probe(&path))
            .await
            .map_err(|e| DestError::transient("internal", format!("video probe failed: {e}")))?;
        probed.map_err(|e| {
            DestError::permanent(
                "video",
                format!(
                    "destination '{}': TikTok cannot take this file: {e}",
                    self.name
                ),
            )
        })
    }

    fn refuse(&self, kind: &'static str, problem: impl std::fmt::Display) -> DestError {
        DestError::permanent(kind, format!("destination '{}': {problem}", self.name))
    }

    /// Creates the remote upload: `video/init` (direct) or `inbox/video/init`.
    async fn init(&self, upload: &UploadInfo) -> Result<Session, DestError> {
        let plan = self.plan(upload.size)?;
        let info = self.probe(upload).await?;
        let content_type = media::content_type(info.container)
            .ok_or_else(|| self.refuse("video", "TikTok takes MP4, MOV or WebM files only"))?;
        // `source_info` goes in per plan tried, below.
        let (path, body, username) = match self.settings.mode {
            TiktokMode::Direct => {
                let mut post = self
                    .post_settings(upload)
                    .map_err(|e| self.refuse("invalid", e))?;
                // The creator's settings may have changed since `add`: check them again.
                let creator = self.creator_info().await?;
                Self::check_against_creator(&mut post, &creator)
                    .map_err(|e| self.refuse("privacy", e))?;
                (
                    "/v2/post/publish/video/init/",
                    json!({ "post_info": Self::post_info(&post) }),
                    creator.username,
                )
            }
            TiktokMode::Inbox => (
                "/v2/post/publish/inbox/video/init/",
                json!({}),
                String::new(),
            ),
        };
        // TikTok has been seen refusing every multi-chunk plan of some sizes ("The chunk
        // size is invalid") while taking others: on that answer, try the other valid plans.
        let mut plans = vec![plan];
        for preferred in [
            tiktok_plan::limits::MAX_CHUNK,
            tiktok_plan::limits::MIN_CHUNK,
        ] {
            if let Ok(other) = ChunkPlan::choose(upload.size, preferred) {
                if !plans.contains(&other) {
                    plans.push(other);
                }
            }
        }
        let mut note = None;
        let mut tried = 0;
        let (data, plan) = loop {
            let plan = plans[tried];
            let mut body = body.clone();
            body["source_info"] = json!({
                "source": "FILE_UPLOAD",
                "video_size": plan.video_size,
                "chunk_size": plan.chunk_size,
                "total_chunk_count": plan.total_chunk_count,
            });
            match self.call(Endpoint::Init, path, Some(&body)).await {
                Ok(data) => break (data, plan),
                Err(CallError::Api(e))
                    if e.code == "invalid_param"
                        && e.message.to_ascii_lowercase().contains("chunk")
                        && tried + 1 < plans.len() =>
                {
                    tracing::warn!(destination = %self.name, job = upload.job_id, chunk_size = plan.chunk_size, message = %e.message, log_id = %e.log_id, "TikTok refused the chunk plan; trying another");
                    note = Some(format!(
                        "TikTok refused chunks of {} bytes (\"{}\"), so chunks of {} bytes",
                        plan.chunk_size,
                        e.message,
                        plans[tried + 1].chunk_size
                    ));
                    tried += 1;
                }
                Err(e) => return Err(self.api_error("video init", e)),
            }
        };
        let publish_id = data
            .get("publish_id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                DestError::transient("protocol", "TikTok's init answer has no publish_id")
            })?;
        let url = data
            .get("upload_url")
            .and_then(Value::as_str)
            .and_then(|url| Url::parse(url).ok())
            .ok_or_else(|| {
                DestError::transient("protocol", "TikTok's init answer has no usable upload_url")
            })?;
        tracing::info!(destination = %self.name, job = upload.job_id, publish_id, chunks = plan.total_chunk_count, "TikTok upload initialized");
        Ok(Session {
            publish_id: publish_id.to_string(),
            url,
            plan,
            content_type: content_type.to_string(),
            username,
            note,
        })
    }

    /// Drops what is kept in memory about an upload that is over.
    fn forget(&self, publish_id: &str) {
        if let Ok(mut map) = self.received.lock() {
            map.remove(publish_id);
        }
        if let Ok(mut map) = self.polls.lock() {
            map.remove(publish_id);
        }
    }

    /// How long before the publish time an upload starts: 5/6 of the upload_url's life.
    fn upload_lead(&self) -> Duration {
        self.settings.upload_url_lifetime * 5 / 6
    }

    fn remember(&self, publish_id: &str, received: u64) {
        if let Ok(mut map) = self.received.lock() {
            map.insert(publish_id.to_string(), received);
        }
    }

    /// How long to wait before the next status poll: from a thirtieth of the rate
    /// window (TikTok's 30 per minute), doubling to half the window.
    fn poll_delay(&self, publish_id: &str) -> Duration {
        let polls = self
            .polls
            .lock()
            .map(|mut map| {
                let count = map.entry(publish_id.to_string()).or_insert(0);
                *count += 1;
                *count
            })
            .unwrap_or(1);
        let window = self.settings.rate_window;
        let first = window / 30;
        (first * 2u32.saturating_pow(polls.saturating_sub(1).min(8))).min(window / 2)
    }

    fn location(&self, session: &Session, data: &Value) -> String {
        let post_id = data
            .get("publicaly_available_post_id")
            .or_else(|| data.get("publicly_available_post_id"))
            .and_then(Value::as_array)
            .and_then(|ids| ids.first())
            .and_then(|id| {
                id.as_u64()
                    .map(|n| n.to_string())
                    .or_else(|| id.as_str().map(str::to_string))
            });
        match post_id {
            Some(id) if !session.username.is_empty() => {
                format!("https://www.tiktok.com/@{}/video/{id}", session.username)
            }
            Some(id) => format!("TikTok post {id}"),
            None => format!(
                "TikTok (publish_id {}; a post that is not public has no public id)",
                session.publish_id
            ),
        }
    }

    fn processing_failed(&self, reason: &str) -> DestError {
        let name = &self.name;
        let (kind, text): (&'static str, String) = match reason {
            "internal" => {
                return DestError::transient(
                    "processing_failed",
                    "TikTok failed to process the video (fail_reason internal); uploading it again",
                )
                .with_class(ErrorClass::Restart)
            }
            "file_format_check_failed" => ("video_rejected", "TikTok rejected the file format: it takes MP4, MOV or WebM with H.264, H.265, VP8 or VP9".into()),
            "duration_check_failed" => ("video_rejected", "TikTok rejected the duration: the video is longer than this creator may post".into()),
            "frame_rate_check_failed" => ("video_rejected", "TikTok rejected the frame rate: it takes 23 to 60 fps".into()),
            "picture_size_check_failed" => ("video_rejected", "TikTok rejected the picture size: each side must be 360 to 4096 pixels".into()),
            "spam_risk_too_many_posts" => ("spam_risk", "this creator reached TikTok's daily post limit; `upqctl retry` this job tomorrow".into()),
            "spam_risk_user_banned_from_posting" => ("banned", "TikTok has banned this creator from posting".into()),
            "spam_risk_text" => ("spam_risk", "TikTok flagged the post's text as spam: change the title or caption and add the video again".into()),
            "spam_risk" => ("spam_risk", "TikTok flagged the post as a spam risk and did not publish it".into()),
            "publish_cancelled" => ("canceled_remotely", "the post was cancelled on TikTok's side".into()),
            "auth_removed" => ("auth", "the creator removed this app's access to their TikTok account: authorize it again".into()),
            "video_pull_failed" => ("processing_failed", "TikTok could not fetch the video".into()),
            other => ("processing_failed", format!("TikTok did not publish the video (fail_reason {other})")),
        };
        DestError::permanent(
            kind,
            format!("destination '{name}': {text} (fail_reason {reason})"),
        )
    }
}

#[async_trait]
impl Destination for TiktokDestination {
    fn kind(&self) -> &'static str {
        "tiktok"
    }

    fn chunk_size(&self, size: u64) -> u64 {
        ChunkPlan::choose(size, self.settings.chunk_size)
            .map(|plan| plan.chunk_size)
            .unwrap_or(self.settings.chunk_size)
    }

    fn chunk_len(&self, session: &RemoteSession, size: u64, offset: u64) -> u64 {
        let plan = Session::from_remote(session)
            .map(|s| s.plan)
            .or_else(|_| self.plan(size));
        match plan {
            Ok(plan) => plan.len_at(offset),
            Err(_) => size.saturating_sub(offset),
        }
    }

    fn commits_with_final_chunk(&self) -> bool {
        true
    }

    /// Early enough to be done by publish time, late enough that the upload_url still
    /// lives then: five sixths of its life before (50 of 60 minutes).
    fn start_not_before(
        &self,
        hold: bool,
        publish_at: Option<DateTime<Utc>>,
    ) -> Option<DateTime<Utc>> {
        let lead = chrono::Duration::from_std(self.upload_lead()).unwrap_or_default();
        publish_at.filter(|_| !hold).map(|at| at - lead)
    }

    fn schedule_warning(
        &self,
        hold: bool,
        publish_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<String> {
        let lifetime = humantime::format_duration(self.settings.upload_url_lifetime);
        if hold && self.settings.mode == TiktokMode::Direct {
            return Some(format!(
                "a hold with no time cannot outlast TikTok's upload_url ({lifetime} from the start of the upload): \
                 publish within that time or the file is uploaded again; mode = \"inbox\" keeps a video in the creator's TikTok drafts for as long as needed"
            ));
        }
        let start = self
            .start_not_before(hold, publish_at)
            .filter(|&s| s > now)?;
        let at = publish_at?;
        Some(format!(
            "the upload starts at {} ({} before publishing), so TikTok's upload_url, valid {lifetime}, is still live at {}",
            start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            humantime::format_duration(self.upload_lead()),
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ))
    }

    fn describe_session(&self, session: &RemoteSession) -> Option<String> {
        Session::from_remote(session).ok().map(|s| match s.note {
            Some(note) => format!("publish_id {}; {note}", s.publish_id),
            None => format!("publish_id {}", s.publish_id),
        })
    }

    async fn preflight(&self, upload: &UploadInfo) -> Result<Vec<String>, DestError> {
        self.plan(upload.size)?;
        let info = self.probe(upload).await?;
        let mut warnings = Vec::new();
        let max_duration = match self.settings.mode {
            TiktokMode::Direct => {
                let mut post = self
                    .post_settings(upload)
                    .map_err(|e| self.refuse("invalid", e))?;
                match self.creator_info().await {
                    Ok(creator) => {
                        warnings.extend(
                            Self::check_against_creator(&mut post, &creator)
                                .map_err(|e| self.refuse("privacy", e))?,
                        );
                        if !post.privacy_given {
                            warnings.push(
                                "no privacy given: the post will be SELF_ONLY (only the creator sees it)"
                                    .to_string(),
                            );
                        }
                        creator.max_duration.or(Some(UPLOAD_MAX_DURATION))
                    }
                    // A token TikTok refuses will not work later either.
                    Err(e) if e.class == ErrorClass::Permanent => return Err(e),
                    Err(e) => {
                        warnings.push(format!(
                            "could not check the creator's TikTok settings now ({}); they are checked again before the upload",
                            e.message
                        ));
                        Some(UPLOAD_MAX_DURATION)
                    }
                }
            }
            TiktokMode::Inbox => {
                if upload.metadata.privacy.is_some() {
                    warnings.push(
                        "inbox uploads get their privacy in the TikTok app; --privacy is not sent"
                            .to_string(),
                    );
                }
                Some(UPLOAD_MAX_DURATION)
            }
        };
        let verdict = media::check(
            &info,
            upload.size,
            &media::VideoLimits::tiktok(max_duration),
        );
        if !verdict.errors.is_empty() {
            return Err(self.refuse(
                "video",
                format!(
                    "TikTok would refuse this video: {}",
                    verdict.errors.join("; ")
                ),
            ));
        }
        warnings.extend(verdict.warnings);
        Ok(warnings)
    }

    async fn open(
        &self,
        upload: &UploadInfo,
        existing: Option<&RemoteSession>,
    ) -> Result<RemoteSession, DestError> {
        if let Some(existing) = existing {
            let session = Session::from_remote(existing)?;
            if session.plan.video_size != upload.size {
                return Err(DestError::transient(
                    "file_changed",
                    "the file's size differs from the TikTok upload's; starting a new upload",
                )
                .with_class(ErrorClass::Restart));
            }
            return Ok(existing.clone());
        }
        let session = self.init(upload).await?;
        Ok(session.to_remote(self.settings.mode, Utc::now()))
    }

    async fn confirmed_offset(
        &self,
        session: &RemoteSession,
        _upload: &UploadInfo,
        recorded: u64,
    ) -> Result<u64, DestError> {
        let session = Session::from_remote(session)?;
        let known = self
            .received
            .lock()
            .ok()
            .and_then(|map| map.get(&session.publish_id).copied());
        // TikTok cannot be asked for its offset: use the last one it told us, else what
        // the job recorded; a wrong guess is corrected by the 416 it earns.
        let mut offset = known.unwrap_or(recorded).min(session.plan.video_size);
        if !session.plan.is_boundary(offset) {
            offset -= offset % session.plan.chunk_size;
        }
        Ok(offset)
    }

    async fn send_chunk(
        &self,
        session: &RemoteSession,
        _upload: &UploadInfo,
        chunk: Chunk,
        pacer: &Pacer,
    ) -> Result<u64, DestError> {
        let session = Session::from_remote(session)?;
        let total = session.plan.video_size;
        let (first, len) = (chunk.offset, chunk.len);
        let last = first + len - 1;
        let what = format!("PUT of bytes {first}-{last}");
        let request = self
            .client
            .put(session.url.clone())
            .header(CONTENT_TYPE, &session.content_type)
            .header(CONTENT_LENGTH, len)
            .header(CONTENT_RANGE, format!("bytes {first}-{last}/{total}"));
        let body = chunk.body.into_stream(pacer.clone());
        let io_timeout = self.settings.io_timeout;
        let response = tokio::select! {
            response = request.body(reqwest::Body::wrap_stream(body)).send() => {
                response.map_err(|e| network_error(&what, &session.url, &e))?
            }
            _ = idle(pacer.progress(), io_timeout) => {
                return Err(DestError::transient(
                    "network",
                    format!("{what} to {}: no byte moved for {io_timeout:?}", redact(&session.url)),
                ));
            }
        };
        let status = response.status();
        let range = header_str(response.headers(), "content-range").map(str::to_string);
        let received = range
            .as_deref()
            .and_then(|r| received_from_range(r, &session.plan));
        match status.as_u16() {
            // TikTok documents 206 (more expected) and 201 (all received); a 200 is read
            // the same way. What the server holds is in its Content-Range.
            200 | 201 | 206 => {
                let expected = first + len;
                let confirmed = received.unwrap_or(expected);
                if status == StatusCode::CREATED && confirmed != total {
                    return Err(DestError::transient(
                        "protocol",
                        format!(
                            "TikTok answered 201 (all received) to {what} of a {total}-byte file, holding {confirmed} bytes"
                        ),
                    )
                    .with_class(ErrorClass::OffsetMismatch));
                }
                // A count other than the chunk's end is caught by the worker, which
                // continues from the count remembered here.
                self.remember(&session.publish_id, confirmed);
                Ok(confirmed)
            }
            416 => match received {
                Some(at) => {
                    self.remember(&session.publish_id, at);
                    Err(DestError::transient(
                        "offset_mismatch",
                        format!("TikTok holds {at} bytes, not {first} (416 on {what}); continuing from byte {at}"),
                    )
                    .with_class(ErrorClass::OffsetMismatch))
                }
                None => Err(DestError::transient(
                    "offset_mismatch",
                    format!(
                        "TikTok refused the range (416 on {what}) without saying what it holds ({}); starting the upload again",
                        range.as_deref().unwrap_or("no Content-Range")
                    ),
                )
                .with_class(ErrorClass::Restart)),
            },
            403 => Err(DestError::transient(
                "expired",
                format!(
                    "TikTok's upload_url expired (403 on {what}; it lives {}): starting again with a new publish_id",
                    humantime::format_duration(self.settings.upload_url_lifetime)
                ),
            )
            .with_class(ErrorClass::Restart)),
            404 => Err(DestError::transient(
                "gone",
                format!("TikTok no longer knows this upload (404 on {what}): starting again with a new publish_id"),
            )
            .with_class(ErrorClass::Restart)),
            429 => Err(DestError {
                class: ErrorClass::Transient {
                    retry_after: retry_after(response.headers()).or(Some(self.settings.rate_window)),
                },
                kind: "rate_limited",
                message: format!("TikTok's rate limit is reached (429 on {what})"),
            }),
            500..=599 => Err(DestError {
                class: ErrorClass::Transient {
                    retry_after: retry_after(response.headers()),
                },
                kind: "http",
                message: format!("TikTok answered {status} to {what}; sending the chunk again"),
            }),
            _ => {
                let text = response.text().await.unwrap_or_default();
                let text: String = text.chars().take(300).collect();
                Err(DestError::permanent(
                    "http",
                    format!("destination '{}': TikTok refused {what} with {status}: {text}", self.name),
                ))
            }
        }
    }

    async fn poll_processing(
        &self,
        session: &RemoteSession,
        _upload: &UploadInfo,
    ) -> Result<Processing, DestError> {
        const PATH: &str = "/v2/post/publish/status/fetch/";
        let session = Session::from_remote(session)?;
        let body = json!({ "publish_id": session.publish_id });
        let data = match self.call(Endpoint::Status, PATH, Some(&body)).await {
            Ok(data) => data,
            Err(e) => {
                let e = self.api_error("status fetch", e);
                if e.class == ErrorClass::Permanent {
                    return Err(e);
                }
                // Not an answer about the video: ask again later.
                return Ok(Processing::Pending {
                    poll_after: self
                        .poll_delay(&session.publish_id)
                        .max(self.settings.rate_window / 2),
                    detail: e.message,
                });
            }
        };
        let status = data.get("status").and_then(Value::as_str).unwrap_or("");
        if matches!(status, "PUBLISH_COMPLETE" | "SEND_TO_USER_INBOX" | "FAILED") {
            self.forget(&session.publish_id);
        }
        match status {
            "PUBLISH_COMPLETE" => Ok(Processing::Done {
                location: Some(self.location(&session, &data)),
                needs_publish: false,
            }),
            "SEND_TO_USER_INBOX" => Ok(Processing::Done {
                location: Some(format!(
                    "the creator's TikTok inbox (publish_id {}): open TikTok to finish the post",
                    session.publish_id
                )),
                needs_publish: false,
            }),
            "FAILED" => {
                let reason = data
                    .get("fail_reason")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown");
                Err(self.processing_failed(reason))
            }
            other => Ok(Processing::Pending {
                poll_after: self.poll_delay(&session.publish_id),
                detail: format!("TikTok status {other}"),
            }),
        }
    }

    /// TikTok has no cancel for file uploads: the unfinished upload_url expires by itself,
    /// and nothing was posted because the final chunk was never sent.
    async fn discard(&self, session: &RemoteSession) -> Result<(), DestError> {
        if let Ok(session) = Session::from_remote(session) {
            self.forget(&session.publish_id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_chunk_absorbs_the_remainder() {
        let plan = ChunkPlan::with_chunk_size(50_000_123, 10_000_000).unwrap();
        let lens: Vec<u64> = [0, 10_000_000, 20_000_000, 30_000_000, 40_000_000]
            .iter()
            .map(|&offset| plan.len_at(offset))
            .collect();
        assert_eq!(
            lens,
            [10_000_000, 10_000_000, 10_000_000, 10_000_000, 10_000_123]
        );
        let walked: Vec<(u64, u64)> = plan.chunks().collect();
        let mut offset = 0;
        for (start, len) in walked {
            assert_eq!(start, offset);
            assert_eq!(plan.len_at(offset), len);
            offset += len;
        }
    }

    #[test]
    fn content_range_read_either_way() {
        let plan = ChunkPlan::with_chunk_size(50_000_123, 10_000_000).unwrap();
        // HTTP's inclusive last byte.
        assert_eq!(
            received_from_range("bytes 0-19999999/50000123", &plan),
            Some(20_000_000)
        );
        // A count of bytes.
        assert_eq!(
            received_from_range("bytes 0-20000000/50000123", &plan),
            Some(20_000_000)
        );
        assert_eq!(received_from_range("bytes */50000123", &plan), Some(0));
        assert_eq!(
            received_from_range("bytes 0-50000122/50000123", &plan),
            Some(50_000_123)
        );
        assert_eq!(received_from_range("bytes 0-12345/50000123", &plan), None);
        assert_eq!(received_from_range("garbage", &plan), None);
    }
}
