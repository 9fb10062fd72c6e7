//! The `youtube` destination: YouTube Data API v3 resumable uploads (`videos.insert` with
//! `uploadType=resumable`), processing followed with `videos.list`, the privacy change with
//! `videos.update`, and `videos.delete` for a canceled upload.
//!
//! The commit point is the privacy change, not the last byte: a job with a review window is
//! uploaded as private and stays deletable until it is released; a job without one is
//! uploaded with its final privacy, so it needs no more than the `youtube.upload` scope.
//! The session URI is kept in the job before the first byte; after a drop, a restart or a
//! pause, a status query (`Content-Range: bytes */TOTAL`) says how much YouTube kept.

pub mod protocol;
pub mod quota;
pub mod resource;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use reqwest::{StatusCode, Url};
use serde_json::{json, Value};

use super::bearer::{self, Bearer, Keys, Wants};
use super::http::{header_str, idle, network_error, redact, retry_after};
use super::{
    BuildError, Chunk, Committed, DestError, Destination, ErrorClass, Processing, UploadInfo,
};
use crate::accounts::{provider, Accounts};
use crate::config::checks::parse_api_base;
use crate::config::YoutubeConfig;
use crate::job::RemoteSession;
use crate::pacer::Pacer;

/// Uploads videos.
pub const SCOPE_UPLOAD: &str = "https://www.googleapis.com/auth/youtube.upload";
/// Manages the channel's videos: the privacy change and the deletion.
pub const SCOPE_MANAGE: &str = "https://www.googleapis.com/auth/youtube";
/// The largest file YouTube takes.
pub const MAX_FILE: u64 = 256 * 1024 * 1024 * 1024;
/// How long a channel's daily upload limit lasts once reached.
const UPLOAD_LIMIT_WAIT: Duration = Duration::from_secs(24 * 3600);

pub struct YoutubeDestination {
    name: String,
    settings: YoutubeConfig,
    api_base: Url,
    client: reqwest::Client,
    auth: Bearer,
    /// The video id YouTube gave each finished session, by session URI.
    videos: Mutex<HashMap<String, String>>,
    /// Processing polls so far, by video id, for the polling backoff.
    polls: Mutex<HashMap<String, u32>>,
}

impl std::fmt::Debug for YoutubeDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("YoutubeDestination")
            .field("name", &self.name)
            .field("api_base", &self.api_base.as_str())
            .finish_non_exhaustive()
    }
}

/// The stored remote session.
struct Session {
    url: Url,
    size: u64,
    /// The privacy it is uploaded with, and the one it is to have once released.
    uploaded_as: String,
    target: String,
    /// The video YouTube made of the finished upload. Kept with the job as soon as it is
    /// known, because a session URI expires (about a week) and a held video outlives it:
    /// the release, the deletion and the review link need only this id.
    video_id: Option<String>,
    /// A digest of the title and description the upload was created with, so the commit
    /// knows whether `upqctl edit` changed them since (a session from before it: unknown).
    words: Option<String>,
}

/// The digest of a video resource's title and description, as `Session::words` keeps it.
fn words_digest(resource: &Value) -> String {
    let mut hasher = blake3::Hasher::new();
    for field in ["title", "description"] {
        let text = resource["snippet"][field].as_str().unwrap_or_default();
        hasher.update(&(text.len() as u64).to_le_bytes());
        hasher.update(text.as_bytes());
    }
    hasher.finalize().to_hex()[..16].to_string()
}

impl Session {
    fn to_remote(&self) -> RemoteSession {
        let mut stored = json!({
            "url": self.url.as_str(),
            "size": self.size,
            "uploaded_as": self.uploaded_as,
            "target": self.target,
        });
        if let Some(id) = &self.video_id {
            stored["video_id"] = json!(id);
        }
        if let Some(words) = &self.words {
            stored["words"] = json!(words);
        }
        RemoteSession(stored)
    }

