//! The `tiktok` destination: TikTok's Content Posting API, direct post (`video/init`) or
//! the creator's inbox (`inbox/video/init`), with `FILE_UPLOAD` chunks PUT in order.
//!
//! The final chunk is the commit point: TikTok creates the post only once every chunk is
//! in, so a held job keeps its final chunk back. There is no cancel for file uploads; an
//! abandoned `upload_url` expires after an hour. Every API call goes through a per-token
//! limiter at TikTok's published rates (creator_info 20, init 6, status 30 per minute).

mod api;
use api::{CreatorInfo, Endpoint};
use session::{received_from_range, Session};
pub mod plan;
mod post;
mod session;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use serde_json::{json, Value};

use super::bearer::{Bearer, Keys, Wants};
use super::http::{header_str, idle, network_error, redact, retry_after};
use super::ratelimit::WindowLimiter;
use super::{BuildError, Chunk, DestError, Destination, ErrorClass, Processing, UploadInfo};
use crate::accounts::{provider, Account, Accounts};
use crate::config::checks::parse_api_base;
use crate::config::{TiktokConfig, TiktokMode};
use crate::job::RemoteSession;
use crate::media;
use crate::pacer::Pacer;
use plan::ChunkPlan;

pub(super) const JSON_UTF8: &str = "application/json; charset=UTF-8";
/// The longest video the upload endpoints take, when the creator's own limit is unknown.
pub(super) const UPLOAD_MAX_DURATION: Duration = Duration::from_secs(600);
/// The longest post text TikTok takes, in UTF-16 code units.
pub(super) const MAX_TITLE_UTF16: usize = 2200;

