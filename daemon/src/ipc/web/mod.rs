//! The desk: upqd's own web page, on the loopback address. A third door over the same
//! `Service` as the socket and D-Bus: it parses a request, calls the service (through the
//! socket's `dispatch` where a request of the protocol says it) and renders the answer.
//! It holds no queue logic of its own.
//!
//! Why each guard is there:
//! - **Loopback only**, and a `Host` that must name it (`127.0.0.1:PORT`, `localhost:PORT`,
//!   `[::1]:PORT`; otherwise 421): a site whose name is re-pointed at 127.0.0.1 (DNS
//!   rebinding) gets nothing, not even the sign-in page.
//! - **A session only from a one-time address** that the socket hands out (`upqctl open`):
//!   being able to reach the port proves nothing, since every local user and every page
//!   in the browser can.
//! - **Every change is a POST with the session's CSRF token**, refused when the browser
//!   says it came from another origin (`Sec-Fetch-Site`, else `Origin`); the cookie is
//!   `SameSite=Strict` besides, though a page on another port of 127.0.0.1 is the same
//!   site and would get it: the token and the origin checks are what stop that page. No CORS headers at all, so no other origin reads a page.
//! - **CSP `default-src 'self'`, `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`**
//!   on every answer: no injected script runs, no page is framed, no address leaks.
//! - **The preview serves a job's own file by job id**, never a path from the request.
//! - **No secrets**: the views it renders leave out upload URLs, and tokens never reach it.
//!
//! Idle, it costs nothing: the listener waits in `accept`, and the only timers (the event
//! stream's keep-alive, the page's countdowns) live while a page is open.

mod files;
mod pages;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequest, Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::Stream;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use upq_proto::{Event, Ids, Request as Call, Selection};

use crate::config::Config;
use crate::ipc::socket::dispatch;
use crate::service::desk::{same_secret, Session};
use crate::service::{Service, ServiceError};
// Shared with `files`, which may use what its parent has but not its sibling's module.
use pages::refusal;

/// The session cookie's name.
const COOKIE: &str = "upq_session";
/// Where the port chosen at the first start is kept, in the data folder.
const PORT_FILE: &str = "web-port";
/// The least time between two progress updates of one job on one page.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("the desk cannot listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// The desk's listener, bound and not yet serving.
pub struct Listening {
    listener: TcpListener,
    port: u16,
    url: String,
}