    fn from_remote(remote: &RemoteSession) -> Result<Session, DestError> {
        let text = |key: &str| remote.0.get(key).and_then(Value::as_str);
        let broken = || {
            DestError::transient(
                "internal",
                "the stored YouTube upload is unreadable; starting a new one",
            )
            .with_class(ErrorClass::SessionGone)
        };
        Ok(Session {
            url: text("url")
                .and_then(|u| Url::parse(u).ok())
                .ok_or_else(broken)?,
            size: remote
                .0
                .get("size")
                .and_then(Value::as_u64)
                .ok_or_else(broken)?,
            uploaded_as: text("uploaded_as").unwrap_or("private").to_string(),
            target: text("target").unwrap_or("private").to_string(),
            video_id: text("video_id").map(str::to_string),
            words: text("words").map(str::to_string),
        })
    }
}

/// What an answer about the upload session says.
enum SessionAnswer {
    /// 308: this many bytes are kept.
    Incomplete(u64),
    /// 200/201: the upload is done and the video has this id.
    Done(String),
}

impl YoutubeDestination {
    pub fn new(
        name: String,
        settings: YoutubeConfig,
        accounts: &Accounts,
    ) -> Result<YoutubeDestination, BuildError> {
        let api_base = parse_api_base(&name, &settings.api_base)?;
        let auth = Bearer::from_keys(
            &name,
            Keys {
                client_id: settings.client_id.as_ref(),
                client_secret: &settings.client_secret,
                redirect_uri: &settings.redirect_uri,
                auth_url: &settings.auth_url,
                token_url: &settings.token_url,
                revoke_url: &settings.revoke_url,
                access_token: &settings.access_token,
                access_token_file: &settings.access_token_file,
            },
            // Both: the review window's privacy change and the cancel's deletion need the second.
            Wants {
                provider: provider::GOOGLE,
                scopes: vec![SCOPE_UPLOAD.to_string(), SCOPE_MANAGE.to_string()],
                needed: vec![SCOPE_UPLOAD.to_string()],
                identity: None,
            },
            accounts,
        )?;
        let client = super::http::client(&name, settings.connect_timeout, settings.io_timeout)?;
        Ok(YoutubeDestination {
            name,
            settings,
            api_base,
            client,
            auth,
            videos: Mutex::default(),
            polls: Mutex::default(),
        })
    }

    fn url(&self, path: &str) -> Result<Url, DestError> {
        self.api_base.join(path).map_err(|e| {
            DestError::permanent(
                "config",
                format!("destination '{}': bad api_base: {e}", self.name),
            )
        })
    }

