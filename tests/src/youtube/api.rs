//! The Data API calls: `videos.insert` (the resumable session's start), `videos.list`,
//! `videos.update`, `videos.delete`, each behind the checks of [`super::access`]; the video
//! resource they answer with. Touches only the server's state.

use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::Request;
use serde_json::{json, Map, Value};

use super::access::{insufficient_scope, Charge};
use super::answer::{
    drain, header, is_json_content_type, read_small, take_fault, take_respond, Answer,
};
use super::metadata::{self, Current};
use super::*;
use crate::form::Params;

/// Scopes that may call `videos.insert`.
const INSERT_SCOPES: [&str; 3] = [SCOPE_UPLOAD, SCOPE_YOUTUBE, SCOPE_FORCE_SSL];
/// Scopes that may read the owner's videos with `videos.list`.
const LIST_SCOPES: [&str; 3] = [SCOPE_YOUTUBE, SCOPE_FORCE_SSL, SCOPE_READONLY];
/// Scopes that may call `videos.update` and `videos.delete`.
const WRITE_SCOPES: [&str; 2] = [SCOPE_YOUTUBE, SCOPE_FORCE_SSL];

/// Query parameters every Google API takes.
const SYSTEM_PARAMS: [&str; 5] = ["alt", "fields", "prettyPrint", "quotaUser", "key"];
const START_PARAMS: [&str; 5] = [
    "uploadType",
    "part",
    "notifySubscribers",
    "onBehalfOfContentOwner",
    "onBehalfOfContentOwnerChannel",
];
const LIST_PARAMS: [&str; 12] = [
    "part",
    "id",
    "chart",
    "myRating",
    "maxResults",
    "pageToken",
    "hl",
    "maxHeight",
    "maxWidth",
    "regionCode",
    "videoCategoryId",
    "onBehalfOfContentOwner",
];
const UPDATE_PARAMS: [&str; 2] = ["part", "onBehalfOfContentOwner"];
const DELETE_PARAMS: [&str; 2] = ["id", "onBehalfOfContentOwner"];

/// The channel every video belongs to.
const CHANNEL_ID: &str = "UCupqTestChannel0000000";
const CHANNEL_TITLE: &str = "upq test channel";

/// A request read whole: its head, its body, its query.
struct Call {
    parts: Parts,
    body: Vec<u8>,
    params: Params,
}

/// The common front of every API call: an injected answer, the body, the query.
async fn front(
    request: Request<Incoming>,
    shared: &Shared,
    endpoint: &str,
) -> Result<Call, Answer> {
    if let Some(answer) = take_respond(shared, endpoint) {
        drain(request.into_body()).await;
        return Err(answer);
    }
    let (parts, body) = request.into_parts();
    let body = read_small(body).await.map_err(Answer::bad_request)?;
    let params = Params::parse(parts.uri.query().unwrap_or(""))
        .map_err(|why| Answer::bad_request(format!("Invalid query: {why}")))?;
    Ok(Call {
        parts,
        body,
        params,
    })
}

/// Authentication, scope, quota, then `work`; charges what passed, or the price of a refusal.
fn guarded(
    shared: &Shared,
    call: &Call,
    scopes: &[&str],
    charge: Charge,
    work: impl FnOnce(&mut Inner, Duration) -> Result<Answer, Answer>,
) -> Answer {
    let now = shared.now();
    let mut inner = shared.settled();
    let granted = match inner.bearer(header(&call.parts.headers, "authorization"), now) {
        Ok(granted) => granted,
        Err(answer) => return answer,
    };
    if !scopes
        .iter()
        .any(|scope| granted.iter().any(|g| g == scope))
    {
        return insufficient_scope(scopes);
    }
    if let Err(answer) = inner.quota_room(charge) {
        return answer;
    }
    match work(&mut inner, now) {
        Ok(answer) => {
            inner.charge(charge);
            answer
        }
        Err(answer) => {
            inner.quota.units_used += limits::COST_INVALID;
            answer
        }
    }
}

