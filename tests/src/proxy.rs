//! `Proxy`: an in-process TCP proxy on 127.0.0.1 that injects faults between upqd and a peer.
//!
//! Forwards, cuts, delays, throttles, blackholes or refuses on command; it owns its threads and
//! sockets only.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often blocked threads look at the controls.
const TICK: Duration = Duration::from_millis(20);
const BUFFER: usize = 64 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the proxy does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Pass bytes both ways.
    Forward,
    /// Accept and hold connections, moving no byte either way (a hung server or network).
    /// Connections caught in it stay dead: when forwarding resumes they are reset.
    Blackhole,
    /// Reset every connection at once, old and new (the server is down).
    Refuse,
}

/// A pending cut: reset the connection that carries the `after`-th client byte, `times` times.
#[derive(Debug, Clone, Copy)]
struct Cut {
    after: u64,
    counted: u64,
    times: u32,
}

struct Controls {
    mode: Mode,
    delay: Duration,
    cut: Option<Cut>,
    /// Bytes per second each connection may pass from client to target (`None`: no cap).
    throttle_up: Option<u64>,
}

struct Conn {
    client: TcpStream,
    upstream: Option<TcpStream>,
    /// Caught by a blackhole: never forwards again.
    doomed: AtomicBool,
    closed: AtomicBool,
    /// Pumps that have finished (two per connected pair).
    pumps_done: AtomicU8,
}

