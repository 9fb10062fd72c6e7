//! TikTok's API calls: the token, the per-token limiters, one JSON call with its error answer,
//! and the creator's settings. It knows no upload step; the other modules build on `call`.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::Value;

use super::{TiktokDestination, JSON_UTF8};
use crate::accounts::tokens::Secret;
use crate::config::TiktokMode;
use crate::destinations::http::network_error;
use crate::destinations::ratelimit::WindowLimiter;
use crate::destinations::{DestError, ErrorClass};

/// The scope direct posts need.
pub(super) const SCOPE_PUBLISH: &str = "video.publish";
/// The scope inbox uploads need.
pub(super) const SCOPE_UPLOAD: &str = "video.upload";

/// The creator's settings, from `creator_info/query/`.
#[derive(Debug, Clone, Default)]
pub(super) struct CreatorInfo {
    pub(super) username: String,
    pub(super) privacy_options: Vec<String>,
    pub(super) comment_disabled: bool,
    pub(super) duet_disabled: bool,
    pub(super) stitch_disabled: bool,
    pub(super) max_duration: Option<Duration>,
}

impl CreatorInfo {
    pub(super) fn from_data(data: &Value) -> CreatorInfo {
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

    pub(super) fn who(&self) -> String {
        if self.username.is_empty() {
            "this creator".to_string()
        } else {
            format!("@{}", self.username)
        }
    }
}

/// An error answer from the API: HTTP status and TikTok's `error.code`.
#[derive(Debug)]
pub(super) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) code: String,
    pub(super) message: String,
    pub(super) log_id: String,
}

pub(super) enum CallError {
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
pub(super) enum Endpoint {
    CreatorInfo,
    Init,
    Status,
}

impl TiktokDestination {
    pub(super) async fn token(&self) -> Result<Secret, DestError> {
        self.auth.token(&self.name).await
    }

    pub(super) fn limiter(&self, endpoint: Endpoint) -> &WindowLimiter {
        match endpoint {
            Endpoint::CreatorInfo => &self.creator_info_limit,
            Endpoint::Init => &self.init_limit,
            Endpoint::Status => &self.status_limit,
        }
    }

    /// One API call: rate-limited, authorized, JSON in and out. Returns `data`.
    pub(super) async fn call(
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
        match self.call_with(endpoint, &url, path, body, &token).await {
            Err(CallError::Api(e)) if e.code == "access_token_invalid" => {
                let Some(fresh) = self.auth.after_refusal(&token).await? else {
                    return Err(CallError::Api(e));
                };
                match self.call_with(endpoint, &url, path, body, &fresh).await {
                    // Refused right after a refresh: the next attempt refreshes again, and a
                    // grant that is really gone then says so (invalid_grant).
                    Err(CallError::Api(e)) if e.code == "access_token_invalid" => {
                        Err(CallError::Other(DestError::transient(
                            "token",
                            format!(
                                "destination '{}': TikTok refused a freshly refreshed access token ({} {}: {}); trying again",
                                self.name,
                                e.status.as_u16(),
                                e.code,
                                e.message
                            ),
                        )))
                    }
                    other => other,
                }
            }
            other => other,
        }
    }

    async fn call_with(
        &self,
        endpoint: Endpoint,
        url: &reqwest::Url,
        path: &str,
        body: Option<&Value>,
        token: &Secret,
    ) -> Result<Value, CallError> {
        let limiter = self.limiter(endpoint);
        let permit = limiter.acquire().await;
        let body = body.map(Value::to_string).unwrap_or_default();
        let authorization = crate::destinations::bearer::header(&self.name, token)?;
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
            .map_err(|e| network_error(&what, url, &e))?;
        let status = response.status();
        permit.done();
        let text = response
            .text()
            .await
            .map_err(|e| network_error(&what, url, &e))?;
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
    pub(super) fn api_error(&self, what: &str, error: CallError) -> DestError {
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
        if let Some(account) = self.auth.account() {
            if e.code == "scope_not_authorized" {
                let why = "the sign-in lacks a permission this destination needs";
                return DestError {
                    class: ErrorClass::SigninRequired,
                    kind: "signin_required",
                    message: format!(
                        "destination '{name}': {why} ({detail} on {what}){log}: run `upqctl login {}`",
                        account.destination()
                    ),
                };
            }
        }
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

    pub(super) fn token_origin(&self) -> String {
        self.auth.origin()
    }

    /// The creator's settings: read from TikTok, or the copy read less than half a rate
    /// window ago (adding many files at once would otherwise wait on the 20-per-minute limit).
    pub(super) async fn creator_info(&self) -> Result<CreatorInfo, DestError> {
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
}