/// Every query parameter is one `allowed` or a system parameter.
fn known_params(params: &Params, allowed: &[&str]) -> Result<(), Answer> {
    match params
        .names()
        .find(|name| !allowed.contains(name) && !SYSTEM_PARAMS.contains(name))
    {
        Some(name) => Err(Answer::error(
            400,
            "youtube.parameter",
            "unexpectedParameter",
            format!("The request specifies an unexpected parameter: {name}"),
        )
        .at(name, "parameter")),
        None => Ok(()),
    }
}

fn json_body(call: &Call) -> Result<(), Answer> {
    let content_type = header(&call.parts.headers, "content-type");
    if is_json_content_type(content_type) {
        Ok(())
    } else {
        Err(Answer::bad_request(format!(
            "The metadata must be sent as application/json, not {:?}",
            content_type.unwrap_or("(no Content-Type)")
        )))
    }
}

pub(super) async fn start(request: Request<Incoming>, shared: &Shared) -> Answer {
    let call = match front(request, shared, "start").await {
        Ok(call) => call,
        Err(answer) => return answer,
    };
    guarded(
        shared,
        &call,
        &INSERT_SCOPES,
        Charge::Insert,
        |inner, now| inner.start(shared, &call, now),
    )
}

pub(super) async fn list(request: Request<Incoming>, shared: &Shared) -> Answer {
    let call = match front(request, shared, "list").await {
        Ok(call) => call,
        Err(answer) => return answer,
    };
    let charge = Charge::Units(limits::COST_LIST);
    guarded(shared, &call, &LIST_SCOPES, charge, |inner, _| {
        inner.list(shared, &call)
    })
}

pub(super) async fn update(request: Request<Incoming>, shared: &Shared) -> Answer {
    let call = match front(request, shared, "update").await {
        Ok(call) => call,
        Err(answer) => return answer,
    };
    let charge = Charge::Units(limits::COST_UPDATE);
    guarded(shared, &call, &WRITE_SCOPES, charge, |inner, now| {
        inner.update(shared, &call, now)
    })
}

pub(super) async fn delete(request: Request<Incoming>, shared: &Shared) -> Answer {
    let call = match front(request, shared, "delete").await {
        Ok(call) => call,
        Err(answer) => return answer,
    };
    let charge = Charge::Units(limits::COST_DELETE);
    guarded(shared, &call, &WRITE_SCOPES, charge, |inner, _| {
        inner.delete(&call)
    })
}

/// Whether an `X-Upload-Content-Type` is one the upload endpoint takes.
pub(super) fn is_video_type(value: &str) -> bool {
    let value = value.trim().to_ascii_lowercase();
    value == "application/octet-stream"
        || value
            .strip_prefix("video/")
            .is_some_and(|subtype| !subtype.is_empty() && !subtype.contains(['/', ' ']))
}

