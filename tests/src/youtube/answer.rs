//! What the server answers and how: dispatch by path and method, the request record and the
//! violation list, Google's error bodies. Touches only the server's state.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::Notify;

use super::*;

/// At most this much of a refused request's body is read (and discarded) before answering.
const MAX_DRAIN: u64 = 256 * 1024 * 1024;

/// The shape of an answer's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Body {
    /// Google's `{"error": {"code", "message", "errors": [..], "status"}}`.
    GoogleError,
    /// `data` itself.
    Json,
    /// No body (a 308, a 204, a redirect, a revoke).
    Empty,
    /// OAuth's `{"error", "error_description"}` from `reason` and `message`.
    OAuthError,
    /// A small HTML page showing `reason` and `message`, as the authorization page does.
    Html,
}

/// What a Google error says beyond its reason, and why it was answered: kept apart and boxed
/// so that answers, which travel in `Result`s, stay small.
#[derive(Debug, Default)]
pub(super) struct Detail {
    /// `errors[0].domain` (empty: "global").
    pub(super) domain: &'static str,
    /// `errors[0].location` and `locationType`.
    pub(super) location: Option<(String, &'static str)>,
    /// Why, for the record only (the client sees `message`).
    pub(super) note: Option<String>,
    /// `errors[0].message` when it is not `message` (Google's short form).
    pub(super) short: Option<&'static str>,
}

/// What the server answers, before it becomes a response.
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) status: u16,
    /// `errors[0].reason`, or the OAuth `error`; "ok" on success.
    pub(super) reason: String,
    pub(super) message: String,
    pub(super) detail: Option<Box<Detail>>,
    pub(super) data: Box<Value>,
    pub(super) body: Body,
    pub(super) headers: Vec<(&'static str, String)>,
    /// Answered with the reason phrase "Resume Incomplete" (a 308).
    pub(super) resume_incomplete: bool,
    pub(super) video_id: Option<Box<str>>,
    pub(super) injected: bool,
    /// A 4xx that is not counted as the client's violation.
    pub(super) excused: bool,
    /// Whether this answer records a violation, when its status does not say.
    pub(super) violation: Option<bool>,
    /// Close the connection instead of answering.
    pub(super) drop_connection: bool,
}

impl Answer {
    /// 200 with `data` as the JSON body.
    pub(super) fn json(data: Value) -> Answer {
        Answer {
            status: 200,
            reason: "ok".to_string(),
            message: String::new(),
            detail: None,
            data: Box::new(data),
            body: Body::Json,
            headers: Vec::new(),
            resume_incomplete: false,
            video_id: None,
            injected: false,
            excused: false,
            violation: None,
            drop_connection: false,
        }
    }

    /// A bodiless answer with this status.
    pub(super) fn empty(status: u16) -> Answer {
        Answer {
            status,
            body: Body::Empty,
            ..Answer::json(json!({}))
        }
    }

    /// A Google API error.
    pub(super) fn error(
        status: u16,
        domain: &'static str,
        reason: &str,
        message: impl Into<String>,
    ) -> Answer {
        let mut answer = Answer {
            status,
            reason: reason.to_string(),
            message: message.into(),
            body: Body::GoogleError,
            ..Answer::json(json!({}))
        };
        answer.detail_mut().domain = domain;
        answer
    }

    /// 400 `badRequest`, the generic refusal of a malformed request.
    pub(super) fn bad_request(message: impl Into<String>) -> Answer {
        Answer::error(400, "global", "badRequest", message)
    }

    /// An OAuth error: 401 for `invalid_client`, 400 for the rest.
    pub(super) fn oauth_error(error: &str, description: impl Into<String>) -> Answer {
        let status = if error == "invalid_client" { 401 } else { 400 };
        Answer {
            body: Body::OAuthError,
            ..Answer::error(status, "global", error, description)
        }
    }

    fn detail_mut(&mut self) -> &mut Detail {
        self.detail.get_or_insert_with(Box::default)
    }

    pub(super) fn at(mut self, location: &str, location_type: &'static str) -> Answer {
        self.detail_mut().location = Some((location.to_string(), location_type));
        self
    }