impl Listening {
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// Opens the desk's port: `[web] port` when set; otherwise the one chosen at the first
/// start (kept in the data folder), or a new one when that is taken. `None` when
/// `[web] enabled = false`.
pub async fn bind(config: &Config) -> Result<Option<Listening>, WebError> {
    let web = &config.web;
    if !web.enabled {
        return Ok(None);
    }
    let kept_file = config.paths.data_dir.join(PORT_FILE);
    let listen = |port: u16| {
        let address = SocketAddr::new(web.bind, port);
        async move {
            TcpListener::bind(address)
                .await
                .map_err(|source| WebError::Listen { address, source })
        }
    };
    let listener = match web.port {
        Some(port) => listen(port).await?,
        None => {
            let kept = std::fs::read_to_string(&kept_file)
                .ok()
                .and_then(|text| text.trim().parse::<u16>().ok())
                .filter(|port| *port != 0);
            let listener = match kept {
                Some(port) => match listen(port).await {
                    Ok(listener) => Some(listener),
                    Err(e) => {
                        tracing::warn!(error = %e, "the desk's kept port is taken; choosing another");
                        None
                    }
                },
                None => None,
            };
            match listener {
                Some(listener) => listener,
                None => {
                    let listener = listen(0).await?;
                    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
                    if let Err(e) = keep_port(&kept_file, port) {
                        tracing::warn!(error = %e, file = %kept_file.display(), "cannot keep the desk's port; another will be chosen at the next start");
                    }
                    listener
                }
            }
        }
    };
    let address = listener.local_addr().map_err(|source| WebError::Listen {
        address: SocketAddr::new(web.bind, web.port.unwrap_or(0)),
        source,
    })?;
    let url = match address {
        SocketAddr::V4(v4) => format!("http://{}:{}/", v4.ip(), v4.port()),
        SocketAddr::V6(v6) => format!("http://[{}]:{}/", v6.ip(), v6.port()),
    };
    Ok(Some(Listening {
        listener,
        port: address.port(),
        url,
    }))
}

/// Writes the port whole or not at all.
fn keep_port(file: &Path, port: u16) -> std::io::Result<()> {
    let partial = file.with_extension("partial");
    std::fs::write(&partial, format!("{port}\n"))?;
    std::fs::rename(&partial, file)
}

/// What every handler shares.
#[derive(Clone)]
struct Desk {
    service: Service,
    /// The `Host` values that name the desk.
    hosts: Arc<[String]>,
}

/// Serves the desk until shutdown.
pub async fn serve(mut listening: Listening, service: Service, shutdown: CancellationToken) {
    let port = listening.port;
    let desk = Desk {
        service: service.clone(),
        hosts: [
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
        ]
        .into(),
    };
    // The pages are built for the first visitor: a daemon whose desk nobody opens never
    // touches their code, and keeps that much less memory.
    let first = tokio::select! {
        first = axum::serve::Listener::accept(&mut listening.listener) => first,
        _ = shutdown.cancelled() => return,
    };
    let listener = FirstThen {
        first: Some(first),
        rest: listening.listener,
    };
    let stop = shutdown.clone();
    let served = axum::serve(listener, router(desk))
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    service.set_desk_url(None);
    if let Err(e) = served {
        tracing::error!(error = %e, "the desk stopped serving");
    }
}

/// A listener that hands out a connection already accepted, then accepts as usual.
struct FirstThen {
    first: Option<(tokio::net::TcpStream, SocketAddr)>,
    rest: TcpListener,
}

impl axum::serve::Listener for FirstThen {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.first.take() {
            Some(first) => first,
            None => axum::serve::Listener::accept(&mut self.rest).await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.rest.local_addr()
    }
}

fn router(desk: Desk) -> Router {
    use pages::Page;
    let cards = |page: Page| {
        get(
            move |desk: State<Desk>, session: axum::Extension<Session>| {
                pages::cards(desk, session, page)
            },
        )
    };
    let signed_in = Router::new()
        .route(Page::Queue.path(), cards(Page::Queue))
        .route(Page::Review.path(), cards(Page::Review))
        .route(Page::Drafts.path(), cards(Page::Drafts))
        .route(Page::History.path(), cards(Page::History))
        .route("/accounts", get(pages::accounts))
        .route("/add", get(pages::add_page).post(add))
        .route("/jobs/{id}", get(pages::job_page))
        .route("/jobs/{id}/cancel", get(pages::cancel_page).post(cancel))
        .route("/jobs/{id}/{action}", post(act))
        .route("/posts/{id}/{action}", post(act_on_post))
        .route("/accounts/{destination}/{action}", post(account))
        .route("/cards/{page}/{id}", get(pages::card))
        .route("/status-line", get(pages::status_line_part))
        .route("/preview/{id}", get(files::preview))
        .route("/events", get(events))
        .layer(middleware::from_fn_with_state(desk.clone(), signed_in_only));
    Router::new()
        .merge(signed_in)
        .route("/login", get(login))
        .route("/assets/{name}", get(asset))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(desk.clone(), guard))
        .with_state(desk)
}

/// The headers every answer carries.
fn protect(headers: &mut HeaderMap) {
    let set = |headers: &mut HeaderMap, name, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'",
    );
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
}

/// Refuses a `Host` that does not name the desk (421) and a cross-origin POST (403), and
/// puts the protective headers on every answer.
async fn guard(State(desk): State<Desk>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .map(str::to_ascii_lowercase);
    let mut response = match host {
        Some(host) if desk.hosts.contains(&host) => {
            if request.method() != Method::GET && request.method() != Method::HEAD {
                match cross_origin(request.headers(), &host) {
                    Some(why) => refusal(StatusCode::FORBIDDEN, why),
                    None => next.run(request).await,
                }
            } else {
                next.run(request).await
            }
        }
        _ => (
            StatusCode::MISDIRECTED_REQUEST,
            "421 Misdirected Request: this is upq's desk, reachable as 127.0.0.1, localhost or [::1] only\n",
        )
            .into_response(),
    };
    protect(response.headers_mut());
    response
}

/// Why a state-changing request is from another origin, if the browser says it is.
/// `Sec-Fetch-Site` decides where the browser sends it (every current one does); else an
/// `Origin` must be the page's own. A form posted under `Referrer-Policy: no-referrer`
/// carries `Origin: null`, so that alone proves nothing either way: the CSRF token decides.
fn cross_origin(headers: &HeaderMap, host: &str) -> Option<&'static str> {
    const ELSEWHERE: &str =
        "this request came from another site; the desk takes changes only from its own pages";
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.to_str() {
            Ok("same-origin") | Ok("none") => None,
            _ => Some(ELSEWHERE),
        };
    }
    match headers.get(header::ORIGIN).map(|origin| origin.to_str()) {
        None | Some(Ok("null")) => None,
        Some(Ok(origin)) if origin == format!("http://{host}") => None,
        Some(_) => Some(ELSEWHERE),
    }
}