    /// The privacy a job is to end with.
    fn target_privacy(&self, upload: &UploadInfo) -> Result<&'static str, DestError> {
        let given = upload
            .metadata
            .privacy
            .as_deref()
            .or(self.settings.privacy.as_deref());
        match given {
            None => Ok("private"),
            Some(text) => resource::privacy(text).map_err(|e| self.refuse("privacy", e)),
        }
    }

    /// `videos.update` of one whole part of video `id`.
    async fn update_part(
        &self,
        id: &str,
        part: &str,
        value: Value,
        what: &str,
    ) -> Result<(), DestError> {
        let mut update = self.url("/youtube/v3/videos")?;
        update.query_pairs_mut().append_pair("part", part);
        let body = json!({ "id": id, part: value });
        let response = self
            .call(reqwest::Method::PUT, update, Some(&body), what)
            .await?;
        if !response.status().is_success() {
            return Err(self.api_error(what, response).await);
        }
        Ok(())
    }

    fn refuse(&self, kind: &'static str, message: String) -> DestError {
        DestError::permanent(kind, format!("destination '{}': {message}", self.name))
    }

    /// A review window uploads as private, so the video can be watched, scheduled or deleted
    /// before it is released.
    fn uploaded_as(upload: &UploadInfo, target: &'static str) -> &'static str {
        if upload.hold || upload.publish_at.is_some() {
            "private"
        } else {
            target
        }
    }

    fn video_resource(&self, upload: &UploadInfo) -> Result<resource::VideoResource, DestError> {
        let target = self.target_privacy(upload)?;
        let uploaded_as = Self::uploaded_as(upload, target);
        // YouTube's own schedule, so the video goes public on time even with this computer off.
        let publish_at = upload
            .publish_at
            .filter(|_| !upload.hold && target == "public")
            .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        resource::build(
            &upload.metadata,
            &upload.name,
            uploaded_as,
            publish_at.as_deref(),
        )
        .map_err(|e| self.refuse("invalid", e))
    }

    /// An error answer from the API, read into what it means for the job.
    async fn api_error(&self, what: &str, response: reqwest::Response) -> DestError {
        let status = response.status();
        let after = retry_after(response.headers());
        let body: Value = response
            .text()
            .await
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        let (reason, message) = protocol::error_reason(&body);
        let name = &self.name;
        let detail = format!("{} {reason}: {message}", status.as_u16());
        match (status.as_u16(), reason.as_str()) {
            (403, "quotaExceeded") | (403, "dailyLimitExceeded") => {
                let reset = quota::next_pacific_midnight(Utc::now());
                DestError {
                    class: ErrorClass::Quota {
                        until: reset,
                    },
                    kind: "quota",
                    message: format!(
                        "destination '{name}': the YouTube API quota of this project is used up for today ({detail} on {what}); waiting until it resets at {} (midnight Pacific Time)",
                        reset.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ),
                }
            }
            (400, "uploadLimitExceeded") => {
                let until =
                    Utc::now() + chrono::Duration::from_std(UPLOAD_LIMIT_WAIT).unwrap_or_default();
                DestError {
                    class: ErrorClass::Quota { until },
                    kind: "quota",
                    message: format!(
                        "destination '{name}': this channel reached YouTube's daily upload limit ({detail}); waiting a day"
                    ),
                }
            }
            (403, "forbidden" | "insufficientPermissions") => DestError::permanent(
                "auth",
                if message.to_ascii_lowercase().contains("private") {
                    format!(
                        "destination '{name}': YouTube lets API projects it has not audited upload private videos only ({detail} on {what}); use --privacy private, or have the project audited"
                    )
                } else {
                    format!(
                        "destination '{name}': the sign-in lacks a permission ({detail} on {what}): sign in again with `upqctl login {name}` and grant managing your YouTube videos ({SCOPE_MANAGE})"
                    )
                },
            ),
            (401, _) => DestError::transient(
                "token",
                format!(
                    "destination '{name}': YouTube refused the access token ({detail} on {what})"
                ),
            ),
            (429, _) | (500..=599, _) => DestError {
                class: ErrorClass::Transient { retry_after: after },
                kind: "http",
                message: format!("YouTube answered {detail} to {what}"),
            },
            _ => DestError::permanent(
                "http",
                format!("destination '{name}': YouTube refused {what} ({detail})"),
            ),
        }
    }

    /// One JSON API call with the token, refreshed and made again once on a 401.
    async fn call(
        &self,
        method: reqwest::Method,
        url: Url,
        body: Option<&Value>,
        what: &str,
    ) -> Result<reqwest::Response, DestError> {
        let mut token = self.auth.token(&self.name).await?;
        let mut refreshed = false;
        loop {
            let mut request = self.client.request(method.clone(), url.clone()).header(
                reqwest::header::AUTHORIZATION,
                bearer::header(&self.name, &token)?,
            );
            if let Some(body) = body {
                let text = body.to_string();
                request = request
                    .header(CONTENT_TYPE, "application/json; charset=UTF-8")
                    .header(CONTENT_LENGTH, text.len())
                    .body(text);
            }
            let response = request
                .send()
                .await
                .map_err(|e| network_error(what, &url, &e))?;
            if response.status() == StatusCode::UNAUTHORIZED && !refreshed {
                if let Some(fresh) = self.auth.after_refusal(&token).await? {
                    token = fresh;
                    refreshed = true;
                    continue;
                }
            }
            return Ok(response);
        }
    }

    /// Reads a session answer: 308 with its Range, or 200/201 with the video.
    async fn session_answer(
        &self,
        what: &str,
        session: &Session,
        response: reqwest::Response,
    ) -> Result<SessionAnswer, DestError> {
        match response.status().as_u16() {
            308 => {
                let range = header_str(response.headers(), "range");
                protocol::stored_from_range(range)
                    .filter(|&stored| stored <= session.size)
                    .map(SessionAnswer::Incomplete)
                    .ok_or_else(|| {
                        DestError::transient(
                            "protocol",
                            format!("YouTube answered {what} with an unreadable Range {range:?}"),
                        )
                        .with_class(ErrorClass::SessionGone)
                    })
            }
            200 | 201 => {
                let text = response
                    .text()
                    .await
                    .map_err(|e| network_error(what, &session.url, &e))?;
                let id = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string))
                    .ok_or_else(|| {
                        DestError::transient(
                            "protocol",
                            format!("YouTube finished the upload ({what}) without a video id"),
                        )
                    })?;
                if let Ok(mut videos) = self.videos.lock() {
                    videos.insert(session.url.to_string(), id.clone());
                }
                Ok(SessionAnswer::Done(id))
            }
            404 | 410 => Err(DestError::transient(
                super::KIND_EXPIRED,
                format!(
                    "YouTube no longer knows this upload ({} on {what}): starting again as a new upload",
                    response.status().as_u16()
                ),
            )
            .with_class(ErrorClass::SessionGone)),
            _ => Err(self.api_error(what, response).await),
        }
    }

    /// Asks the session how much it holds (`Content-Range: bytes */TOTAL`).
    async fn status_query(&self, session: &Session) -> Result<SessionAnswer, DestError> {
        let what = "the upload's status query";
        let token = self.auth.token(&self.name).await?;
        let response = self
            .client
            .put(session.url.clone())
            .header(
                reqwest::header::AUTHORIZATION,
                bearer::header(&self.name, &token)?,
            )
            .header(CONTENT_LENGTH, 0)
            .header(CONTENT_RANGE, format!("bytes */{}", session.size))
            .send()
            .await
            .map_err(|e| network_error(what, &session.url, &e))?;
        self.session_answer(what, session, response).await
    }

    /// The video id of a finished session: remembered, or asked for.
    async fn video_id(&self, session: &Session) -> Result<String, DestError> {
        let known = session.video_id.clone().or_else(|| {
            self.videos
                .lock()
                .ok()
                .and_then(|videos| videos.get(session.url.as_str()).cloned())
        });
        if let Some(id) = known {
            return Ok(id);
        }
        match self.status_query(session).await? {
            SessionAnswer::Done(id) => Ok(id),
            SessionAnswer::Incomplete(stored) => Err(DestError::transient(
                "protocol",
                format!(
                    "YouTube holds {stored} of {} bytes of a finished upload",
                    session.size
                ),
            )
            .with_class(ErrorClass::OffsetMismatch)),
        }
    }

    fn poll_delay(&self, id: &str) -> Duration {
        let polls = self
            .polls
            .lock()
            .map(|mut map| {
                let count = map.entry(id.to_string()).or_insert(0);
                *count += 1;
                *count
            })
            .unwrap_or(1);
        (Duration::from_secs(2) * 2u32.saturating_pow(polls.saturating_sub(1).min(5)))
            .min(Duration::from_secs(60))
    }

    fn watch_url(id: &str) -> String {
        format!("https://www.youtube.com/watch?v={id}")
    }
}

