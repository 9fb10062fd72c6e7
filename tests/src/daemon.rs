//! `Daemon`: the one way tests run `upqd`: started, signalled, stopped, killed and restarted,
//! with `--no-dbus`, on a private bus, or looking for a session bus that is not there.
//!
//! Signals go only to the child this struct spawned, by its PID; Drop kills it if still running.

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::bins;
use crate::bus::PrivateBus;
use crate::env::{run_with_deadline, TestEnv};
use crate::wait::{wait_for, POLL_INTERVAL};

/// How long the daemon may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// SIGTERM must end the daemon within 5 s (DESIGN.md); allow some slack for a loaded machine.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an exit is polled for: short, so that exit times are measured closely.
const EXIT_POLL: Duration = Duration::from_millis(5);
/// How much of the log a failing test prints.
const LOG_TAIL: usize = 80;

/// Which session bus the daemon is given.
enum Bus {
    /// `--no-dbus`: the daemon does not look for one.
    Off,
    /// The address of a private bus the test started.
    Private(String),
    /// No `--no-dbus` and no bus anywhere: the daemon looks for one and finds none.
    Missing,
}

pub struct Daemon<'e> {
    env: &'e TestEnv,
    bus: Bus,
    vars: Vec<(OsString, OsString)>,
    args: Vec<OsString>,
    child: Option<Child>,
    pid: u32,
    /// The ready line of the latest start: `upqd <version> listening on <socket>`.
    pub ready_line: String,
}

impl<'e> Daemon<'e> {
    /// upqd with `--no-dbus`, not started yet.
    pub fn without_bus(env: &'e TestEnv) -> Daemon<'e> {
        Daemon::with(env, Bus::Off)
    }

    fn with(env: &'e TestEnv, bus: Bus) -> Daemon<'e> {
        Daemon {
            env,
            bus,
            vars: Vec::new(),
            args: Vec::new(),
            child: None,
            pid: 0,
            ready_line: String::new(),
        }
    }

    /// upqd on `bus` (no `--no-dbus`), not started yet.
    pub fn on_bus(env: &'e TestEnv, bus: &PrivateBus) -> Daemon<'e> {
        Daemon::with(env, Bus::Private(bus.address().to_string()))
    }

    /// upqd without `--no-dbus` and without `DBUS_SESSION_BUS_ADDRESS` (the environment's
    /// runtime dir has no `bus` socket either): it looks for a session bus and finds none.
    /// Not started yet.
    pub fn missing_bus(env: &'e TestEnv) -> Daemon<'e> {
        Daemon::with(env, Bus::Missing)
    }

    /// An extra environment variable for every start.
    pub fn var(mut self, name: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.vars.push((name.into(), value.into()));
        self
    }

    /// An extra command-line argument for every start.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Extra command-line arguments for every start.
    pub fn args(self, args: &[&str]) -> Self {
        args.iter().fold(self, |daemon, arg| daemon.arg(*arg))
    }

    /// Spawns upqd and waits for its ready line.
    pub fn start(mut self) -> Self {
        self.spawn_and_wait_ready();
        self
    }

    /// Runs `upqd` (`--no-dbus`) with `extra_args` expecting it to exit by itself (a config
    /// error, say).
    pub fn run_to_exit(env: &TestEnv, extra_args: &[&str]) -> Output {
        run_with_deadline(
            Daemon::without_bus(env).args(extra_args).command(),
            READY_TIMEOUT,
        )
    }

    /// The desk's address, as the latest ready line gives it.
    pub fn desk_url(&self) -> Option<String> {
        desk_of_ready_line(&self.ready_line).map(str::to_owned)
    }

    /// The PID of the current (or last) run.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `signal` to the running daemon.
    pub fn signal(&self, signal: libc::c_int) {
        assert!(self.child.is_some(), "upqd is not running");
        // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
        let rc = unsafe { libc::kill(self.pid as libc::pid_t, signal) };
        assert_eq!(
            rc,
            0,
            "kill({}, {signal}): {}",
            self.pid,
            std::io::Error::last_os_error()
        );
    }

    /// True while the child has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("poll upqd").is_none(),
            None => false,
        }
    }

    /// Waits up to `timeout` for the daemon to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut().expect("upqd is not running");
            if let Some(status) = child.try_wait().expect("poll upqd") {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(EXIT_POLL);
        }
    }

    /// SIGTERM the daemon and wait for it to exit; returns its exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.stop_timed().0
    }

    /// SIGTERM and wait; returns the exit status and how long the exit took.
    pub fn stop_timed(&mut self) -> (ExitStatus, Duration) {
        let started = Instant::now();
        self.signal(libc::SIGTERM);
        let status = self
            .wait_exit(STOP_TIMEOUT)
            .unwrap_or_else(|| panic!("upqd did not exit within {STOP_TIMEOUT:?} of SIGTERM"));
        (status, started.elapsed())
    }

