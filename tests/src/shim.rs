//! `Shim`: an in-process HTTP/1.1 front for a tus server that records every request and,
//! by rules a test installs, forces statuses or rewrites response headers (a lying server).
//!
//! Streams bodies both ways; owns its own small tokio runtime and nothing else.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body as _, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sha1::{Digest, Sha1};
use sha2::Sha256;
use tokio::net::TcpStream;

use crate::serve::{CloseWith, HttpServer};

type Body = BoxBody<Bytes, hyper::Error>;

/// A change to a forwarded response.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Drop a header.
    Remove(String),
    /// Set a header, replacing any value it had.
    Set(String, String),
    /// Append `,value` to a header (or set it when absent).
    Append(String, String),
    /// Replace the status code.
    Status(u16),
    /// Add this many bytes to the numeric `Upload-Offset` (claims more than was sent).
    OffsetBeyond(u64),
}

/// What a rule does to the requests it catches.
#[derive(Debug, Clone)]
pub enum Action {
    /// Read the whole request body, forward nothing, answer with this status and headers.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
    },
    /// Forward, then change the response.
    Edit(Vec<Edit>),
}

/// Catches requests by method and path prefix, lets `skip` matches through, then acts on
/// `times` matches (`None`: until removed).
#[derive(Debug, Clone)]
pub struct Rule {
    pub method: String,
    pub path_prefix: String,
    pub skip: usize,
    pub times: Option<usize>,
    pub action: Action,
}

impl Rule {
    /// Answers the next matching request with `status` (no forwarding).
    pub fn respond(method: &str, path_prefix: &str, status: u16) -> Rule {
        Rule {
            method: method.to_string(),
            path_prefix: path_prefix.to_string(),
            skip: 0,
            times: Some(1),
            action: Action::Respond {
                status,
                headers: Vec::new(),
            },
        }
    }

    /// Forwards the next matching request and applies `edits` to its response.
    pub fn edit(method: &str, path_prefix: &str, edits: Vec<Edit>) -> Rule {
        Rule {
            method: method.to_string(),
            path_prefix: path_prefix.to_string(),
            skip: 0,
            times: Some(1),
            action: Action::Edit(edits),
        }
    }

    /// Adds a header to a forced response.
    pub fn header(mut self, name: &str, value: &str) -> Rule {
        match &mut self.action {
            Action::Respond { headers, .. } => headers.push((name.to_string(), value.to_string())),
            Action::Edit(edits) => edits.push(Edit::Set(name.to_string(), value.to_string())),
        }
        self
    }

    /// Acts on this many matches.
    pub fn times(mut self, times: usize) -> Rule {
        self.times = Some(times);
        self
    }

    /// Acts on every match until the rule is removed.
    pub fn always(mut self) -> Rule {
        self.times = None;
        self
    }

    /// Lets the first `skip` matches through untouched (so `skip(2)` acts on the third).
    pub fn skip(mut self, skip: usize) -> Rule {
        self.skip = skip;
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method.eq_ignore_ascii_case(method) && path.starts_with(&self.path_prefix)
    }
}

struct ActiveRule {
    id: usize,
    rule: Rule,
    seen: usize,
    applied: usize,
}

/// One request as it reached the shim.
#[derive(Debug, Clone)]
pub struct Record {
    pub at: DateTime<Utc>,
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Every request header, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The status the client was given (`None` while the request is in flight).
    pub status: Option<u16>,
    /// True when a rule forced or edited the response.
    pub ruled: bool,
    /// Body bytes received from the client so far.
    pub body_bytes: u64,
    /// True once the whole body was read.
    pub body_complete: bool,
    /// Base64 SHA-1 and SHA-256 of the body, when the request carried `Upload-Checksum`.
    pub body_sha1: Option<String>,
    pub body_sha256: Option<String>,
}

impl Record {
    /// The first request header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The request's `Upload-Offset`, if numeric.
    pub fn upload_offset(&self) -> Option<u64> {
        self.header("upload-offset")?.trim().parse().ok()
    }

