//! What the server answers and how: dispatch by path, the request record and violation
//! list, the response bodies. Touches only the server's state.

use super::*;

/// The shape of an answer's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::tiktok) enum Body {
    /// The API's `{"data": .., "error": {"code", "message", "log_id"}}`.
    Envelope,
    /// No body (a PUT success, a redirect, a revoke).
    Empty,
    /// `data` itself, as the OAuth token endpoint answers.
    Json,
    /// OAuth's `{"error", "error_description", "log_id"}` from `code` and `message`.
    OAuthError,
    /// A small HTML page showing `code` and `message`, as the authorization page does.
    Html,
}

/// What the server answers, before it becomes a response.
pub(in crate::tiktok) struct Answer {
    pub(in crate::tiktok) status: u16,
    pub(in crate::tiktok) code: String,
    pub(in crate::tiktok) message: String,
    /// Boxed: answers travel in `Result`s and should stay small.
    pub(in crate::tiktok) data: Box<Value>,
    pub(in crate::tiktok) body: Body,
    /// Further headers (`Content-Range`, `Location`, `Cache-Control`).
    pub(in crate::tiktok) headers: Vec<(&'static str, String)>,
    /// Boxed strings here and in `note` keep answers small.
    pub(in crate::tiktok) publish_id: Option<Box<str>>,
    pub(in crate::tiktok) injected: bool,
    /// A 4xx that is not counted as the client's violation.
    pub(in crate::tiktok) excused: bool,
    /// Whether this answer records a violation, when its status does not say (OAuth
    /// errors can be answered with 200).
    pub(in crate::tiktok) violation: Option<bool>,
    /// Close the connection instead of answering.
    pub(in crate::tiktok) drop_connection: bool,
    /// Why, for the record only (the client sees `message`).
    pub(in crate::tiktok) note: Option<Box<str>>,
}

impl Answer {
    pub(in crate::tiktok) fn ok(data: Value) -> Answer {
        Answer {
            status: 200,
            code: "ok".to_string(),
            message: String::new(),
            data: Box::new(data),
            body: Body::Envelope,
            headers: Vec::new(),
            publish_id: None,
            injected: false,
            excused: false,
            violation: None,
            drop_connection: false,
            note: None,
        }
    }

    pub(in crate::tiktok) fn error(status: u16, code: &str, message: impl Into<String>) -> Answer {
        Answer {
            status,
            code: code.to_string(),
            message: message.into(),
            ..Answer::ok(json!({}))
        }
    }

    pub(in crate::tiktok) fn invalid(message: impl Into<String>) -> Answer {
        Answer::error(400, "invalid_param", message)
    }

    pub(in crate::tiktok) fn publish_id(mut self, publish_id: &str) -> Answer {
        self.publish_id = Some(publish_id.into());
        self
    }

    pub(in crate::tiktok) fn range(self, range: String) -> Answer {
        self.header("content-range", range)
    }

    /// An OAuth error: 401 for `invalid_client`, 400 for the rest.
    pub(in crate::tiktok) fn oauth_error(error: &str, description: impl Into<String>) -> Answer {
        let status = if error == "invalid_client" { 401 } else { 400 };
        Answer {
            body: Body::OAuthError,
            ..Answer::error(status, error, description)
        }
    }

    /// Not counted as the client's violation.
    pub(in crate::tiktok) fn excused(mut self) -> Answer {
        self.excused = true;
        self
    }

    pub(in crate::tiktok) fn header(mut self, name: &'static str, value: String) -> Answer {
        self.headers.push((name, value));
        self
    }

