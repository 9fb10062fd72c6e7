//! `HttpServer`: the scaffolding every in-process HTTP test server stands on (the recording
//! shim, the chaos front, the TikTok and YouTube servers, and the conformance servers still to
//! come for new destinations and sign-in providers): a runtime of its own, a loopback listener,
//! one hyper HTTP/1.1 connection per accepted socket, a way for a handler to end its connection
//! without answering, with a FIN or an RST, and the two ways a handler reads a request body.
//!
//! A new server writes only its handler on top of this; it owns only its runtime and listener,
//! and dropping it ends every connection it accepted.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// How long a dropped server waits for its tasks to end.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// What a handler's connection does when the handler asks to end it (see [`Closer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseWith {
    /// An orderly close: the client sees the connection end without an answer.
    Fin,
    /// SO_LINGER 0: the client sees the connection reset.
    Rst,
}

/// Handed to each request's handler: `notify_one()` ends the connection without an answer.
pub type Closer = Arc<Notify>;

/// A running server: its runtime and its loopback address. Dropping it stops it.
pub struct HttpServer {
    addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl HttpServer {
    /// Serves HTTP/1.1 on `127.0.0.1:0` on a two-thread runtime whose threads are called
    /// `name`. `handler` is built once the address is known (a server that writes its own
    /// address into answers needs it) and answers each request.
    pub fn start<H, F, B>(
        name: &str,
        close_with: CloseWith,
        handler: impl FnOnce(SocketAddr) -> H,
    ) -> HttpServer
    where
        H: Fn(Request<Incoming>, Closer) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Response<B>> + Send + 'static,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(name)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{name} runtime: {e}"));
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .unwrap_or_else(|e| panic!("bind {name}: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("{name} address: {e}"));
        runtime.spawn(accept_loop(listener, handler(addr), close_with));
        HttpServer {
            addr,
            runtime: Some(runtime),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(SHUTDOWN_TIMEOUT);
        }
    }
}

async fn accept_loop<H, F, B>(listener: TcpListener, handler: H, close_with: CloseWith)
where
    H: Fn(Request<Incoming>, Closer) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let fd = stream.as_raw_fd();
        let handler = handler.clone();
        tokio::spawn(async move {
            let closer = Closer::default();
            let service_closer = closer.clone();
            let service = hyper::service::service_fn(move |request| {
                let (handler, closer) = (handler.clone(), service_closer.clone());
                async move { Ok::<_, Infallible>(handler(request, closer).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                biased;
                _ = closer.notified() => {
                    // The socket is still open here (the connection owns it).
                    if close_with == CloseWith::Rst {
                        set_linger_zero(fd);
                    }
                }
                _ = connection => {}
            }
        });
    }
}

/// Reads and discards a request body (at most `limit` bytes), so the client that sent it can
/// read the answer.
pub async fn drain_body(mut body: Incoming, limit: u64) {
    let mut seen = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return };
        if let Some(data) = frame.data_ref() {
            seen += data.len() as u64;
            if seen > limit {
                return;
            }
        }
    }
}

/// Reads a small request body whole; an error when it breaks off or passes `limit` bytes.
pub async fn read_body(mut body: Incoming, limit: usize) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("reading the request body: {e}"))?;
        if let Some(data) = frame.data_ref() {
            bytes.extend_from_slice(data);
            if bytes.len() > limit {
                return Err(format!("the request body is over {limit} bytes"));
            }
        }
    }
    Ok(bytes)
}

/// With SO_LINGER {on, 0}, closing the socket sends an RST instead of a FIN.
fn set_linger_zero(fd: RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `fd` is a socket the caller still owns, and the option value is sized correctly.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