impl Inner {
    fn start(&mut self, shared: &Shared, call: &Call, now: Duration) -> Result<Answer, Answer> {
        known_params(&call.params, &START_PARAMS)?;
        match call.params.get("uploadType") {
            Some("resumable") => {}
            other => {
                return Err(Answer::bad_request(format!(
                    "uploadType must be resumable here, not {:?}",
                    other.unwrap_or("(none)")
                ))
                .at("uploadType", "parameter"))
            }
        }
        let parts = metadata::parse_parts(call.params.get("part"))?;
        let headers = &call.parts.headers;
        let size = match header(headers, "x-upload-content-length") {
            None => {
                return Err(Answer::bad_request(
                    "X-Upload-Content-Length is required: the size of the video",
                ))
            }
            Some(text) => text.trim().parse::<u64>().map_err(|_| {
                Answer::bad_request(format!("X-Upload-Content-Length {text:?} is not a number"))
            })?,
        };
        if size == 0 {
            return Err(Answer::error(
                400,
                "youtube.video",
                "mediaBodyRequired",
                "The request does not include the video content.",
            )
            .note("X-Upload-Content-Length is 0"));
        }
        if size > limits::MAX_VIDEO_SIZE {
            return Err(Answer::error(
                413,
                "global",
                "uploadTooLarge",
                format!("Media larger than {} bytes", limits::MAX_VIDEO_SIZE),
            ));
        }
        let content_type = match header(headers, "x-upload-content-type") {
            Some(value) if is_video_type(value) => value.trim().to_string(),
            other => {
                return Err(Answer::bad_request(format!(
                    "Media type '{}' is not supported. Valid media types: [video/*, \
                     application/octet-stream]",
                    other.unwrap_or("")
                ))
                .note("X-Upload-Content-Type is required"))
            }
        };
        json_body(call)?;
        let resource = metadata::resource(&call.body)?;
        let snippet = if parts.iter().any(|p| p == "snippet") {
            metadata::snippet(resource.get("snippet"), false)?
        } else {
            return Err(Answer::error(
                400,
                "youtube.video",
                "invalidTitle",
                "The request metadata specifies an invalid or empty video title.",
            )
            .note("part does not name snippet, so the video has no title"));
        };
        let status_value = resource
            .get("status")
            .filter(|_| parts.iter().any(|p| p == "status"));
        let (mut status, _) = metadata::status(status_value, None)?;
        if self.options.unverified_project {
            status["privacyStatus"] = json!("private");
        }

        let day = Duration::from_secs(24 * 3600);
        while self.starts.front().is_some_and(|&t| t + day <= now) {
            self.starts.pop_front();
        }
        if self.starts.len() >= self.options.upload_limit as usize {
            let told_recently = self.limit_told.is_some_and(|t| now < t + day);
            self.limit_told = Some(now);
            let mut answer = Answer::error(
                400,
                "youtube.video",
                "uploadLimitExceeded",
                "The user has exceeded the number of videos they may upload.",
            )
            .note(format!(
                "{} uploads in the last 24 hours, the limit is {}",
                self.starts.len(),
                self.options.upload_limit
            ));
            answer.excused = !told_recently;
            return Err(answer);
        }
        self.starts.push_back(now);

        self.next_id += 1;
        let id = mint("video", self.next_id, 9)[..11].to_string();
        let upload_id = mint("upload", self.next_id, 48);
        // On the host the client asked, as Google's upload servers answer: a proxy in front
        // of this server stays in the path of the chunks too.
        let host = header(&call.parts.headers, "host")
            .map(str::to_string)
            .unwrap_or_else(|| shared.addr.to_string());
        let session_uri = format!(
            "http://{host}{UPLOAD_PATH}?uploadType=resumable&upload_id={upload_id}&part={}",
            parts.join(",")
        );
        status["uploadStatus"] = json!("uploading");
        self.sessions.push(Session {
            record: VideoRecord {
                id: id.clone(),
                session_uri: session_uri.clone(),
                snippet,
                status,
                received: 0,
                size,
                content_type,
                blake3: blake3::Hasher::new().finalize().to_hex().to_string(),
                path: shared.dir.join(format!("{id}.video")),
                upload_status: "uploading".to_string(),
                deleted: false,
                privacy_changes: Vec::new(),
                published_by_publish_at: false,
                chunks: Vec::new(),
                created: now,
                expired: false,
            },
            upload_id,
            parts,
            hasher: blake3::Hasher::new(),
            busy: Arc::new(tokio::sync::Mutex::new(())),
            expired_by_fault: false,
            expiry_told: false,
            complete: false,
            processing_left: 0,
            outcome: Outcome::Processed,
            ever_public: false,
        });
        Ok(Answer::empty(200)
            .header("location", session_uri)
            .video(&id))
    }