    /// Whether this answer is the client's violation.
    pub(in crate::tiktok) fn is_violation(&self) -> bool {
        !self.injected
            && self
                .violation
                .unwrap_or((400..500).contains(&self.status) && !self.excused)
    }
}

pub(in crate::tiktok) async fn handle(
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
            api::api(request, &shared, Api::CreatorInfo).await,
        ),
        DIRECT_INIT_PATH => ("init", api::api(request, &shared, Api::DirectInit).await),
        INBOX_INIT_PATH => ("init", api::api(request, &shared, Api::InboxInit).await),
        STATUS_PATH => ("status", api::api(request, &shared, Api::Status).await),
        UPLOAD_PATH => ("put", upload::put(request, &shared).await),
        AUTHORIZE_PATH => ("authorize", oauth::authorize(request, &shared).await),
        TOKEN_PATH => ("token", oauth::token(request, &shared).await),
        REVOKE_PATH => ("revoke", oauth::revoke(request, &shared).await),
        USER_INFO_PATH => ("user_info", oauth::user_info(request, &shared).await),
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
        message: match &answer.note {
            Some(note) => format!("{} ({note})", answer.message),
            None => answer.message.clone(),
        },
        log_id: log_id.to_string(),
        at,
        injected: answer.injected,
        publish_id: answer.publish_id.as_deref().map(str::to_string),
    };
    let mut inner = shared.inner();
    if answer.is_violation() {
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
    if !answer.injected && answer.status == 429 {
        inner.rate_limited += 1;
    }
    inner.requests.push(record);
}

fn respond(answer: Answer, log_id: &str) -> Response<Full<Bytes>> {
    const JSON: &str = "application/json; charset=UTF-8";
    let (body, content_type) = match answer.body {
        Body::Envelope => {
            let envelope = json!({
                "data": answer.data,
                "error": {"code": answer.code, "message": answer.message, "log_id": log_id},
            });
            (envelope.to_string(), Some(JSON))
        }
        Body::Empty => (String::new(), None),
        Body::Json => (answer.data.to_string(), Some(JSON)),
        Body::OAuthError => {
            let error = json!({
                "error": answer.code,
                "error_description": answer.message,
                "log_id": log_id,
            });
            (error.to_string(), Some(JSON))
        }
        Body::Html => (
            format!(
                "<!DOCTYPE html>\n<html><head><title>TikTok</title></head><body>\
                 <h1>{}</h1><p>{}</p><p>log_id: {log_id}</p></body></html>\n",
                escape_html(&answer.code),
                escape_html(&answer.message)
            ),
            Some("text/html; charset=utf-8"),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(answer.status).expect("a valid status");
    let headers = response.headers_mut();
    if let Some(content_type) = content_type {
        headers.insert("content-type", content_type.parse().expect("header"));
    }
    headers.insert("x-tt-logid", log_id.parse().expect("header"));
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

/// Reads and discards a body (at most [`MAX_DRAIN`] bytes), so the client that sent it can
/// read the answer.
pub(in crate::tiktok) async fn drain(body: Incoming) {
    crate::serve::drain_body(body, MAX_DRAIN).await
}

/// Reads a small body whole.
pub(in crate::tiktok) async fn read_small(body: Incoming) -> Result<Vec<u8>, String> {
    crate::serve::read_body(body, MAX_API_BODY).await
}

/// Removes and returns the first queued fault `pick` accepts.
pub(in crate::tiktok) fn take_fault<T>(
    inner: &mut Inner,
    pick: impl Fn(&Fault) -> Option<T>,
) -> Option<T> {
    let index = inner.faults.iter().position(|f| pick(f).is_some())?;
    inner.faults.remove(index).and_then(|f| pick(&f))
}

pub(in crate::tiktok) fn take_respond(shared: &Shared, endpoint: &str) -> Option<Answer> {
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

pub(in crate::tiktok) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"))
}

/// `application/json; charset=UTF-8`, in any case, with any spaces around `;`.
pub(in crate::tiktok) fn is_json_content_type(value: Option<&str>) -> bool {
    let Some(value) = value else { return false };
    let parts: Vec<String> = value
        .split(';')
        .map(|part| part.trim().to_ascii_lowercase())
        .collect();
    parts == ["application/json", "charset=utf-8"]
}

#[cfg(test)]
mod tests {
    use super::*;

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