    /// `kill -9` the daemon and reap it.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("upqd is not running");
        child.kill().expect("SIGKILL upqd");
        child.wait().expect("reap upqd");
    }

    /// Starts the daemon again with the same environment and flags.
    pub fn restart(&mut self) {
        assert!(
            self.child.is_none(),
            "stop or kill upqd before restarting it"
        );
        self.env.disconnect();
        self.spawn_and_wait_ready();
    }

    /// A `kB` field of `/proc/<pid>/status` (VmRSS, VmHWM, ...), in KiB.
    pub fn proc_status_kib(&self, field: &str) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status.lines().find_map(|line| {
            let rest = line.strip_prefix(field)?.strip_prefix(':')?;
            rest.trim().trim_end_matches("kB").trim().parse().ok()
        })
    }

    /// Context switches so far of the daemon's runtime threads (named `upqd`): each is a
    /// wake-up of the async runtime. The store's own threads are left out.
    pub fn runtime_wakeups(&self) -> u64 {
        let Ok(tasks) = fs::read_dir(format!("/proc/{}/task", self.pid)) else {
            return 0;
        };
        tasks
            .flatten()
            .filter(|task| {
                fs::read_to_string(task.path().join("comm")).is_ok_and(|name| name.trim() == "upqd")
            })
            .filter_map(|task| fs::read_to_string(task.path().join("status")).ok())
            .flat_map(|status| {
                status
                    .lines()
                    .filter(|line| line.contains("ctxt_switches:"))
                    .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
                    .collect::<Vec<_>>()
            })
            .sum()
    }

    /// Where the log is.
    pub fn log_path(&self) -> PathBuf {
        self.env.log_path()
    }

    /// The daemon's log (stderr), all runs so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.env.log_path()).unwrap_or_default()
    }

    /// The log's lines at WARN level.
    pub fn warnings(&self) -> Vec<String> {
        warn_lines(&self.log())
    }

    /// Waits until the log contains `needle`; returns the whole log.
    pub fn wait_log(&self, timeout: Duration, needle: &str) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            if Instant::now() >= deadline {
                panic!(
                    "the log has no {needle:?} after {timeout:?}:\n{}",
                    tail(&log)
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits until the log has a line containing `needle`; returns that line.
    pub fn wait_log_line(&self, timeout: Duration, needle: &str) -> String {
        wait_for(timeout, format!("a upqd log line with {needle:?}"), || {
            self.log()
                .lines()
                .find(|line| line.contains(needle))
                .map(str::to_owned)
        })
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(bins::upqd());
        let mut args = self.env.daemon_args();
        if !matches!(self.bus, Bus::Off) {
            args.retain(|arg| arg != "--no-dbus");
        }
        cmd.args(args).args(&self.args);
        self.env.apply_env(&mut cmd);
        if let Bus::Private(address) = &self.bus {
            cmd.env("DBUS_SESSION_BUS_ADDRESS", address);
        }
        for (name, value) in &self.vars {
            cmd.env(name, value);
        }
        if matches!(self.bus, Bus::Missing) {
            assert!(
                !cmd.get_envs()
                    .any(|(name, value)| name == "DBUS_SESSION_BUS_ADDRESS" && value.is_some()),
                "this daemon is meant to run without a session bus"
            );
            assert!(
                !self.env.runtime_dir().join("bus").exists(),
                "the runtime dir has a bus socket"
            );
        }
        cmd
    }

    fn spawn_and_wait_ready(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.env.log_path())
            .expect("open daemon log");
        let mut cmd = self.command();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        let mut child = cmd.spawn().expect("spawn upqd");
        self.pid = child.id();
        let lines = read_lines(&mut child);
        self.child = Some(child);
        self.ready_line = self.wait_ready(&lines);
    }

    /// Waits for the ready line; the reader thread keeps draining stdout afterwards.
    fn wait_ready(&mut self, lines: &Receiver<String>) -> String {
        // The ready line is the first thing upqd prints on stdout.
        match lines.recv_timeout(READY_TIMEOUT) {
            Ok(line) => {
                let Some(socket) = parse_ready_line(&line) else {
                    panic!("upqd printed {line:?} on stdout instead of its ready line");
                };
                assert_eq!(
                    Path::new(socket),
                    self.env.socket_path(),
                    "upqd listens on another socket than expected: {line:?}"
                );
                line
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.take().map(|mut c| c.wait());
                panic!(
                    "upqd exited before it was ready ({status:?}); log:\n{}",
                    tail(&self.log())
                );
            }
            Err(RecvTimeoutError::Timeout) => {
                panic!(
                    "upqd printed no ready line within {READY_TIMEOUT:?}; log:\n{}",
                    tail(&self.log())
                );
            }
        }
    }
}

impl Drop for Daemon<'_> {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- upqd log ({}) ----\n{}",
                self.env.log_path().display(),
                tail(&self.log())
            );
        }
    }
}

/// `upqd <version> listening on <socket>[ (desk <url>)]` → the socket path.
pub fn parse_ready_line(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("upqd ")?;
    let (version, socket) = rest.split_once(" listening on ")?;
    let socket = match desk_of_ready_line(line) {
        Some(url) => socket.strip_suffix(&format!(" (desk {url})"))?,
        None => socket,
    };
    (!version.is_empty() && !version.contains(' ') && !socket.is_empty()).then_some(socket)
}

/// The desk's address in a ready line, when it serves.
pub fn desk_of_ready_line(line: &str) -> Option<&str> {
    line.strip_suffix(')')?
        .rsplit_once(" (desk ")
        .map(|(_, url)| url)
}

/// The lines of a `upqd` log written at WARN level.
pub fn warn_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|line| line.split_whitespace().take(3).any(|word| word == "WARN"))
        .map(str::to_owned)
        .collect()
}

fn read_lines(child: &mut Child) -> Receiver<String> {
    let stdout = child.stdout.take().expect("upqd stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // Nobody listens after the ready line; keep draining so the daemon never blocks.
            let _ = tx.send(line);
        }
    });
    rx
}

fn tail(text: &str) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(LOG_TAIL)..].join("\n")
}
