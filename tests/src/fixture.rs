//! `TusRig` and `TusRun`: the usual scene of a tus test in one place: a @tus/server, the front
//! between it and upqd (none, the fault proxy or the recording shim), the config, the daemon
//! (with `--no-dbus` or on a private bus), the event log, one source video, and its job.
//!
//! Builds on the other harness modules and adds no behaviour of its own; it never touches a
//! process or folder it did not create.

use std::time::Duration;

use upq_proto::JobView;

use crate::bus::PrivateBus;
use crate::daemon::Daemon;
use crate::env::TestEnv;
use crate::events::EventLog;
use crate::files::SourceFile;
use crate::proxy::Proxy;
use crate::shim::Shim;
use crate::tus::{tus_config, wait_progress, TusServer};

/// How long a job may take to reach the progress a test waits for.
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(60);

/// Destination keys for stall tests: 1 MiB chunks, a long `io_timeout` (so that only stall
/// detection ends an attempt) and a short `connect_timeout`.
pub const STALL_LINK: &str =
    "chunk_size = \"1MiB\"\nio_timeout = \"60s\"\nconnect_timeout = \"5s\"";

/// What stands between upqd and the tus server.
enum Front {
    Direct,
    Proxy(Proxy),
    Shim(Shim),
}

/// The config keys of a tus test, as [`tus_config`] takes them.
#[derive(Clone, Copy)]
pub struct TusKeys<'a> {
    /// Keys of `[daemon]`.
    pub daemon: &'a str,
    /// Keys of `[daemon.retry]`.
    pub retry: &'a str,
    /// Keys of `[destinations.tus]` after the endpoint.
    pub tus: &'a str,
}

/// A tus server with its front and a written config; the daemon is not started yet.
pub struct TusRig<'e> {
    env: &'e TestEnv,
    pub server: TusServer,
    front: Front,
    daemon: Daemon<'e>,
    subscribe: bool,
}

impl<'e> TusRig<'e> {
    /// upqd talks to the server directly.
    pub fn direct(env: &'e TestEnv, keys: TusKeys) -> TusRig<'e> {
        TusRig::with_front(env, keys, |_| Front::Direct)
    }

    /// upqd talks to the server through the fault proxy.
    pub fn proxied(env: &'e TestEnv, keys: TusKeys) -> TusRig<'e> {
        TusRig::with_front(env, keys, |server| {
            Front::Proxy(Proxy::start(server.addr()))
        })
    }

    /// upqd talks to the server through the recording shim.
    pub fn shimmed(env: &'e TestEnv, keys: TusKeys) -> TusRig<'e> {
        TusRig::with_front(env, keys, |server| Front::Shim(Shim::start(server.addr())))
    }

    fn with_front(
        env: &'e TestEnv,
        keys: TusKeys,
        front: impl FnOnce(&TusServer) -> Front,
    ) -> TusRig<'e> {
        let server = TusServer::start(env);
        let front = front(&server);
        let endpoint = match &front {
            Front::Direct => server.endpoint.clone(),
            Front::Proxy(proxy) => proxy.url("/files/"),
            Front::Shim(shim) => shim.endpoint(),
        };
        env.write_config(&tus_config(&endpoint, keys.daemon, keys.retry, keys.tus));
        TusRig {
            env,
            server,
            front,
            daemon: Daemon::without_bus(env),
            subscribe: false,
        }
    }

    /// The daemon will run on `bus` instead of with `--no-dbus`.
    pub fn on_bus(mut self, bus: &PrivateBus) -> Self {
        self.daemon = Daemon::on_bus(self.env, bus);
        self
    }

    /// The run will collect the daemon's events in an [`EventLog`].
    pub fn with_events(mut self) -> Self {
        self.subscribe = true;
        self
    }

    /// The shim in front of the server; panics for another front.
    pub fn shim(&self) -> &Shim {
        front_shim(&self.front)
    }

    /// Makes a source video `name` of `size` bytes, starts the daemon and subscribes to its
    /// events if asked to. The daemon comes apart from the run, so that a test can stop and
    /// restart it while it holds on to the run's servers.
    pub fn start(self, name: &str, size: u64) -> (TusRun<'e>, Daemon<'e>) {
        let video = self.env.source(name, size);
        let daemon = self.daemon.start();
        let events = self.subscribe.then(|| EventLog::subscribe(self.env));
        let run = TusRun {
            events,
            video,
            front: self.front,
            server: self.server,
            env: self.env,
        };
        (run, daemon)
    }
}

/// A started [`TusRig`]: the daemon runs and the source video exists.
pub struct TusRun<'e> {
    events: Option<EventLog>,
    pub video: SourceFile,
    front: Front,
    pub server: TusServer,
    pub env: &'e TestEnv,
}

impl TusRun<'_> {
    /// Adds the video to the `tus` destination with `extra` flags; returns the job id.
    pub fn add(&self, extra: &[&str]) -> u64 {
        let mut args = vec!["--to", "tus"];
        args.extend_from_slice(extra);
        self.env.add(&self.video, &args)
    }

    /// Adds the video and waits until at least `bytes` of it are acknowledged.
    pub fn add_until(&self, bytes: u64) -> (u64, JobView) {
        let id = self.add(&[]);
        (id, wait_progress(self.env, id, bytes, PROGRESS_TIMEOUT))
    }

    /// The event log; panics unless the rig asked for one.
    pub fn events(&self) -> &EventLog {
        self.events
            .as_ref()
            .expect("the rig was built without with_events()")
    }

    /// The fault proxy in front of the server; panics for another front.
    pub fn proxy(&self) -> &Proxy {
        match &self.front {
            Front::Proxy(proxy) => proxy,
            _ => panic!("this run has no proxy in front of the server"),
        }
    }

    /// The shim in front of the server; panics for another front.
    pub fn shim(&self) -> &Shim {
        front_shim(&self.front)
    }
}

fn front_shim(front: &Front) -> &Shim {
    match front {
        Front::Shim(shim) => shim,
        _ => panic!("this run has no shim in front of the server"),
    }
}