    /// `errors[0].message`, when Google words it apart from the top `message`.
    pub(super) fn short(mut self, message: &'static str) -> Answer {
        self.detail_mut().short = Some(message);
        self
    }

    pub(super) fn video(mut self, id: &str) -> Answer {
        self.video_id = Some(id.into());
        self
    }

    pub(super) fn note(mut self, note: impl Into<String>) -> Answer {
        self.detail_mut().note = Some(note.into());
        self
    }

    pub(super) fn excused(mut self) -> Answer {
        self.excused = true;
        self
    }

    pub(super) fn header(mut self, name: &'static str, value: String) -> Answer {
        self.headers.push((name, value));
        self
    }

    /// `Range: bytes=0-{held-1}`, left out when nothing is held.
    pub(super) fn range(self, held: u64) -> Answer {
        if held == 0 {
            self
        } else {
            self.header("range", format!("bytes=0-{}", held - 1))
        }
    }

    /// Whether this answer is the client's violation.
    pub(super) fn is_violation(&self) -> bool {
        !self.injected
            && self
                .violation
                .unwrap_or((400..500).contains(&self.status) && !self.excused)
    }
}

pub(super) async fn handle(
    request: Request<Incoming>,
    shared: Arc<Shared>,
    closer: Arc<Notify>,
) -> Response<Full<Bytes>> {
    let at = shared.now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let has_upload_id = request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|pair| pair.starts_with("upload_id=")));
    let (endpoint, answer) = match (path.as_str(), method.as_str()) {
        (UPLOAD_PATH, "PUT") if has_upload_id => upload::put(request, shared.clone()).await,
        (UPLOAD_PATH, "POST") if !has_upload_id => ("start", api::start(request, &shared).await),
        (VIDEOS_PATH, "GET") => ("list", api::list(request, &shared).await),
        (VIDEOS_PATH, "PUT") => ("update", api::update(request, &shared).await),
        (VIDEOS_PATH, "DELETE") => ("delete", api::delete(request, &shared).await),
        (VIDEOS_PATH, "POST") => {
            drain(request.into_body()).await;
            (
                "insert_without_media",
                Answer::error(
                    400,
                    "youtube.video",
                    "mediaBodyRequired",
                    "The request does not include the video content.",
                )
                .note("videos.insert needs the upload endpoint with uploadType=resumable"),
            )
        }
        (AUTH_PATH, _) => ("authorize", oauth::authorize(request, &shared).await),
        (TOKEN_PATH, _) => ("token", oauth::token(request, &shared).await),
        (REVOKE_PATH, _) => ("revoke", oauth::revoke(request, &shared).await),
        (UPLOAD_PATH | VIDEOS_PATH, _) => {
            drain(request.into_body()).await;
            (
                "unknown",
                Answer::error(
                    405,
                    "global",
                    "methodNotAllowed",
                    format!("{method} is not allowed on {path}"),
                ),
            )
        }
        _ => {
            drain(request.into_body()).await;
            (
                "unknown",
                Answer::error(404, "global", "notFound", format!("Not Found: {path}")),
            )
        }
    };
    record(&shared, at, method.to_string(), path, endpoint, &answer);
    if answer.drop_connection {
        closer.notify_one();
        std::future::pending::<()>().await;
    }
    respond(answer)
}

fn record(
    shared: &Shared,
    at: Duration,
    method: String,
    path: String,
    endpoint: &'static str,
    answer: &Answer,
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
        reason: answer.reason.clone(),
        message: match answer.detail.as_ref().and_then(|d| d.note.as_ref()) {
            Some(note) if answer.message.is_empty() => note.to_string(),
            Some(note) => format!("{} ({note})", answer.message),
            None => answer.message.clone(),
        },
        at,
        injected: answer.injected,
        video_id: answer.video_id.as_deref().map(str::to_string),
    };
    let mut inner = shared.inner();
    if answer.is_violation() {
        inner.violations.push(format!(
            "{} {}: {} {}: {}{}",
            record.method,
            record.path,
            record.status,
            record.reason,
            record.message,
            record
                .video_id
                .as_ref()
                .map(|id| format!(" [{id}]"))
                .unwrap_or_default()
        ));
    }
    inner.requests.push(record);
}

