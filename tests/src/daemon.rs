//! `Daemon`: a `upqd` child process started, stopped, killed and restarted by a test.
//!
//! Signals go only to the child this struct spawned, by its PID; Drop kills it if still running.

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::bins;
use crate::env::{run_with_deadline, TestEnv};
use crate::wait::POLL_INTERVAL;

/// How long the daemon may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// SIGTERM must end the daemon within 5 s (DESIGN.md); allow some slack for a loaded machine.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Daemon<'e> {
    env: &'e TestEnv,
    extra_args: Vec<OsString>,
    child: Option<Child>,
    pid: u32,
    /// The ready line of the latest start: `upqd <version> listening on <socket>`.
    pub ready_line: String,
}

impl<'e> Daemon<'e> {
    /// Spawns `upqd` with the environment's flags plus `extra_args` and waits until it is ready.
    pub fn start(env: &'e TestEnv, extra_args: &[&str]) -> Daemon<'e> {
        let mut daemon = Daemon {
            env,
            extra_args: extra_args.iter().map(OsString::from).collect(),
            child: None,
            pid: 0,
            ready_line: String::new(),
        };
        daemon.spawn_and_wait_ready();
        daemon
    }

    /// Runs `upqd` with `extra_args` expecting it to exit by itself (a config error, say).
    pub fn run_to_exit(env: &TestEnv, extra_args: &[&str]) -> Output {
        let mut cmd = Command::new(bins::upqd());
        cmd.args(env.daemon_args()).args(extra_args);
        env.apply_env(&mut cmd);
        run_with_deadline(cmd, READY_TIMEOUT)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// True while the child has not exited.
    pub fn is_alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("poll upqd").is_none(),
            None => false,
        }
    }

    /// `kill -9` the daemon and reap it.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("upqd is not running");
        child.kill().expect("SIGKILL upqd");
        child.wait().expect("reap upqd");
    }

    /// SIGTERM the daemon and wait for it to exit; returns its exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("upqd is not running");
        // Our own child, addressed by its PID.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("poll upqd") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("upqd did not exit within {STOP_TIMEOUT:?} of SIGTERM");
            }
            std::thread::sleep(POLL_INTERVAL);
        }
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

    /// The daemon's log (stderr), all runs so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.env.log_path()).unwrap_or_default()
    }

    fn spawn_and_wait_ready(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.env.log_path())
            .expect("open daemon log");
        let mut cmd = Command::new(bins::upqd());
        cmd.args(self.env.daemon_args())
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        self.env.apply_env(&mut cmd);
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
                    socket,
                    self.env.socket_path().to_string_lossy(),
                    "upqd listens on another socket than expected: {line:?}"
                );
                line
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.take().map(|mut c| c.wait());
                panic!(
                    "upqd exited before it was ready ({status:?}); log:\n{}",
                    tail(&self.log(), 60)
                );
            }
            Err(RecvTimeoutError::Timeout) => {
                panic!(
                    "upqd printed no ready line within {READY_TIMEOUT:?}; log:\n{}",
                    tail(&self.log(), 60)
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
                tail(&self.log(), 80)
            );
        }
    }
}

/// `upqd <version> listening on <socket>` → the socket path.
pub fn parse_ready_line(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("upqd ")?;
    let (version, socket) = rest.split_once(" listening on ")?;
    (!version.is_empty() && !version.contains(' ') && !socket.is_empty()).then_some(socket)
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

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