    /// Whether `Upload-Checksum` matches the body received (`None` without the header or
    /// before the body was complete).
    pub fn checksum_matches(&self) -> Option<bool> {
        let claimed = self.header("upload-checksum")?;
        if !self.body_complete {
            return None;
        }
        let (algorithm, value) = claimed.trim().split_once(' ')?;
        let actual = match algorithm.to_ascii_lowercase().as_str() {
            "sha1" => self.body_sha1.as_deref()?,
            "sha256" => self.body_sha256.as_deref()?,
            _ => return Some(false),
        };
        Some(actual == value.trim())
    }

    fn describe(&self) -> String {
        format!(
            "{} {} {} offset={:?} body={}{} -> {:?}{}",
            self.at.format("%H:%M:%S%.3f"),
            self.method,
            self.path,
            self.header("upload-offset"),
            self.body_bytes,
            if self.body_complete { "" } else { " (partial)" },
            self.status,
            if self.ruled { " (ruled)" } else { "" }
        )
    }
}

/// Running hashes of a body, kept only for requests that claim a checksum.
struct BodyHashes {
    sha1: Sha1,
    sha256: Sha256,
}

struct State {
    upstream: SocketAddr,
    rules: Mutex<Vec<ActiveRule>>,
    next_rule: Mutex<usize>,
    hits: Mutex<Vec<(usize, usize)>>,
    records: Mutex<Vec<Record>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running shim; dropping it stops it and closes its connections.
pub struct Shim {
    /// First, so that it stops before the state goes.
    server: HttpServer,
    state: Arc<State>,
}

/// Identifies an installed rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleId(usize);

impl Shim {
    /// Listens on `127.0.0.1:0` in front of `upstream` (a tus server's address).
    pub fn start(upstream: SocketAddr) -> Shim {
        let state = Arc::new(State {
            upstream,
            rules: Mutex::new(Vec::new()),
            next_rule: Mutex::new(0),
            hits: Mutex::new(Vec::new()),
            records: Mutex::new(Vec::new()),
        });
        let served = state.clone();
        let server = HttpServer::start("shim", CloseWith::Fin, |_| {
            move |request, _| handle(request, served.clone())
        });
        Shim { server, state }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://127.0.0.1:PORT` + `path`: a URL through the shim.
    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// The tus creation URL through the shim (the server's `/files/`).
    pub fn endpoint(&self) -> String {
        self.url("/files/")
    }

    /// Installs a rule after those already there; the first rule that acts wins.
    pub fn add_rule(&self, rule: Rule) -> RuleId {
        let id = {
            let mut next = lock(&self.state.next_rule);
            *next += 1;
            *next
        };
        lock(&self.state.hits).push((id, 0));
        lock(&self.state.rules).push(ActiveRule {
            id,
            rule,
            seen: 0,
            applied: 0,
        });
        RuleId(id)
    }

    /// Removes one rule (a lie stops).
    pub fn remove_rule(&self, id: RuleId) {
        lock(&self.state.rules).retain(|r| r.id != id.0);
    }

    /// Removes every rule: from now on the shim only forwards and records.
    pub fn clear_rules(&self) {
        lock(&self.state.rules).clear();
    }

    /// How many requests a rule has acted on.
    pub fn hits(&self, id: RuleId) -> usize {
        lock(&self.state.hits)
            .iter()
            .find(|(rule, _)| *rule == id.0)
            .map_or(0, |(_, hits)| *hits)
    }

    /// Makes the shim offer the checksum extension: OPTIONS answers list `checksum` in
    /// `Tus-Extension` and `algorithms` in `Tus-Checksum-Algorithm`.
    pub fn offer_checksum(&self, algorithms: &str) -> RuleId {
        self.add_rule(
            Rule::edit(
                "OPTIONS",
                "/",
                vec![
                    Edit::Append("tus-extension".into(), "checksum".into()),
                    Edit::Set("tus-checksum-algorithm".into(), algorithms.into()),
                ],
            )
            .always(),
        )
    }

    /// Every request so far, in arrival order.
    pub fn records(&self) -> Vec<Record> {
        lock(&self.state.records).clone()
    }

    /// The requests with this method.
    pub fn requests(&self, method: &str) -> Vec<Record> {
        self.records()
            .into_iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method))
            .collect()
    }