    fn list(&mut self, shared: &Shared, call: &Call) -> Result<Answer, Answer> {
        known_params(&call.params, &LIST_PARAMS)?;
        let parts = metadata::parse_parts(call.params.get("part"))?;
        let filters: Vec<&str> = ["chart", "id", "myRating"]
            .into_iter()
            .filter(|name| call.params.get(name).is_some())
            .collect();
        match filters.len() {
            0 => {
                return Err(Answer::error(
                    400,
                    "youtube.parameter",
                    "missingRequiredParameter",
                    "No filter selected. Expected one of: chart, id, myRating",
                ))
            }
            1 => {}
            _ => {
                return Err(Answer::error(
                    400,
                    "youtube.parameter",
                    "incompatibleParameters",
                    format!(
                        "Incompatible parameters specified in the request: {}",
                        filters.join(", ")
                    ),
                ))
            }
        }
        // Charts and ratings hold none of the channel's own uploads here.
        let ids: Vec<&str> = call
            .params
            .get("id")
            .map(|ids| {
                ids.split(',')
                    .map(str::trim)
                    .filter(|id| !id.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if ids.len() > limits::MAX_LIST_IDS {
            return Err(Answer::bad_request(format!(
                "At most {} ids may be listed at once, not {}",
                limits::MAX_LIST_IDS,
                ids.len()
            ))
            .at("id", "parameter"));
        }
        let polls = self.options.processing_polls;
        let mut items = Vec::new();
        for id in &ids {
            let Some(session) = self
                .sessions
                .iter_mut()
                .find(|s| s.record.id == *id && s.complete_and_present())
            else {
                continue;
            };
            let processing = poll(session, polls);
            let mut item = resource_json(shared, session, &parts);
            if parts.iter().any(|p| p == "processingDetails") {
                item["processingDetails"] = processing;
            }
            items.push(item);
        }
        let answer = Answer::json(json!({
            "kind": "youtube#videoListResponse",
            "etag": etag(&json!(items)),
            "items": items,
            "pageInfo": {"totalResults": items.len(), "resultsPerPage": items.len()},
        }));
        Ok(match ids.as_slice() {
            [one] => answer.video(one),
            _ => answer,
        })
    }

    fn update(&mut self, shared: &Shared, call: &Call, now: Duration) -> Result<Answer, Answer> {
        known_params(&call.params, &UPDATE_PARAMS)?;
        let parts = metadata::parse_parts(call.params.get("part"))?;
        json_body(call)?;
        let resource = metadata::resource(&call.body)?;
        let Some(id) = resource.get("id").and_then(Value::as_str) else {
            return Err(
                Answer::error(400, "global", "required", "Required: id").at("body.id", "other")
            );
        };
        let unverified = self.options.unverified_project;
        let session = self
            .sessions
            .iter_mut()
            .find(|s| s.record.id == id && s.complete_and_present())
            .ok_or_else(|| {
                Answer::error(
                    404,
                    "youtube.video",
                    "videoNotFound",
                    "The video that you are trying to update cannot be found. Check the value \
                     of the id field in the request body to ensure that it is correct.",
                )
                .video(id)
            })?;
        let snippet = if parts.iter().any(|p| p == "snippet") {
            Some(metadata::snippet(resource.get("snippet"), true).map_err(|a| a.video(id))?)
        } else {
            None
        };
        let status = if parts.iter().any(|p| p == "status") {
            let current = Current {
                status: &session.record.status,
                ever_public: session.ever_public,
            };
            let (mut status, _) =
                metadata::status(resource.get("status"), Some(current)).map_err(|a| a.video(id))?;
            if unverified {
                status["privacyStatus"] = json!("private");
            }
            Some(status)
        } else {
            None
        };
        if let Some(snippet) = snippet {
            session.record.snippet = snippet;
        }
        if let Some(mut status) = status {
            for key in ["uploadStatus", "failureReason", "rejectionReason"] {
                if let Some(kept) = session.record.status.get(key) {
                    status[key] = kept.clone();
                }
            }
            let privacy = status["privacyStatus"].as_str().unwrap_or("").to_string();
            if session.record.status["privacyStatus"] != privacy {
                session.record.privacy_changes.push((now, privacy.clone()));
            }
            session.ever_public |= privacy == "public";
            session.record.status = status;
        }
        let id = id.to_string();
        self.settle(shared, now);
        let session = self
            .sessions
            .iter()
            .find(|s| s.record.id == id)
            .expect("sessions are never removed");
        Ok(Answer::json(resource_json(shared, session, &parts)).video(&id))
    }

    fn delete(&mut self, call: &Call) -> Result<Answer, Answer> {
        known_params(&call.params, &DELETE_PARAMS)?;
        let Some(id) = call.params.get("id") else {
            return Err(Answer::error(
                400,
                "youtube.parameter",
                "missingRequiredParameter",
                "No filter selected. Expected one of: id",
            )
            .at("id", "parameter"));
        };
        let session = self
            .sessions
            .iter_mut()
            .find(|s| s.record.id == id && s.complete_and_present())
            .ok_or_else(|| {
                Answer::error(
                    404,
                    "youtube.video",
                    "videoNotFound",
                    "The video that you are trying to delete cannot be found. Check the value \
                     of the id parameter in the request to ensure that it is correct.",
                )
                .video(id)
            })?;
        session.record.deleted = true;
        session.record.upload_status = "deleted".to_string();
        session.record.status["uploadStatus"] = json!("deleted");
        Ok(Answer::empty(204).video(id))
    }
}

/// The outcome of a completed upload, decided by the faults queued when its last byte came.
pub(super) fn outcome(inner: &mut Inner) -> Outcome {
    take_fault(inner, |fault| match fault {
        Fault::FailProcessing(reason) => Some(Outcome::Failed(reason.clone())),
        Fault::RejectProcessing(reason) => Some(Outcome::Rejected(reason.clone())),
        _ => None,
    })
    .unwrap_or(Outcome::Processed)
}

/// One `videos.list` look at a completed upload: its `processingDetails`, ending processing
/// once the polls are spent.
fn poll(session: &mut Session, polls: u32) -> Value {
    if session.processing_left > 0 {
        let total = u64::from(polls.max(1));
        let served = total - u64::from(session.processing_left);
        session.processing_left -= 1;
        let parts_total = 1000u64;
        return json!({
            "processingStatus": "processing",
            "processingProgress": {
                "partsTotal": parts_total.to_string(),
                "partsProcessed": (parts_total * served / total).to_string(),
                "timeLeftMs": (u64::from(session.processing_left + 1) * 5000).to_string(),
            },
        });
    }
    let status = &mut session.record.status;
    match &session.outcome {
        Outcome::Processed => {
            session.record.upload_status = "processed".to_string();
            status["uploadStatus"] = json!("processed");
            json!({
                "processingStatus": "succeeded",
                "fileDetailsAvailability": "available",
                "processingIssuesAvailability": "available",
                "tagSuggestionsAvailability": "available",
                "editorSuggestionsAvailability": "available",
                "thumbnailsAvailability": "available",
            })
        }
        Outcome::Failed(reason) => {
            session.record.upload_status = "failed".to_string();
            status["uploadStatus"] = json!("failed");
            status["failureReason"] = json!(reason);
            json!({"processingStatus": "failed", "processingFailureReason": "other"})
        }
        Outcome::Rejected(reason) => {
            session.record.upload_status = "rejected".to_string();
            status["uploadStatus"] = json!("rejected");
            status["rejectionReason"] = json!(reason);
            json!({"processingStatus": "terminated"})
        }
    }
}

/// A short tag of a value, shaped like Google's etags.
fn etag(value: &Value) -> String {
    blake3::hash(value.to_string().as_bytes()).to_hex()[..27].to_string()
}

/// The video resource with the parts asked for (of those this server keeps).
pub(super) fn resource_json(shared: &Shared, session: &Session, parts: &[String]) -> Value {
    let record = &session.record;
    let mut video = Map::new();
    video.insert("kind".into(), json!("youtube#video"));
    video.insert("id".into(), json!(record.id));
    if parts.iter().any(|p| p == "snippet") {
        let mut snippet = record.snippet.clone();
        snippet["publishedAt"] = json!(metadata::format_instant(shared.utc(record.created)));
        snippet["channelId"] = json!(CHANNEL_ID);
        snippet["channelTitle"] = json!(CHANNEL_TITLE);
        snippet["thumbnails"] = json!({"default": {
            "url": format!("https://i.ytimg.com/vi/{}/default.jpg", record.id),
            "width": 120,
            "height": 90,
        }});
        snippet["liveBroadcastContent"] = json!("none");
        snippet["localized"] = json!({
            "title": record.snippet["title"],
            "description": record.snippet["description"],
        });
        video.insert("snippet".into(), snippet);
    }
    if parts.iter().any(|p| p == "status") {
        video.insert("status".into(), record.status.clone());
    }
    let tag = etag(&Value::Object(video.clone()));
    video.insert("etag".into(), json!(tag));
    Value::Object(video)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_types() {
        for ok in [
            "video/*",
            "video/mp4",
            "VIDEO/webm",
            "application/octet-stream",
        ] {
            assert!(is_video_type(ok), "{ok}");
        }
        for bad in ["video/", "image/png", "text/plain", "videos/mp4", ""] {
            assert!(!is_video_type(bad), "{bad}");
        }
    }
}
