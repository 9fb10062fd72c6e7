//! A direct post's settings and the upload's start: privacy, interactions and text checked
//! against the creator, the media probe, and `video/init`. It sends no chunk and polls nothing.

use reqwest::Url;
use serde_json::{json, Value};

use super::api::{CallError, CreatorInfo, Endpoint};
use super::plan::{self, ChunkPlan};
use super::session::Session;
use super::{TiktokDestination, MAX_TITLE_UTF16};
use crate::config::{Privacy, TiktokMode};
use crate::destinations::{DestError, UploadInfo};
use crate::media;

/// What a job asks of a direct post, after defaults.
#[derive(Debug, Clone)]
pub(super) struct PostSettings {
    pub(super) privacy: Privacy,
    pub(super) privacy_given: bool,
    /// (switch name, allowed, asked for by the job itself)
    pub(super) interactions: [(&'static str, bool, bool); 3],
    pub(super) text: Option<String>,
    pub(super) extra: serde_json::Map<String, Value>,
}

pub(super) fn meta_bool(value: &str, key: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Ok(true),
        "false" | "no" | "0" | "off" => Ok(false),
        other => Err(format!("--meta {key}={other}: expected true or false")),
    }
}

impl TiktokDestination {
    /// Privacy, interactions and text for a direct post, from the job and the config.
    pub(super) fn post_settings(&self, upload: &UploadInfo) -> Result<PostSettings, String> {
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
    pub(super) fn check_against_creator(
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

    pub(super) fn post_info(post: &PostSettings) -> Value {
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

    pub(super) async fn probe(&self, upload: &UploadInfo) -> Result<media::MediaInfo, DestError> {
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

    pub(super) fn refuse(&self, kind: &'static str, problem: impl std::fmt::Display) -> DestError {
        DestError::permanent(kind, format!("destination '{}': {problem}", self.name))
    }

    /// Creates the remote upload: `video/init` (direct) or `inbox/video/init`.
    pub(super) async fn init(&self, upload: &UploadInfo) -> Result<Session, DestError> {
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
        for preferred in [plan::limits::MAX_CHUNK, plan::limits::MIN_CHUNK] {
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
}