/// The session the request's cookie names, if any.
fn session_of(desk: &Desk, headers: &HeaderMap) -> Option<Session> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE)
        .find_map(|(_, value)| desk.service.desk_session(value))
}

/// Lets through requests with a session; others get the page that says how to sign in.
async fn signed_in_only(State(desk): State<Desk>, mut request: Request, next: Next) -> Response {
    match session_of(&desk, request.headers()) {
        Some(session) => {
            request.extensions_mut().insert(session);
            next.run(request).await
        }
        None if request.method() == Method::GET => pages::sign_in_needed(),
        None => refusal(
            StatusCode::FORBIDDEN,
            "not signed in: run `upqctl open` to sign this browser in",
        ),
    }
}

#[derive(Deserialize)]
struct LoginQuery {
    #[serde(default)]
    token: String,
}

/// `/login?token=`: spends a one-time token, sets the session cookie and goes to the queue.
async fn login(State(desk): State<Desk>, Query(query): Query<LoginQuery>) -> Response {
    match desk.service.redeem_desk_token(&query.token) {
        Some(session) => {
            let cookie = format!("{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/", session.id);
            let mut response = Redirect::to("/").into_response();
            if let Ok(cookie) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        None => refusal(
            StatusCode::FORBIDDEN,
            "this sign-in address was used already, has expired (after a minute) or is wrong: \
             run `upqctl open` for a new one",
        ),
    }
}

/// Job `id` with its history, or the page that says there is no such job.
fn shown(desk: &Desk, id: u64) -> Result<upq_proto::JobView, Box<Response>> {
    desk.service
        .show(id)
        .map_err(|e| Box::new(refusal(StatusCode::NOT_FOUND, &e.message)))
}

async fn not_found() -> Response {
    refusal(StatusCode::NOT_FOUND, "no such page")
}

/// The page's own files, built into the daemon.
async fn asset(UrlPath(name): UrlPath<String>) -> Response {
    let (body, kind): (&'static str, &'static str) = match name.as_str() {
        "desk.css" => (include_str!("assets/desk.css"), "text/css; charset=utf-8"),
        "desk.js" => (
            include_str!("assets/desk.js"),
            "text/javascript; charset=utf-8",
        ),
        "icon.svg" => (include_str!("assets/icon.svg"), "image/svg+xml"),
        _ => return not_found().await,
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// A POSTed form whose CSRF token is the session's: the only way a change gets in.
struct Posted {
    fields: Vec<(String, String)>,
}

impl Posted {
    fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Where to go back to: a page of the desk, never an address from elsewhere.
    fn back(&self) -> &'static str {
        pages::Page::from_path(self.get("back").unwrap_or("/")).path()
    }
}

impl FromRequest<Desk> for Posted {
    type Rejection = Response;

    async fn from_request(request: Request, state: &Desk) -> Result<Self, Self::Rejection> {
        let session = request.extensions().get::<Session>().cloned();
        let axum::Form(fields) = axum::Form::<Vec<(String, String)>>::from_request(request, state)
            .await
            .map_err(|e| refusal(StatusCode::BAD_REQUEST, &e.body_text()))?;
        let posted = Posted { fields };
        let token_ok = match (&session, posted.get("csrf")) {
            (Some(session), Some(token)) => same_secret(&session.csrf, token),
            _ => false,
        };
        if !token_ok {
            return Err(refusal(
                StatusCode::FORBIDDEN,
                "this form is not from this session's pages (its CSRF token is missing or wrong); reload the page",
            ));
        }
        Ok(posted)
    }
}

/// The answer to a change: back to the page it came from, or the service's refusal.
fn done(result: Result<(), ServiceError>, back: &'static str) -> Response {
    match result {
        Ok(()) => Redirect::to(back).into_response(),
        Err(e) => refusal(StatusCode::CONFLICT, &e.message),
    }
}

/// A batch's one item as a result: the refusal of the job, if it was refused.
fn single(reply: Result<upq_proto::Reply, ServiceError>) -> Result<(), ServiceError> {
    match reply? {
        upq_proto::Reply::Batch(items) => match items.into_iter().find_map(|item| item.error) {
            Some(error) => Err(ServiceError::new(error.code, error.message)),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// `POST /jobs/{id}/{action}`: the same requests the socket takes.
async fn act(
    State(desk): State<Desk>,
    UrlPath((id, action)): UrlPath<(u64, String)>,
    posted: Posted,
) -> Response {
    act_on(&desk, id, &action, posted).await
}

/// `POST /jobs/{id}/cancel`, the answer to the page that asks first.
async fn cancel(State(desk): State<Desk>, UrlPath(id): UrlPath<u64>, posted: Posted) -> Response {
    act_on(&desk, id, "cancel", posted).await
}

async fn act_on(desk: &Desk, id: u64, action: &str, posted: Posted) -> Response {
    let ids = Ids {
        ids: vec![id],
        posts: Vec::new(),
    };
    let call = match action {
        "pause" => Call::Pause(Selection::job(id)),
        "resume" => Call::Resume(Selection::job(id)),
        "cancel" => Call::Cancel(ids),
        "retry" => Call::Retry(ids),
        "publish" => Call::Publish(ids),
        "recover" => Call::Recover(ids),
        "discard" => Call::Discard(ids),
        "edit" => {
            // Only the fields the form offered (and the destination still allows) are sent.
            let field = |name: &str| posted.get(name).map(str::to_owned);
            Call::Edit(upq_proto::EditRequest {
                id,
                title: field("title"),
                caption: field("caption"),
                privacy: field("privacy"),
            })
        }
        _ => return not_found().await,
    };
    let back = posted.back();
    done(single(dispatch(&desk.service, call).await), back)
}

/// `POST /posts/{id}/{action}`: a post's publish or cancel, for all of its jobs.
async fn act_on_post(
    State(desk): State<Desk>,
    UrlPath((id, action)): UrlPath<(String, String)>,
    posted: Posted,
) -> Response {
    let Ok(post) = id.parse::<upq_proto::PostId>() else {
        return not_found().await;
    };
    let ids = Ids {
        ids: Vec::new(),
        posts: vec![post],
    };
    let call = match action.as_str() {
        "publish" => Call::Publish(ids),
        "cancel" => Call::Cancel(ids),
        _ => return not_found().await,
    };
    done(single(dispatch(&desk.service, call).await), posted.back())
}

/// `POST /accounts/{destination}/login|logout`.
async fn account(
    State(desk): State<Desk>,
    UrlPath((destination, action)): UrlPath<(String, String)>,
    _posted: Posted,
) -> Response {
    match action.as_str() {
        // The platform's sign-in page, in this browser; it comes back to the daemon.
        "login" => match desk.service.login(&destination, None).await {
            Ok(started) => Redirect::to(&started.url).into_response(),
            Err(e) => refusal(StatusCode::CONFLICT, &e.message),
        },
        "logout" => done(
            desk.service.logout(&destination).await.map(|_| ()),
            "/accounts",
        ),
        _ => not_found().await,
    }
}

/// `POST /add`: a file from the videos folder to one destination or several.
async fn add(State(desk): State<Desk>, posted: Posted) -> Response {
    match files::add(&desk.service, &posted).await {
        Ok(added) => pages::added(&added),
        Err(message) => refusal(StatusCode::BAD_REQUEST, &message),
    }
}

/// What one event tells an open page, as `(event name, JSON data)`; `None` to skip it.
/// Progress is thinned to one update per job every `PROGRESS_EVERY`.
fn page_event(
    event: &Event,
    last: &mut HashMap<u64, tokio::time::Instant>,
) -> Option<(&'static str, String)> {
    use upq_proto::text::{compact_duration, human_size, human_speed, percent};
    match event {
        Event::Progress {
            id,
            bytes_sent,
            bytes_in_flight,
            size,
            speed,
        } => {
            let now = tokio::time::Instant::now();
            let moved = bytes_sent.saturating_add(*bytes_in_flight).min(*size);
            if moved < *size
                && last
                    .get(id)
                    .is_some_and(|at| now.duration_since(*at) < PROGRESS_EVERY)
            {
                return None;
            }
            last.insert(*id, now);
            let eta = (*speed > 0)
                .then(|| compact_duration((size - moved).div_ceil(*speed)))
                .map(|left| format!("{left} left"))
                .unwrap_or_default();
            Some((
                "progress",
                serde_json::json!({
                    "id": id, "value": moved, "max": size,
                    "text": format!("{} / {} ({})", human_size(moved), human_size(*size), percent(moved, *size)),
                    "speed": if *speed > 0 { human_speed(*speed) } else { String::new() },
                    "eta": eta,
                })
                .to_string(),
            ))
        }
        Event::Processing {
            id,
            parts_processed,
            parts_total,
            time_left_ms,
        } => Some((
            "processing",
            serde_json::json!({
                "id": id,
                "text": pages::processing_text(&upq_proto::ProcessingProgress {
                    parts_processed: *parts_processed,
                    parts_total: *parts_total,
                    time_left_ms: *time_left_ms,
                }),
            })
            .to_string(),
        )),
        Event::State { id, .. } => {
            last.remove(id);
            Some(("state", serde_json::json!({ "id": id }).to_string()))
        }
        Event::Removed { id } => Some(("removed", serde_json::json!({ "id": id }).to_string())),
        Event::Lagged { .. } => Some(("lagged", "{}".to_owned())),
        Event::Unknown => None,
    }
}

/// `/events`: what changes, as Server-Sent Events, for as long as the page is open.
async fn events(
    State(desk): State<Desk>,
) -> Sse<impl Stream<Item = Result<SseEvent, std::convert::Infallible>>> {
    let receiver = desk.service.subscribe();
    let shutdown = desk.service.inner.shutdown.clone();
    let stream = futures::stream::unfold(
        (receiver, HashMap::new(), shutdown),
        |(mut receiver, mut last, shutdown)| async move {
            loop {
                let event = tokio::select! {
                    event = receiver.recv() => event,
                    _ = shutdown.cancelled() => return None,
                };
                let event = match event {
                    Ok(event) => event,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        Event::Lagged { missed }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                };
                if let Some((name, data)) = page_event(&event, &mut last) {
                    let sse = SseEvent::default().event(name).data(data);
                    return Some((Ok(sse), (receiver, last, shutdown)));
                }
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// The user's videos folder: `XDG_VIDEOS_DIR`, as the environment or `user-dirs.dirs`
/// says, else `~/Videos`.
pub(crate) fn videos_dir() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"));
    let expand = |value: &str| -> PathBuf {
        let value = value.trim().trim_matches('"');
        match value.strip_prefix("$HOME") {
            Some(rest) => home.join(rest.trim_start_matches('/')),
            None => PathBuf::from(value),
        }
    };
    if let Some(dir) = std::env::var("XDG_VIDEOS_DIR")
        .ok()
        .filter(|v| !v.is_empty())
    {
        return expand(&dir);
    }
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".config"));
    if let Ok(text) = std::fs::read_to_string(config_home.join("user-dirs.dirs")) {
        for line in text.lines() {
            if let Some(value) = line.trim().strip_prefix("XDG_VIDEOS_DIR=") {
                return expand(value);
            }
        }
    }
    home.join("Videos")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_origin_posts_are_refused() {
        let host = "127.0.0.1:8080";
        let with = |pairs: &[(&'static str, &'static str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.insert(*name, HeaderValue::from_static(value));
            }
            headers
        };
        assert!(cross_origin(&with(&[]), host).is_none());
        assert!(cross_origin(&with(&[("origin", "http://127.0.0.1:8080")]), host).is_none());
        assert!(cross_origin(&with(&[("origin", "http://evil.example")]), host).is_some());
        assert!(cross_origin(&with(&[("origin", "null")]), host).is_none());
        let null_same = with(&[("origin", "null"), ("sec-fetch-site", "same-origin")]);
        assert!(cross_origin(&null_same, host).is_none());
        let null_elsewhere = with(&[("origin", "null"), ("sec-fetch-site", "cross-site")]);
        assert!(cross_origin(&null_elsewhere, host).is_some());
        assert!(cross_origin(&with(&[("sec-fetch-site", "cross-site")]), host).is_some());
        assert!(cross_origin(&with(&[("sec-fetch-site", "same-site")]), host).is_some());
        assert!(cross_origin(&with(&[("sec-fetch-site", "same-origin")]), host).is_none());
    }

    #[test]
    fn progress_is_thinned_but_the_end_always_shows() {
        let mut last = HashMap::new();
        let progress = |sent| Event::Progress {
            id: 1,
            bytes_sent: sent,
            bytes_in_flight: 0,
            size: 100,
            speed: 10,
        };
        assert!(page_event(&progress(10), &mut last).is_some());
        assert!(page_event(&progress(20), &mut last).is_none());
        let (name, data) = page_event(&progress(100), &mut last).unwrap();
        assert_eq!(name, "progress");
        assert!(data.contains("\"value\":100"), "{data}");
    }
}
