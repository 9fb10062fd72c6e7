//! The upload in flight: the stored session, what TikTok says it holds, status poll pacing,
//! and what a finished or failed post means. It makes no API call itself.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Url;
use serde_json::{json, Value};

use super::plan::ChunkPlan;
use super::TiktokDestination;
use crate::config::TiktokMode;
use crate::destinations::{DestError, ErrorClass};
use crate::job::RemoteSession;

/// The stored remote session.
#[derive(Debug, Clone)]
pub(super) struct Session {
    pub(super) publish_id: String,
    pub(super) url: Url,
    pub(super) plan: ChunkPlan,
    pub(super) content_type: String,
    pub(super) username: String,
    /// Why this upload's chunk plan is not the usual one, for the job's history.
    pub(super) note: Option<String>,
}

impl Session {
    pub(super) fn to_remote(&self, mode: TiktokMode, created_at: DateTime<Utc>) -> RemoteSession {
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

    pub(super) fn from_remote(remote: &RemoteSession) -> Result<Session, DestError> {
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
pub(super) fn received_from_range(value: &str, plan: &ChunkPlan) -> Option<u64> {
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

impl TiktokDestination {
    /// Drops what is kept in memory about an upload that is over.
    pub(super) fn forget(&self, publish_id: &str) {
        if let Ok(mut map) = self.received.lock() {
            map.remove(publish_id);
        }
        if let Ok(mut map) = self.polls.lock() {
            map.remove(publish_id);
        }
    }

    /// How long before the publish time an upload starts: 5/6 of the upload_url's life.
    pub(super) fn upload_lead(&self) -> Duration {
        self.settings.upload_url_lifetime * 5 / 6
    }

    pub(super) fn remember(&self, publish_id: &str, received: u64) {
        if let Ok(mut map) = self.received.lock() {
            map.insert(publish_id.to_string(), received);
        }
    }

    /// How long to wait before the next status poll: from a thirtieth of the rate
    /// window (TikTok's 30 per minute), doubling to half the window.
    pub(super) fn poll_delay(&self, publish_id: &str) -> Duration {
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

    pub(super) fn location(&self, session: &Session, data: &Value) -> String {
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

    pub(super) fn processing_failed(&self, reason: &str) -> DestError {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn final_chunk_absorbs_the_remainder() {
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
    pub(super) fn content_range_read_either_way() {
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
