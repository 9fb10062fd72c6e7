//! `Chaos`: an HTTP/1.1 front for a tus server that injects faults at random, from a seeded
//! RNG, into the requests it forwards: resets, 5xx, 429 with `Retry-After`, stalls, slow links.
//!
//! Counts every fault it injected; owns its own small tokio runtime, sockets and nothing else.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Sleep;

use crate::jobs::Rng;
use crate::serve::{CloseWith, Closer, HttpServer};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type OutBody = BoxBody<Bytes, BoxError>;

/// The fault classes, in the order of [`ChaosCounts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The connection is reset: mid-body (part of it reaches the server), or after the
    /// server answered (the answer is lost), or before anything was forwarded.
    Reset,
    /// 500, 502 or 503 without forwarding.
    ServerError,
    /// 429 with `Retry-After`, without forwarding.
    TooManyRequests,
    /// The request is held silent (nothing read, nothing answered), then reset.
    Stall,
    /// The request body reaches the server at a slow, steady rate.
    SlowLink,
}

const FAULTS: [Fault; 5] = [
    Fault::Reset,
    Fault::ServerError,
    Fault::TooManyRequests,
    Fault::Stall,
    Fault::SlowLink,
];

/// How often and how hard the front misbehaves.
#[derive(Debug, Clone, Copy)]
pub struct ChaosSettings {
    /// Chance, in percent, that a request meets a fault.
    pub fault_percent: u64,
    /// How long a stalled request is held before it is reset (longer than upqd's `stall_timeout`).
    pub stall_hold: Duration,
    /// Bytes per second of a slow link.
    pub slow_rate: u64,
    /// Seconds sent in `Retry-After` with a 429.
    pub retry_after_secs: u64,
}

/// Faults injected so far, by class, and requests seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChaosCounts {
    pub requests: u64,
    pub resets: u64,
    pub server_errors: u64,
    pub too_many: u64,
    pub stalls: u64,
    pub slow_links: u64,
    /// Uploads the server created whose answer (and `Location`) the front dropped: upq
    /// never learns their URLs, so nobody can remove them.
    pub creations_lost: u64,
}

impl ChaosCounts {
    /// Faults of every class together.
    pub fn total(&self) -> u64 {
        self.resets + self.server_errors + self.too_many + self.stalls + self.slow_links
    }
}

impl fmt::Display for ChaosCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} faults in {} requests (reset {}, 5xx {}, 429 {}, stall {}, slow {})",
            self.total(),
            self.requests,
            self.resets,
            self.server_errors,
            self.too_many,
            self.stalls,
            self.slow_links
        )
    }
}

struct State {
    upstream: SocketAddr,
    settings: ChaosSettings,
    rng: Mutex<Rng>,
    enabled: AtomicBool,
    requests: AtomicU64,
    injected: [AtomicU64; FAULTS.len()],
    creations_lost: AtomicU64,
}

impl State {
    /// Draws this request's fate from the seeded RNG: no fault, or one fault and a number
    /// for its details (where to cut, which status).
    fn draw(&self) -> Option<(Fault, u64)> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let roll = rng.below(100);
        let class = rng.below(FAULTS.len() as u64) as usize;
        let detail = rng.next_u64();
        if !self.enabled.load(Ordering::SeqCst) || roll >= self.settings.fault_percent {
            return None;
        }
        self.injected[class].fetch_add(1, Ordering::SeqCst);
        Some((FAULTS[class], detail))
    }
}

/// A running chaos front; dropping it stops it and closes its connections.
pub struct Chaos {
    /// First, so that it stops before the state goes.
    server: HttpServer,
    state: Arc<State>,
}

impl Chaos {
    /// Listens on `127.0.0.1:0` in front of `upstream`, drawing faults from `seed`; faults
    /// start disabled (see [`Chaos::set_enabled`]).
    pub fn start(upstream: SocketAddr, seed: u64, settings: ChaosSettings) -> Chaos {
        let state = Arc::new(State {
            upstream,
            settings,
            rng: Mutex::new(Rng(seed | 1)),
            enabled: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            injected: Default::default(),
            creations_lost: AtomicU64::new(0),
        });
        let served = state.clone();
        let server = HttpServer::start("chaos", CloseWith::Rst, |_| {
            move |request, closer| handle(request, served.clone(), closer)
        });
        Chaos { server, state }
    }

    /// The tus creation URL through the front (the server's `/files/`).
    pub fn endpoint(&self) -> String {
        self.server.url("/files/")
    }

    /// Turns fault injection on or off; off, the front only forwards.
    pub fn set_enabled(&self, enabled: bool) {
        self.state.enabled.store(enabled, Ordering::SeqCst);
    }

    /// What was injected so far.
    pub fn counts(&self) -> ChaosCounts {
        let injected = |fault: Fault| {
            let index = FAULTS.iter().position(|f| *f == fault).expect("a fault");
            self.state.injected[index].load(Ordering::SeqCst)
        };
        ChaosCounts {
            requests: self.state.requests.load(Ordering::SeqCst),
            resets: injected(Fault::Reset),
            server_errors: injected(Fault::ServerError),
            too_many: injected(Fault::TooManyRequests),
            stalls: injected(Fault::Stall),
            slow_links: injected(Fault::SlowLink),
            creations_lost: self.state.creations_lost.load(Ordering::SeqCst),
        }
    }
}