#[async_trait]
impl Destination for YoutubeDestination {
    fn kind(&self) -> &'static str {
        "youtube"
    }

    fn chunk_size(&self, size: u64) -> u64 {
        protocol::chunk_len(self.settings.chunk_size, size, 0).max(1)
    }

    fn chunk_len(&self, _session: &RemoteSession, size: u64, offset: u64) -> u64 {
        protocol::chunk_len(self.settings.chunk_size, size, offset)
    }

    /// The privacy change is the commit point.
    fn commits_with_final_chunk(&self) -> bool {
        false
    }

    /// The title and caption reach the video at the commit (`videos.update`); the privacy
    /// too while the video waits, private, for its review window.
    fn editable_after_start(&self, upload: &UploadInfo) -> &'static [&'static str] {
        if upload.hold || upload.publish_at.is_some() {
            &["title", "caption", "privacy"]
        } else {
            &["title", "caption"]
        }
    }

    /// A private video is processed like any other: the review window holds once it is.
    fn processes_before_commit(&self) -> bool {
        true
    }

    async fn account_tag(&self) -> Option<String> {
        self.auth.account()?.account_id().await
    }

    async fn preflight(&self, upload: &UploadInfo) -> Result<Vec<String>, DestError> {
        if upload.size > MAX_FILE {
            return Err(self.refuse(
                "too_large",
                format!(
                    "YouTube takes files of at most 256 GB; this one is {} bytes",
                    upload.size
                ),
            ));
        }
        let built = self.video_resource(upload)?;
        let mut warnings = built.warnings;
        if upload.metadata.privacy.is_none() && self.settings.privacy.is_none() {
            warnings.push("no privacy given: the video will be private".to_string());
        }
        if let Some(account) = self.auth.account() {
            if let Some(why) = account.needs_signin().await {
                warnings.push(format!("{why}; the upload waits until then"));
            }
        }
        Ok(warnings)
    }

    async fn open(
        &self,
        upload: &UploadInfo,
        existing: Option<&RemoteSession>,
    ) -> Result<RemoteSession, DestError> {
        if let Some(existing) = existing {
            let session = Session::from_remote(existing)?;
            if session.size != upload.size {
                return Err(DestError::transient(
                    "file_changed",
                    "the file's size differs from the YouTube upload's; starting a new upload",
                )
                .with_class(ErrorClass::SessionGone));
            }
            return Ok(existing.clone());
        }
        let target = self.target_privacy(upload)?;
        let built = self.video_resource(upload)?;
        let mut url = self.url("/upload/youtube/v3/videos")?;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("uploadType", "resumable")
                .append_pair("part", "snippet,status");
            if let Some(notify) = built.notify_subscribers {
                query.append_pair("notifySubscribers", if notify { "true" } else { "false" });
            }
        }
        let what = "the upload's start (videos.insert)";
        let body = built.body.to_string();
        let content_type = super::tus::filetype(&upload.name);
        let mut token = self.auth.token(&self.name).await?;
        let mut refreshed = false;
        let response = loop {
            let response = self
                .client
                .post(url.clone())
                .header(
                    reqwest::header::AUTHORIZATION,
                    bearer::header(&self.name, &token)?,
                )
                .header(CONTENT_TYPE, "application/json; charset=UTF-8")
                .header(CONTENT_LENGTH, body.len())
                .header("X-Upload-Content-Length", upload.size)
                .header("X-Upload-Content-Type", content_type)
                .body(body.clone())
                .send()
                .await
                .map_err(|e| network_error(what, &url, &e))?;
            if response.status() == StatusCode::UNAUTHORIZED && !refreshed {
                if let Some(fresh) = self.auth.after_refusal(&token).await? {
                    token = fresh;
                    refreshed = true;
                    continue;
                }
            }
            break response;
        };
        if !response.status().is_success() {
            return Err(self.api_error(what, response).await);
        }
        let location = header_str(response.headers(), LOCATION.as_str())
            .and_then(|l| url.join(l).ok())
            .ok_or_else(|| {
                DestError::transient(
                    "protocol",
                    format!("YouTube answered {what} without a session URI in Location"),
                )
            })?;
        let session = Session {
            url: location,
            size: upload.size,
            uploaded_as: Self::uploaded_as(upload, target).to_string(),
            target: target.to_string(),
            video_id: None,
            words: Some(words_digest(&built.body)),
        };
        Ok(session.to_remote())
    }

    async fn confirmed_offset(
        &self,
        session: &RemoteSession,
        _upload: &UploadInfo,
        _recorded: u64,
    ) -> Result<u64, DestError> {
        let session = Session::from_remote(session)?;
        if session.video_id.is_some() {
            // Finished: the session URI may have expired since, and is not needed.
            return Ok(session.size);
        }
        match self.status_query(&session).await? {
            SessionAnswer::Incomplete(stored) => Ok(stored),
            SessionAnswer::Done(_) => Ok(session.size),
        }
    }

    async fn settled(&self, remote: &RemoteSession) -> Result<Option<RemoteSession>, DestError> {
        let mut session = Session::from_remote(remote)?;
        if session.video_id.is_some() {
            return Ok(None);
        }
        session.video_id = Some(self.video_id(&session).await?);
        Ok(Some(session.to_remote()))
    }

    fn review_url(&self, remote: &RemoteSession) -> Option<String> {
        let id = Session::from_remote(remote).ok()?.video_id?;
        Some(format!("https://studio.youtube.com/video/{id}/edit"))
    }

    async fn send_chunk(
        &self,
        session: &RemoteSession,
        _upload: &UploadInfo,
        chunk: Chunk,
        pacer: &Pacer,
    ) -> Result<u64, DestError> {
        let session = Session::from_remote(session)?;
        let (first, len) = (chunk.offset, chunk.len);
        let last = first + len - 1;
        let what = format!("PUT of bytes {first}-{last}");
        let token = self.auth.token(&self.name).await?;
        let request = self
            .client
            .put(session.url.clone())
            .header(
                reqwest::header::AUTHORIZATION,
                bearer::header(&self.name, &token)?,
            )
            .header(CONTENT_LENGTH, len)
            .header(
                CONTENT_RANGE,
                format!("bytes {first}-{last}/{}", session.size),
            );
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
        if response.status() == StatusCode::UNAUTHORIZED {
            // The body is spent: refresh now, and the retry sends with the new token.
            self.auth.after_refusal(&token).await?;
            return Err(DestError {
                class: ErrorClass::Transient {
                    retry_after: Some(Duration::ZERO),
                },
                kind: "token",
                message: format!(
                    "YouTube refused the access token on {what}; sending again with a fresh one"
                ),
            });
        }
        match self.session_answer(&what, &session, response).await? {
            SessionAnswer::Incomplete(stored) => Ok(stored),
            SessionAnswer::Done(_) => Ok(session.size),
        }
    }

    async fn commit(
        &self,
        session: &RemoteSession,
        upload: &UploadInfo,
        _content_hash: &str,
    ) -> Result<Committed, DestError> {
        let session = Session::from_remote(session)?;
        let id = self.video_id(&session).await?;
        // The job's words and privacy now: `upqctl edit` may have changed them since the
        // upload started. An update replaces a whole part, so each part is read, changed
        // and sent back whole (fields left out would fall back to their defaults).
        let target = self.target_privacy(upload)?;
        let wanted = self.video_resource(upload)?.body;
        let words_edited = session
            .words
            .as_deref()
            .is_some_and(|sent| sent != words_digest(&wanted));
        let privacy_change = session.uploaded_as != target;
        let parts = match (words_edited, privacy_change) {
            (false, false) => {
                return Ok(Committed {
                    location: Self::watch_url(&id),
                    note: None,
                })
            }
            (true, false) => "snippet",
            (false, true) => "status",
            (true, true) => "snippet,status",
        };
        let mut list = self.url("/youtube/v3/videos")?;
        list.query_pairs_mut()
            .append_pair("part", parts)
            .append_pair("id", &id);
        let what = "reading the video (videos.list)";
        let response = self.call(reqwest::Method::GET, list, None, what).await?;
        if !response.status().is_success() {
            return Err(self.api_error(what, response).await);
        }
        let listed = json_of(response).await;
        if words_edited {
            let mut snippet = listed
                .pointer("/items/0/snippet")
                .cloned()
                .unwrap_or_else(|| json!({}));
            for field in ["title", "description"] {
                snippet[field] = wanted["snippet"][field].clone();
            }
            let what = "the title and description edited since the upload (videos.update)";
            self.update_part(&id, "snippet", snippet, what).await?;
        }
        let mut note = None;
        if privacy_change {
            let mut status = listed
                .pointer("/items/0/status")
                .cloned()
                .unwrap_or_else(|| json!({}));
            let already = status.get("privacyStatus").and_then(Value::as_str) == Some(target);
            note = Some(release_note(target, already, upload.publish_at, Utc::now()));
            if !already {
                if let Some(object) = status.as_object_mut() {
                    object.insert("privacyStatus".into(), json!(target));
                    object.remove("publishAt");
                    for read_only in ["uploadStatus", "failureReason", "rejectionReason"] {
                        object.remove(read_only);
                    }
                }
                let what = "the privacy change (videos.update)";
                self.update_part(&id, "status", status, what).await?;
            }
        }
        Ok(Committed {
            location: Self::watch_url(&id),
            note,
        })
    }

    async fn poll_processing(
        &self,
        session: &RemoteSession,
        _upload: &UploadInfo,
    ) -> Result<Processing, DestError> {
        let session = Session::from_remote(session)?;
        let id = self.video_id(&session).await?;
        let mut url = self.url("/youtube/v3/videos")?;
        url.query_pairs_mut()
            .append_pair("part", "processingDetails,status")
            .append_pair("id", &id);
        let what = "the processing poll (videos.list)";
        let response = self.call(reqwest::Method::GET, url, None, what).await?;
        if !response.status().is_success() {
            let e = self.api_error(what, response).await;
            if e.kind == "auth" && session.uploaded_as == session.target {
                // Signed in with `youtube.upload` alone: the video is up with its final
                // privacy and YouTube processes it, but upq may not look at it.
                tracing::warn!(destination = %self.name, video = %id, "{}", e.message);
                return Ok(Processing::Done {
                    location: Some(Self::watch_url(&id)),
                    needs_publish: false,
                    note: Some(
                        "YouTube's processing was not followed: the sign-in grants uploading only"
                            .to_string(),
                    ),
                });
            }
            if matches!(e.class, ErrorClass::Permanent | ErrorClass::SigninRequired) {
                return Err(e);
            }
            return Ok(Processing::Pending {
                poll_after: self.poll_delay(&id),
                detail: e.message,
                progress: None,
            });
        }
        let listed = json_of(response).await;
        let Some(video) = listed.pointer("/items/0") else {
            return Ok(Processing::Pending {
                poll_after: self.poll_delay(&id),
                detail: "YouTube does not list the video yet".to_string(),
                progress: None,
            });
        };
        let status = video
            .pointer("/status/uploadStatus")
            .and_then(Value::as_str);
        match status {
            Some("processed") => {
                if let Ok(mut polls) = self.polls.lock() {
                    polls.remove(&id);
                }
                Ok(Processing::Done {
                    location: Some(Self::watch_url(&id)),
                    needs_publish: false,
                    note: None,
                })
            }
            Some("failed") => Err(DestError::permanent(
                "processing_failed",
                format!(
                    "YouTube could not process the video: {}",
                    video
                        .pointer("/status/failureReason")
                        .and_then(Value::as_str)
                        .unwrap_or("no reason given")
                ),
            )),
            Some("rejected") => Err(DestError::permanent(
                "rejected",
                format!(
                    "YouTube rejected the video: {}",
                    video
                        .pointer("/status/rejectionReason")
                        .and_then(Value::as_str)
                        .unwrap_or("no reason given")
                ),
            )),
            Some("deleted") => Err(DestError::permanent(
                "deleted",
                "the video was deleted on YouTube".to_string(),
            )),
            _ => {
                let progress = video
                    .pointer("/processingDetails/processingProgress")
                    .and_then(protocol::processing_progress);
                let detail = match progress {
                    Some(p) => format!(
                        "YouTube is processing: {} of {} parts{}",
                        p.parts_processed,
                        p.parts_total,
                        p.time_left_ms
                            .map(|ms| format!(", about {} s left", ms.div_ceil(1000)))
                            .unwrap_or_default()
                    ),
                    None => "YouTube is processing".to_string(),
                };
                Ok(Processing::Pending {
                    poll_after: self.poll_delay(&id),
                    detail,
                    progress,
                })
            }
        }
    }

    /// Deletes the uploaded video when there is one; an unfinished upload leaves no video.
    /// The sign-in, proven by renewing a due access token. Google's read-only calls
    /// (`channels.list`) need a scope beyond uploading, so none is made.
    async fn check(&self) -> Vec<upq_proto::CheckView> {
        vec![self.auth.check(&self.name).await]
    }

    async fn discard(&self, session: &RemoteSession) -> Result<(), DestError> {
        let session = Session::from_remote(session)?;
        let known = match &session.video_id {
            Some(id) => Ok(SessionAnswer::Done(id.clone())),
            None => self.status_query(&session).await,
        };
        let id = match known {
            Ok(SessionAnswer::Done(id)) => id,
            Ok(SessionAnswer::Incomplete(_)) => return Ok(()),
            Err(e) if e.class == ErrorClass::SessionGone => {
                match self
                    .videos
                    .lock()
                    .ok()
                    .and_then(|v| v.get(session.url.as_str()).cloned())
                {
                    Some(id) => id,
                    None => return Ok(()),
                }
            }
            Err(e) => return Err(e),
        };
        let mut url = self.url("/youtube/v3/videos")?;
        url.query_pairs_mut().append_pair("id", &id);
        let what = "deleting the video (videos.delete)";
        let response = self.call(reqwest::Method::DELETE, url, None, what).await?;
        match response.status().as_u16() {
            200 | 204 | 404 => {
                if let Ok(mut videos) = self.videos.lock() {
                    videos.remove(session.url.as_str());
                }
                Ok(())
            }
            _ => Err(self.api_error(what, response).await),
        }
    }
}