pub struct TiktokDestination {
    name: String,
    auth: Bearer,
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

impl TiktokDestination {
    pub fn new(
        name: String,
        settings: TiktokConfig,
        accounts: &Accounts,
    ) -> Result<TiktokDestination, BuildError> {
        let api_base = parse_api_base(&name, &settings.api_base)?;
        let auth = Bearer::from_keys(
            &name,
            Keys {
                client_id: settings.client_key.as_ref(),
                client_secret: &settings.client_secret,
                redirect_uri: &settings.redirect_uri,
                auth_url: &settings.auth_url,
                token_url: &settings.token_url,
                revoke_url: &settings.revoke_url,
                access_token: &settings.access_token,
                access_token_file: &settings.access_token_file,
            },
            Self::wants(&settings, &api_base),
            accounts,
        )?;
        let client = super::http::client(&name, settings.connect_timeout, settings.io_timeout)?;
        let window = settings.rate_window;
        Ok(TiktokDestination {
            name,
            auth,
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

    /// What a TikTok sign-in asks for: who signed in, and the scope of the mode.
    fn wants(settings: &TiktokConfig, api_base: &Url) -> Wants {
        let provider = provider::TIKTOK;
        let needed = match settings.mode {
            TiktokMode::Direct => api::SCOPE_PUBLISH,
            TiktokMode::Inbox => api::SCOPE_UPLOAD,
        };
        Wants {
            provider,
            scopes: provider
                .identity_scope
                .into_iter()
                .chain([needed])
                .map(str::to_string)
                .collect(),
            needed: vec![needed.to_string()],
            identity: api_base
                .join("/v2/user/info/?fields=open_id,display_name")
                .ok()
                .map(|url| (url, "/data/user/display_name")),
        }
    }

    /// Refuses to start a post for an account other than the one the job was queued for:
    /// the job waits for that account's sign-in instead.
    async fn check_account(&self, upload: &UploadInfo) -> Result<(), DestError> {
        let (Some(account), Some(queued)) = (
            self.account(),
            upload.metadata.extra.get(super::ACCOUNT_KEY),
        ) else {
            return Ok(());
        };
        match account.account_id().await {
            Some(current) if current != *queued => Err(DestError {
                class: ErrorClass::SigninRequired,
                kind: "signin_required",
                message: format!(
                    "destination '{}' is signed in to another TikTok account (open_id {current}) than the one this job was queued for (open_id {queued}); \
                     nothing was posted: sign in to that account with `upqctl login {}`, or cancel the job and add the file again to post it to the account signed in now",
                    self.name,
                    account.destination()
                ),
            }),
            _ => Ok(()),
        }
    }

    /// The account this destination signs in with, if it does.
    pub fn account(&self) -> Option<&Arc<Account>> {
        self.auth.account()
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

    fn upload_lifetime(&self) -> Option<Duration> {
        Some(self.settings.upload_url_lifetime)
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

    async fn account_tag(&self) -> Option<String> {
        self.account()?.account_id().await
    }

    async fn preflight(&self, upload: &UploadInfo) -> Result<Vec<String>, DestError> {
        self.plan(upload.size)?;
        let info = self.probe(upload).await?;
        let mut warnings = Vec::new();
        // Queued all the same: the job waits for the sign-in, then goes on by itself.
        let signin = match self.auth.account() {
            Some(account) => account.needs_signin().await,
            None => None,
        };
        if let Some(why) = &signin {
            warnings.push(format!("{why}; the upload waits until then"));
        }
        let max_duration = match self.settings.mode {
            TiktokMode::Direct => {
                let mut post = self
                    .post_settings(upload)
                    .map_err(|e| self.refuse("invalid", e))?;
                let creator = match signin {
                    Some(_) => Err(DestError::transient("signin_required", "not signed in")),
                    None => self.creator_info().await,
                };
                match creator {
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
                    // Said above, or just now by the refresh: checked again before the upload.
                    Err(e) if e.kind == "signin_required" => {
                        if signin.is_none() {
                            warnings.push(format!("{}; the upload waits until then", e.message));
                        }
                        Some(UPLOAD_MAX_DURATION)
                    }
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
        self.check_account(upload).await?;
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
                super::KIND_EXPIRED,
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
                // A person must act: the job says so instead of polling quietly.
                if matches!(e.class, ErrorClass::Permanent | ErrorClass::SigninRequired) {
                    return Err(e);
                }
                // Not an answer about the video: ask again later.
                return Ok(Processing::Pending {
                    progress: None,
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
                note: None,
            }),
            "SEND_TO_USER_INBOX" => Ok(Processing::Done {
                location: Some(format!(
                    "the creator's TikTok inbox (publish_id {}): open TikTok to finish the post",
                    session.publish_id
                )),
                needs_publish: false,
                note: None,
            }),
            "FAILED" => {
                let reason = data
                    .get("fail_reason")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown");
                Err(self.processing_failed(reason))
            }
            other => Ok(Processing::Pending {
                progress: None,
                poll_after: self.poll_delay(&session.publish_id),
                detail: format!("TikTok status {other}"),
            }),
        }
    }

    /// TikTok has no cancel for file uploads: the unfinished upload_url expires by itself,
    /// and nothing was posted because the final chunk was never sent.
    /// The sign-in, then in direct mode TikTok's read-only `creator_info/query/`, which
    /// proves the API takes the token and says whom a post would go to.
    async fn check(&self) -> Vec<upq_proto::CheckView> {
        use upq_proto::{CheckStatus, CheckView};
        let account = self.auth.check(&self.name).await;
        if account.status == CheckStatus::Problem || self.settings.mode != TiktokMode::Direct {
            return vec![account];
        }
        let place = match self.creator_info().await {
            Ok(info) => CheckView::ok(
                "destination",
                format!(
                    "TikTok answers at {}: posts go to @{}, privacy {}",
                    self.api_base,
                    info.username,
                    info.privacy_options.join(", ")
                ),
            ),
            Err(e) if e.class == ErrorClass::SigninRequired => CheckView::problem(
                "account",
                e.message,
                format!("sign in: `upqctl login {}`", self.name),
            ),
            Err(e) => CheckView::problem(
                "destination",
                e.message,
                format!(
                    "check the network, and `api_base` of [destinations.{}] if it is set",
                    self.name
                ),
            ),
        };
        vec![account, place]
    }

    async fn discard(&self, session: &RemoteSession) -> Result<(), DestError> {
        if let Ok(session) = Session::from_remote(session) {
            self.forget(&session.publish_id);
        }
        Ok(())
    }
}