/// Resets the client's connection and never answers.
async fn reset(kill: &Notify) -> Response<OutBody> {
    kill.notify_one();
    std::future::pending().await
}

async fn handle(request: Request<Incoming>, state: Arc<State>, kill: Closer) -> Response<OutBody> {
    let Some((fault, detail)) = state.draw() else {
        return forward(request, &state, None, None)
            .await
            .unwrap_or_else(|response| response);
    };
    match fault {
        Fault::Reset => {
            let length = content_length(&request);
            match detail % 3 {
                // Part of the body reaches the server, then both sides are cut.
                0 if length > 1 => {
                    let cut = 1 + (detail >> 8) % (length - 1);
                    let _ = forward(request, &state, Some(cut), None).await;
                    reset(&kill).await
                }
                // The server does it all; its answer is lost.
                1 => {
                    let creation = request.method() == hyper::Method::POST;
                    let answer = forward(request, &state, None, None).await;
                    if creation && answer.is_ok_and(|r| r.status() == StatusCode::CREATED) {
                        state.creations_lost.fetch_add(1, Ordering::SeqCst);
                    }
                    reset(&kill).await
                }
                _ => reset(&kill).await,
            }
        }
        Fault::ServerError => {
            drain(request.into_body()).await;
            let status = [500, 502, 503][(detail % 3) as usize];
            answer(status, None)
        }
        Fault::TooManyRequests => {
            drain(request.into_body()).await;
            answer(429, Some(state.settings.retry_after_secs))
        }
        Fault::Stall => {
            // Hold the request unread and unanswered: no byte moves either way.
            tokio::time::sleep(state.settings.stall_hold).await;
            drop(request);
            reset(&kill).await
        }
        Fault::SlowLink => {
            let rate = state.settings.slow_rate;
            forward(request, &state, None, Some(rate))
                .await
                .unwrap_or_else(|response| response)
        }
    }
}

fn content_length(request: &Request<Incoming>) -> u64 {
    request
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

async fn drain(mut body: Incoming) {
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            return;
        }
    }
}

/// Sends the request on to the server, its body cut after `cut` bytes or paced at `rate`.
async fn forward(
    request: Request<Incoming>,
    state: &State,
    cut: Option<u64>,
    rate: Option<u64>,
) -> Result<Response<OutBody>, Response<OutBody>> {
    let (parts, body) = request.into_parts();
    let body = ChaosBody {
        inner: body,
        pending: None,
        sleep: None,
        passed: 0,
        cut,
        rate,
    };
    let upstream_request = Request::from_parts(parts, body);
    let stream = TcpStream::connect(state.upstream)
        .await
        .map_err(|_| answer(502, None))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| answer(502, None))?;
    tokio::spawn(connection);
    let response = sender
        .send_request(upstream_request)
        .await
        .map_err(|_| answer(502, None))?;
    let (mut parts, body) = response.into_parts();
    for hop in ["connection", "keep-alive"] {
        parts.headers.remove(hop);
    }
    Ok(Response::from_parts(
        parts,
        body.map_err(|e| -> BoxError { Box::new(e) }).boxed(),
    ))
}

fn answer(status: u16, retry_after_secs: Option<u64>) -> Response<OutBody> {
    let mut response = Response::new(
        Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = StatusCode::from_u16(status).expect("a valid status");
    let headers = response.headers_mut();
    headers.insert("tus-resumable", HeaderValue::from_static("1.0.0"));
    if let Some(seconds) = retry_after_secs {
        headers.insert("retry-after", HeaderValue::from(seconds));
    }
    response
}

/// Slow links pass the body in pieces this big, one per `piece / rate` seconds.
const SLOW_PIECE: usize = 16 * 1024;

/// A request body on its way to the server: cut after `cut` bytes (an error aborts the
/// upstream request), or paced at `rate` bytes per second.
struct ChaosBody {
    inner: Incoming,
    pending: Option<Bytes>,
    sleep: Option<Pin<Box<Sleep>>>,
    passed: u64,
    cut: Option<u64>,
    rate: Option<u64>,
}

impl Body for ChaosBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if let Some(sleep) = this.sleep.as_mut() {
                ready!(sleep.as_mut().poll(cx));
                this.sleep = None;
            }
            if this.cut.is_some_and(|cut| this.passed >= cut) {
                return Poll::Ready(Some(Err("connection cut by the chaos front".into())));
            }
            if let Some(mut data) = this.pending.take() {
                let mut limit = data.len();
                if let Some(cut) = this.cut {
                    limit = limit.min((cut - this.passed) as usize);
                }
                if this.rate.is_some() {
                    limit = limit.min(SLOW_PIECE);
                }
                let piece = data.split_to(limit);
                if !data.is_empty() {
                    this.pending = Some(data);
                }
                this.passed += piece.len() as u64;
                if let Some(rate) = this.rate {
                    let pause = Duration::from_secs_f64(piece.len() as f64 / rate as f64);
                    this.sleep = Some(Box::pin(tokio::time::sleep(pause)));
                }
                return Poll::Ready(Some(Ok(Frame::data(piece))));
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => this.pending = Some(data),
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(Box::new(e)))),
                None => return Poll::Ready(None),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_none() && self.cut.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