/// Who made a held video what it was to be, for the history: YouTube's own `publishAt`
/// (the video was found so at or after that time), or upq's privacy change.
fn release_note(
    target: &str,
    already: bool,
    publish_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> String {
    let at = |at: DateTime<Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    match (already, publish_at) {
        (true, Some(at_time)) if at_time <= now && target == "public" => format!(
            "YouTube made it {target} itself at its publishAt ({}); upq found it so",
            at(at_time)
        ),
        (true, _) => format!("it was {target} on YouTube already"),
        (false, Some(_)) if target == "public" => format!(
            "upq made it {target} at {} (YouTube's publishAt had not acted yet)",
            at(now)
        ),
        (false, _) => format!("upq made it {target} at {}", at(now)),
    }
}

/// A JSON answer's body (`null` when it is not JSON).
async fn json_of(response: reqwest::Response) -> Value {
    let text = response.text().await.unwrap_or_default();
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

#[cfg(test)]
mod release_tests {
    use super::*;

    #[test]
    fn the_release_note_names_who_made_the_video_public() {
        let at = "2026-12-02T18:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let after = at + chrono::Duration::minutes(5);
        let before = at - chrono::Duration::minutes(5);
        let by_youtube = release_note("public", true, Some(at), after);
        assert!(
            by_youtube.starts_with("YouTube made it public itself"),
            "{by_youtube}"
        );
        assert!(by_youtube.contains("2026-12-02T18:00:00Z"));
        assert!(release_note("public", false, Some(at), before).contains("had not acted yet"));
        assert!(release_note("public", false, None, before).starts_with("upq made it public"));
        // publishAt only ever makes a video public: an unlisted one found so was not its doing.
        assert_eq!(
            release_note("unlisted", true, Some(at), after),
            "it was unlisted on YouTube already"
        );
    }
}