    /// All records as text, for assertion messages.
    pub fn describe(&self) -> String {
        self.records()
            .iter()
            .map(|r| format!("  {}", r.describe()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Picks the first rule that acts on this request, counting matches for every rule.
fn pick_action(state: &State, method: &str, path: &str) -> Option<Action> {
    let mut rules = lock(&state.rules);
    let mut chosen = None;
    for active in rules.iter_mut() {
        if !active.rule.matches(method, path) {
            continue;
        }
        active.seen += 1;
        let due = active.seen > active.rule.skip
            && active.rule.times.is_none_or(|times| active.applied < times);
        if due && chosen.is_none() {
            active.applied += 1;
            if let Some(hit) = lock(&state.hits)
                .iter_mut()
                .find(|(id, _)| *id == active.id)
            {
                hit.1 += 1;
            }
            chosen = Some(active.rule.action.clone());
        }
    }
    chosen
}

async fn handle(request: Request<Incoming>, state: Arc<State>) -> Response<Body> {
    let method = request.method().as_str().to_string();
    let path = request
        .uri()
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let wants_hashes = request.headers().contains_key("upload-checksum");
    let index = {
        let mut records = lock(&state.records);
        records.push(Record {
            at: Utc::now(),
            method: method.clone(),
            path: path.clone(),
            headers,
            status: None,
            ruled: false,
            body_bytes: 0,
            body_complete: false,
            body_sha1: None,
            body_sha256: None,
        });
        records.len() - 1
    };
    let action = pick_action(&state, &method, request.uri().path());
    let ruled = action.is_some();
    let tap = Arc::new(Mutex::new(wants_hashes.then(|| BodyHashes {
        sha1: Sha1::new(),
        sha256: Sha256::new(),
    })));

    let response = match action {
        Some(Action::Respond { status, headers }) => {
            drain(request.into_body(), &state, index, &tap).await;
            forced(status, &headers)
        }
        Some(Action::Edit(edits)) => match forward(request, &state, index, &tap).await {
            Ok(response) => apply_edits(response, &edits),
            Err(response) => response,
        },
        None => match forward(request, &state, index, &tap).await {
            Ok(response) => response,
            Err(response) => response,
        },
    };
    let mut records = lock(&state.records);
    records[index].status = Some(response.status().as_u16());
    records[index].ruled = ruled;
    response
}

/// Counts (and hashes) a chunk of request body into the request's record; a body of known
/// length is complete once that many bytes were seen (a client never polls past them).
fn tap_data(state: &State, index: usize, tap: &Mutex<Option<BodyHashes>>, data: &[u8]) {
    if let Some(hashes) = lock(tap).as_mut() {
        hashes.sha1.update(data);
        hashes.sha256.update(data);
    }
    let complete = {
        let mut records = lock(&state.records);
        let record = &mut records[index];
        record.body_bytes += data.len() as u64;
        record
            .header("content-length")
            .and_then(|length| length.trim().parse::<u64>().ok())
            == Some(record.body_bytes)
    };
    if complete {
        finish_body(state, index, tap);
    }
}

/// Marks the body complete and stores its hashes.
fn finish_body(state: &State, index: usize, tap: &Mutex<Option<BodyHashes>>) {
    let hashes = lock(tap).take();
    let mut records = lock(&state.records);
    let record = &mut records[index];
    if record.body_complete {
        return;
    }
    record.body_complete = true;
    if let Some(hashes) = hashes {
        let b64 = base64::engine::general_purpose::STANDARD;
        record.body_sha1 = Some(b64.encode(hashes.sha1.finalize()));
        record.body_sha256 = Some(b64.encode(hashes.sha256.finalize()));
    }
}

async fn drain(
    mut body: Incoming,
    state: &Arc<State>,
    index: usize,
    tap: &Arc<Mutex<Option<BodyHashes>>>,
) {
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return };
        if let Some(data) = frame.data_ref() {
            tap_data(state, index, tap, data);
        }
    }
    finish_body(state, index, tap);
}

/// Sends the request on to the upstream server with its body streamed through the tap.
async fn forward(
    request: Request<Incoming>,
    state: &Arc<State>,
    index: usize,
    tap: &Arc<Mutex<Option<BodyHashes>>>,
) -> Result<Response<Body>, Response<Body>> {
    let (parts, body) = request.into_parts();
    if body.is_end_stream() {
        finish_body(state, index, tap);
    }
    let body_state = state.clone();
    let body_tap = tap.clone();
    let ended_state = state.clone();
    let ended_tap = tap.clone();
    let body = body
        .map_frame(move |frame| {
            if let Some(data) = frame.data_ref() {
                tap_data(&body_state, index, &body_tap, data);
            }
            frame
        })
        .boxed();
    let body = EndNotify {
        inner: body,
        on_end: Some(Box::new(move || {
            finish_body(&ended_state, index, &ended_tap)
        })),
    };
    let upstream_request = Request::from_parts(parts, body);

    let stream = TcpStream::connect(state.upstream)
        .await
        .map_err(|e| bad_gateway(&format!("connect upstream: {e}")))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| bad_gateway(&format!("handshake upstream: {e}")))?;
    tokio::spawn(connection);
    let response = sender
        .send_request(upstream_request)
        .await
        .map_err(|e| bad_gateway(&format!("upstream request: {e}")))?;
    let (mut parts, body) = response.into_parts();
    for hop in ["connection", "keep-alive"] {
        parts.headers.remove(hop);
    }
    Ok(Response::from_parts(parts, body.boxed()))
}

fn apply_edits(response: Response<Body>, edits: &[Edit]) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    for edit in edits {
        match edit {
            Edit::Remove(name) => {
                parts.headers.remove(name.as_str());
            }
            Edit::Set(name, value) => {
                parts.headers.insert(header_name(name), header_value(value));
            }
            Edit::Append(name, value) => {
                let joined = match parts.headers.get(name.as_str()) {
                    Some(old) => format!("{},{value}", String::from_utf8_lossy(old.as_bytes())),
                    None => value.clone(),
                };
                parts
                    .headers
                    .insert(header_name(name), header_value(&joined));
            }
            Edit::Status(status) => {
                parts.status = StatusCode::from_u16(*status).expect("a valid status");
            }
            Edit::OffsetBeyond(extra) => {
                let offset = parts
                    .headers
                    .get("upload-offset")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0);
                parts
                    .headers
                    .insert("upload-offset", header_value(&(offset + extra).to_string()));
            }
        }
    }
    Response::from_parts(parts, body)
}

fn forced(status: u16, headers: &[(String, String)]) -> Response<Body> {
    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::from_u16(status).expect("a valid status");
    response
        .headers_mut()
        .insert("tus-resumable", HeaderValue::from_static("1.0.0"));
    for (name, value) in headers {
        response
            .headers_mut()
            .insert(header_name(name), header_value(value));
    }
    response
}

fn bad_gateway(message: &str) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(message.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}

fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

fn header_name(name: &str) -> HeaderName {
    HeaderName::from_bytes(name.as_bytes()).expect("a valid header name")
}

fn header_value(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).expect("a valid header value")
}

/// A body that runs `on_end` once its last frame has been read.
struct EndNotify {
    inner: Body,
    on_end: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl hyper::body::Body for EndNotify {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(None) = polled {
            if let Some(on_end) = self.on_end.take() {
                on_end();
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}