impl Conn {
    /// Marks the connection closed and arranges for an RST when its last handle is dropped.
    fn reset(&self) {
        self.closed.store(true, Ordering::SeqCst);
        set_linger_zero(&self.client);
        if let Some(upstream) = &self.upstream {
            set_linger_zero(upstream);
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

struct Shared {
    target: SocketAddr,
    controls: Mutex<Controls>,
    live: Mutex<Vec<Arc<Conn>>>,
    stop: AtomicBool,
    connections: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    cuts: AtomicU64,
    refused: AtomicU64,
}

impl Shared {
    fn controls(&self) -> MutexGuard<'_, Controls> {
        self.controls.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn live(&self) -> MutexGuard<'_, Vec<Arc<Conn>>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Resets the live connections for which `which` is true and forgets them.
    fn reset_where(&self, which: impl Fn(&Conn) -> bool) {
        let mut live = self.live();
        live.retain(|conn| {
            if which(conn) {
                conn.reset();
                false
            } else {
                true
            }
        });
    }
}

/// A running proxy; dropping it stops it and closes every connection it holds.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on `127.0.0.1:0` and forwards to `target`.
    pub fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            target,
            controls: Mutex::new(Controls {
                mode: Mode::Forward,
                delay: Duration::ZERO,
                cut: None,
                throttle_up: None,
            }),
            live: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            connections: AtomicU64::new(0),
            bytes_up: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        });
        let accept_shared = shared.clone();
        let accept_thread = std::thread::Builder::new()
            .name(format!("proxy-{}", addr.port()))
            .spawn(move || accept_loop(listener, accept_shared))
            .expect("spawn proxy thread");
        Proxy {
            addr,
            shared,
            accept_thread: Some(accept_thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` + `path`: a URL through the proxy.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.shared.controls().mode
    }

    /// Forward normally from now on; connections caught by a blackhole are reset.
    pub fn forward(&self) {
        self.shared.controls().mode = Mode::Forward;
        self.shared
            .reset_where(|conn| conn.doomed.load(Ordering::SeqCst));
    }

    /// Stop moving bytes on every connection, open or new, without closing any.
    pub fn blackhole(&self) {
        self.shared.controls().mode = Mode::Blackhole;
        for conn in self.shared.live().iter() {
            conn.doomed.store(true, Ordering::SeqCst);
        }
    }

    /// Reset every open connection and every new one until `forward`.
    pub fn refuse(&self) {
        self.shared.controls().mode = Mode::Refuse;
        self.shared.reset_where(|_| true);
    }

    /// Resets, `times` times in a row, the connection carrying the `after_bytes`-th byte sent
    /// by clients (counted across connections from now, and again from each cut).
    ///
    /// With `after_bytes` well above a request's headers and below a chunk, each cut lands
    /// inside a PATCH body whichever connection the client reuses.
    pub fn cut_after(&self, after_bytes: u64, times: u32) {
        assert!(after_bytes > 0, "cut after at least one byte");
        self.shared.controls().cut = (times > 0).then_some(Cut {
            after: after_bytes,
            counted: 0,
            times,
        });
    }

    /// Cuts still to come.
    pub fn cuts_pending(&self) -> u32 {
        self.shared.controls().cut.map_or(0, |cut| cut.times)
    }

    /// Waits this long before passing on each read, in both directions.
    pub fn set_delay(&self, delay: Duration) {
        self.shared.controls().delay = delay;
    }

    /// Passes client bytes to the target at about `bytes_per_second` per connection, in small
    /// pieces (a trickle); answers from the target are not slowed. Applies to open
    /// connections too.
    pub fn throttle_up(&self, bytes_per_second: u64) {
        assert!(
            bytes_per_second > 0,
            "a throttle passes at least a byte a second"
        );
        self.shared.controls().throttle_up = Some(bytes_per_second);
    }

    /// Lifts [`Proxy::throttle_up`].
    pub fn unthrottle(&self) {
        self.shared.controls().throttle_up = None;
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Bytes passed from clients to the target.
    pub fn bytes_up(&self) -> u64 {
        self.shared.bytes_up.load(Ordering::SeqCst)
    }

    /// Bytes passed from the target to clients.
    pub fn bytes_down(&self) -> u64 {
        self.shared.bytes_down.load(Ordering::SeqCst)
    }

    /// Connections reset by `cut_after`.
    pub fn cuts_done(&self) -> u64 {
        self.shared.cuts.load(Ordering::SeqCst)
    }

    /// Connections reset at accept while refusing.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// Connections open right now.
    pub fn open_connections(&self) -> usize {
        self.shared.live().len()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.reset_where(|_| true);
        if let Some(thread) = self.accept_thread.take() {
            let _ = thread.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                if let Err(e) = admit(client, &shared) {
                    eprintln!("proxy: connection dropped: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(TICK),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("proxy: accept failed: {e}");
                std::thread::sleep(TICK);
            }
        }
    }
}

fn admit(client: TcpStream, shared: &Arc<Shared>) -> io::Result<()> {
    client.set_nonblocking(false)?;
    client.set_nodelay(true)?;
    let mode = shared.controls().mode;
    if mode == Mode::Refuse {
        shared.refused.fetch_add(1, Ordering::SeqCst);
        set_linger_zero(&client);
        return Ok(());
    }
    let upstream = if mode == Mode::Blackhole {
        None
    } else {
        match TcpStream::connect_timeout(&shared.target, CONNECT_TIMEOUT) {
            Ok(stream) => Some(stream),
            Err(e) => {
                set_linger_zero(&client);
                return Err(e);
            }
        }
    };
    for stream in std::iter::once(&client).chain(upstream.as_ref()) {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(TICK))?;
        stream.set_write_timeout(Some(TICK))?;
    }
    let conn = Arc::new(Conn {
        client,
        upstream,
        doomed: AtomicBool::new(mode == Mode::Blackhole),
        closed: AtomicBool::new(false),
        pumps_done: AtomicU8::new(0),
    });
    shared.live().push(conn.clone());
    if conn.upstream.is_some() {
        for up in [true, false] {
            let (conn, shared) = (conn.clone(), shared.clone());
            std::thread::Builder::new()
                .name(if up { "proxy-up" } else { "proxy-down" }.into())
                .spawn(move || pump(&conn, &shared, up))?;
        }
    }
    Ok(())
}

/// Moves bytes one way until either side closes or the proxy resets the connection.
fn pump(conn: &Arc<Conn>, shared: &Arc<Shared>, up: bool) {
    let upstream = conn
        .upstream
        .as_ref()
        .expect("pumps run on connected pairs");
    let (mut src, mut dst) = if up {
        (&conn.client, upstream)
    } else {
        (upstream, &conn.client)
    };
    let mut buffer = vec![0u8; BUFFER];
    // Under a throttle: when this connection's link is free again.
    let mut link_free_at = Instant::now();
    loop {
        if conn.is_closed() || shared.stop.load(Ordering::SeqCst) {
            break;
        }
        if conn.doomed.load(Ordering::SeqCst) {
            std::thread::sleep(TICK);
            continue;
        }
        let throttle = if up {
            shared.controls().throttle_up
        } else {
            None
        };
        // A throttled read takes about one tick's worth of bytes.
        let capacity = throttle.map_or(BUFFER, |rate| {
            ((rate as f64 * TICK.as_secs_f64()) as usize).clamp(1, BUFFER)
        });
        let read = match src.read(&mut buffer[..capacity]) {
            Ok(0) => {
                // A reset wakes reads with end-of-stream; pass on only a real one.
                if !conn.is_closed() {
                    let _ = dst.shutdown(Shutdown::Write);
                }
                break;
            }
            Ok(n) => n,
            Err(e) if is_timeout(&e) => continue,
            Err(_) => {
                conn.reset();
                break;
            }
        };
        let delay = shared.controls().delay;
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        if let Some(rate) = throttle {
            let now = Instant::now();
            link_free_at =
                link_free_at.max(now) + Duration::from_secs_f64(read as f64 / rate as f64);
            if !wait_until(link_free_at, conn, shared) {
                break;
            }
        }
        let (pass, cut_here) = if up {
            plan_cut(shared, read)
        } else {
            (read, false)
        };
        if write_all(&mut dst, &buffer[..pass], conn, shared).is_err() {
            conn.reset();
            break;
        }
        let counter = if up {
            &shared.bytes_up
        } else {
            &shared.bytes_down
        };
        counter.fetch_add(pass as u64, Ordering::SeqCst);
        if cut_here {
            shared.cuts.fetch_add(1, Ordering::SeqCst);
            conn.reset();
            break;
        }
    }
    // Forget the connection once nothing more will pass; the last handle closes the sockets.
    let both_done = conn.pumps_done.fetch_add(1, Ordering::SeqCst) == 1;
    if conn.is_closed() || both_done {
        let target = Arc::as_ptr(conn);
        shared.live().retain(|c| Arc::as_ptr(c) != target);
    }
}

/// How many of `read` client bytes may pass, and whether the connection is cut after them.
fn plan_cut(shared: &Shared, read: usize) -> (usize, bool) {
    let mut controls = shared.controls();
    let Some(cut) = controls.cut.as_mut() else {
        return (read, false);
    };
    let allowed = cut.after - cut.counted;
    if (read as u64) < allowed {
        cut.counted += read as u64;
        return (read, false);
    }
    cut.times -= 1;
    cut.counted = 0;
    if cut.times == 0 {
        controls.cut = None;
    }
    (allowed as usize, true)
}

/// Sleeps until `at` in ticks; false when the connection or the proxy closed meanwhile.
fn wait_until(at: Instant, conn: &Conn, shared: &Shared) -> bool {
    loop {
        if conn.is_closed() || shared.stop.load(Ordering::SeqCst) {
            return false;
        }
        let now = Instant::now();
        if now >= at {
            return true;
        }
        std::thread::sleep((at - now).min(TICK));
    }
}

fn write_all(
    dst: &mut &TcpStream,
    mut bytes: &[u8],
    conn: &Conn,
    shared: &Shared,
) -> io::Result<()> {
    while !bytes.is_empty() {
        if conn.is_closed() || shared.stop.load(Ordering::SeqCst) {
            return Err(io::Error::other("connection closed by the proxy"));
        }
        match dst.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// With SO_LINGER {on, 0}, closing the socket sends an RST instead of a FIN.
fn set_linger_zero(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd and a correctly sized option value.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    // Wake the pumps and the peer's reads now rather than at the next tick.
    let _ = stream.shutdown(Shutdown::Read);
}