/// gRPC's name for a status, as Google's error bodies carry it.
fn status_name(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        413 => "OUT_OF_RANGE",
        429 => "RESOURCE_EXHAUSTED",
        500 => "INTERNAL",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "UNKNOWN",
    }
}

fn respond(answer: Answer) -> Response<Full<Bytes>> {
    const JSON: &str = "application/json; charset=UTF-8";
    let (body, content_type) = match answer.body {
        Body::GoogleError => {
            let domain = answer
                .detail
                .as_ref()
                .map(|d| d.domain)
                .filter(|domain| !domain.is_empty())
                .unwrap_or("global");
            let short = answer.detail.as_ref().and_then(|d| d.short);
            let mut detail = json!({
                "message": short.unwrap_or(&answer.message),
                "domain": domain,
                "reason": answer.reason,
            });
            let location = answer.detail.as_ref().and_then(|d| d.location.as_ref());
            if let Some((location, location_type)) = location {
                detail["location"] = json!(location);
                detail["locationType"] = json!(location_type);
            }
            let error = json!({"error": {
                "code": answer.status,
                "message": answer.message,
                "errors": [detail],
                "status": status_name(answer.status),
            }});
            (error.to_string(), Some(JSON))
        }
        Body::Json => (answer.data.to_string(), Some(JSON)),
        Body::Empty => (String::new(), None),
        Body::OAuthError => {
            let error = json!({"error": answer.reason, "error_description": answer.message});
            (error.to_string(), Some(JSON))
        }
        Body::Html => (
            format!(
                "<!DOCTYPE html>\n<html><head><title>Error {}</title></head><body>\
                 <h1>Error {}: {}</h1><p>{}</p></body></html>\n",
                answer.status,
                answer.status,
                escape_html(&answer.reason),
                escape_html(&answer.message)
            ),
            Some("text/html; charset=utf-8"),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(answer.status).expect("a valid status");
    if answer.resume_incomplete {
        response
            .extensions_mut()
            .insert(hyper::ext::ReasonPhrase::from_static(b"Resume Incomplete"));
    }
    let headers = response.headers_mut();
    if let Some(content_type) = content_type {
        headers.insert("content-type", content_type.parse().expect("header"));
    }
    for (name, value) in answer.headers {
        headers.insert(name, value.parse().expect("header"));
    }
    response
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Reads and discards a body, so the client that sent it can read the answer.
pub(super) async fn drain(body: Incoming) {
    crate::serve::drain_body(body, MAX_DRAIN).await
}

/// Reads a small body whole.
pub(super) async fn read_small(body: Incoming) -> Result<Vec<u8>, String> {
    crate::serve::read_body(body, limits::MAX_API_BODY).await
}

/// Removes and returns the first queued fault `pick` accepts.
pub(super) fn take_fault<T>(inner: &mut Inner, pick: impl Fn(&Fault) -> Option<T>) -> Option<T> {
    let index = inner.faults.iter().position(|f| pick(f).is_some())?;
    inner.faults.remove(index).and_then(|f| pick(&f))
}

/// The injected answer for `endpoint`, if one is queued.
pub(super) fn take_respond(shared: &Shared, endpoint: &str) -> Option<Answer> {
    let mut inner = shared.inner();
    take_fault(&mut inner, |fault| match fault {
        Fault::Respond {
            endpoint: e,
            status,
            reason,
            message,
        } if *e == endpoint => {
            let mut answer = Answer::error(*status, "global", reason, message.clone());
            answer.injected = true;
            Some(answer)
        }
        _ => None,
    })
}

pub(super) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"))
}

/// `application/json`, with at most a `charset=UTF-8` parameter, in any case.
pub(super) fn is_json_content_type(value: Option<&str>) -> bool {
    let Some(value) = value else { return false };
    let mut parts = value
        .split(';')
        .map(|part| part.trim().to_ascii_lowercase());
    parts.next().as_deref() == Some("application/json")
        && parts.all(|param| param == "charset=utf-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        assert!(is_json_content_type(Some(
            "application/json; charset=UTF-8"
        )));
        assert!(is_json_content_type(Some("application/json")));
        assert!(!is_json_content_type(Some(
            "application/json; charset=latin1"
        )));
        assert!(!is_json_content_type(Some("text/plain")));
        assert!(!is_json_content_type(None));
    }
}
