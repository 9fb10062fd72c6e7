//! A private session bus with the real `upqd` on it, to run `upqctl` over the socket and `--bus`.
//! Every process here is started by the test and killed by its PID when its guard drops.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long any one step may take on a busy machine.
pub const DEADLINE: Duration = Duration::from_secs(30);
/// Pause between two looks at a condition that has no event to wait on.
const POLL: Duration = Duration::from_millis(50);

/// The workspace's target dir: `$CARGO_TARGET_DIR`, else `<workspace>/target`.
fn target_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("ctl/ has a parent")
        .to_path_buf();
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace.join(dir),
        _ => workspace.join("target"),
    }
}

/// `target/debug/upqd` (or the profile named by `UPQ_TEST_PROFILE`); never built from here.
pub fn upqd_binary() -> PathBuf {
    let profile = std::env::var("UPQ_TEST_PROFILE").unwrap_or_else(|_| "debug".into());
    let path = target_dir().join(profile).join("upqd");
    assert!(
        path.is_file(),
        "{} is missing; build it first: cargo build -p upq-daemon --bins",
        path.display()
    );
    path
}

/// Sends `signal` to a process this test started.
fn signal(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) has no memory preconditions; the PID is one of our own processes.
        unsafe { libc::kill(pid, signal) };
    }
}

/// Runs a command to its end, killing it if it takes longer than `DEADLINE`.
pub fn run(mut command: Command) -> Output {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let pid = child.id();
    let (done, finished) = mpsc::channel();
    thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match finished.recv_timeout(DEADLINE) {
        Ok(output) => output.expect("collect the output"),
        Err(_) => {
            // Not reaped yet, so the PID is still this child's.
            signal(pid, libc::SIGKILL);
            panic!("{command:?} did not finish within {DEADLINE:?}");
        }
    }
}

/// Waits until `condition` holds, failing the test after `DEADLINE`.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(POLL);
    }
}

/// The lines a child prints on stdout, as they come.
pub fn lines_of(child: &mut Child) -> Receiver<String> {
    lines(child.stdout.take().expect("stdout is piped"))
}

/// The lines of a pipe, as they come.
fn lines(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (sender, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            // Keep draining when nobody listens any more, so the child never blocks on a pipe.
            let _ = sender.send(line);
        }
    });
    lines
}

/// A private `dbus-daemon`; it forks, so it is stopped by the PID it printed.
pub struct PrivateBus {
    pub address: String,
    pid: u32,
}

impl PrivateBus {
    pub fn start(dir: &Path) -> PrivateBus {
        let mut command = Command::new("dbus-daemon");
        command.args(["--session", "--print-address=1", "--print-pid=1", "--fork"]);
        command.arg(format!("--address=unix:path={}", dir.join("bus").display()));
        let output = run(command);
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "dbus-daemon failed: {output:?}");
        let mut lines = text.lines();
        let address = lines.next().unwrap_or_default().to_owned();
        let pid = lines.next().and_then(|line| line.trim().parse().ok());
        let pid = pid.unwrap_or_else(|| panic!("dbus-daemon printed no PID: {text:?}"));
        assert!(address.starts_with("unix:"), "bus address: {text:?}");
        PrivateBus { address, pid }
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        signal(self.pid, libc::SIGTERM);
    }
}

/// Which door `upqctl` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Socket,
    Bus,
}

/// A temp home, a private bus, and (once started) `upqd` serving both doors.
pub struct World {
    pub dir: tempfile::TempDir,
    pub bus: PrivateBus,
    upqd: Option<Child>,
}

impl World {
    /// A bus without a daemon.
    pub fn bus_only() -> World {
        let dir = tempfile::tempdir().expect("temp dir");
        for sub in ["home", "config", "data", "run"] {
            fs::create_dir_all(dir.path().join(sub)).expect("create dirs");
        }
        let bus = PrivateBus::start(dir.path());
        World {
            dir,
            bus,
            upqd: None,
        }
    }

    /// A bus with `upqd` on it, ready on the socket and owning `dev.upq.upq1`.
    pub fn start() -> World {
        let mut world = World::bus_only();
        world.start_upqd();
        world
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("upqd.sock")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("upqd.log")
    }

    /// This world's environment and nothing of the caller's.
    fn apply_env(&self, command: &mut Command) {
        let root = self.dir.path();
        for var in [
            "UPQ_SOCKET",
            "UPQ_CONFIG",
            "UPQ_DATA_DIR",
            "DBUS_SESSION_BUS_ADDRESS",
        ] {
            command.env_remove(var);
        }
        command
            .env("HOME", root.join("home"))
            .env("XDG_CONFIG_HOME", root.join("config"))
            .env("XDG_DATA_HOME", root.join("data"))
            .env("XDG_RUNTIME_DIR", root.join("run"))
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus.address)
            .current_dir(root);
    }

    /// Starts `upqd` in this world (after `bus_only`, once a test has written its config).
    pub fn start_upqd(&mut self) {
        let log = File::create(self.log_path()).expect("daemon log");
        let mut command = Command::new(upqd_binary());
        command
            .arg("--data-dir")
            .arg(self.dir.path().join("queue"))
            .arg("--socket")
            .arg(self.socket())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        self.apply_env(&mut command);
        let mut child = command.spawn().expect("start upqd");
        let lines = lines_of(&mut child);
        self.upqd = Some(child);
        // The ready line says the socket listens; the bus name may come a moment later.
        match lines.recv_timeout(DEADLINE) {
            Ok(line) => assert!(line.contains(" listening on "), "upqd printed {line:?}"),
            Err(_) => panic!("upqd is not ready:\n{}", self.log()),
        }
        let mut wait = Command::new("gdbus");
        wait.args(["wait", "--address", &self.bus.address, "--timeout"])
            .arg(DEADLINE.as_secs().to_string())
            .arg("dev.upq.upq1");
        let waited = run(wait);
        assert!(
            waited.status.success(),
            "upqd did not take dev.upq.upq1: {waited:?}\n{}",
            self.log()
        );
    }

    /// SIGTERM to the daemon, then waits for it to exit.
    pub fn stop_upqd(&mut self) {
        if let Some(mut child) = self.upqd.take() {
            signal(child.id(), libc::SIGTERM);
            let (done, finished) = mpsc::channel();
            let pid = child.id();
            thread::spawn(move || {
                let _ = done.send(child.wait());
            });
            if finished.recv_timeout(DEADLINE).is_err() {
                signal(pid, libc::SIGKILL);
                panic!("upqd did not stop within {DEADLINE:?}");
            }
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `upqctl` over one door, ready to be run or spawned.
    pub fn command(&self, via: Via, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_upqctl"));
        match via {
            Via::Socket => command.arg("--socket").arg(self.socket()),
            Via::Bus => command.arg("--bus"),
        };
        command.args(args);
        self.apply_env(&mut command);
        command
    }

    pub fn ctl(&self, via: Via, args: &[&str]) -> Output {
        run(self.command(via, args))
    }

    /// `upqctl ARGS --json` over the socket, which must succeed.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut with_json = args.to_vec();
        with_json.push("--json");
        let output = self.ctl(Via::Socket, &with_json);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {output:?}");
        serde_json::from_slice(&output.stdout).expect("one JSON document")
    }

    /// A file of `size` bytes under the world's root.
    pub fn file(&self, name: &str, size: usize) -> PathBuf {
        let path = self.dir.path().join(name);
        let bytes: Vec<u8> = (0..size).map(|index| (index % 251) as u8).collect();
        fs::write(&path, bytes).expect("write a video file");
        path
    }

    /// Queues a file over the socket and returns its id.
    pub fn add(&self, file: &Path, flags: &[&str]) -> u64 {
        let path = file.to_str().expect("UTF-8 temp path");
        let mut args = vec!["add", path];
        args.extend_from_slice(flags);
        self.json(&args)["id"].as_u64().expect("a job id")
    }

    pub fn state(&self, id: u64) -> String {
        let job = self.json(&["show", &id.to_string()]);
        job["state"].as_str().unwrap_or_default().to_owned()
    }

    pub fn wait_for_state(&self, id: u64, state: &str) {
        wait_until(&format!("job {id} to be {state}"), || {
            self.state(id) == state
        });
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(mut child) = self.upqd.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!("---- upqd log ----\n{}", tail.join("\n"));
        }
    }
}

/// Every ASCII digit as `#`: ids, times and counts, for outputs of twin jobs.
pub fn digits_masked(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .collect()
}

/// `value` without the keys that change with time (anywhere in it).
pub fn without_volatile(value: &Value, volatile: &[&str]) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(key, _)| !volatile.contains(&key.as_str()))
                .map(|(key, inner)| (key.clone(), without_volatile(inner, volatile)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| without_volatile(item, volatile))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A spawned `upqctl` whose output is read as it comes.
pub struct Running {
    child: Child,
    pub stdout: Receiver<String>,
    pub stderr: Receiver<String>,
}

impl Running {
    pub fn spawn(mut command: Command) -> Running {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let stdout = lines_of(&mut child);
        let stderr = lines(child.stderr.take().expect("stderr is piped"));
        Running {
            child,
            stdout,
            stderr,
        }
    }

    /// Waits for the child to exit: its exit code, the rest of stdout and of stderr.
    pub fn finish(mut self) -> (i32, Vec<String>, Vec<String>) {
        let deadline = Instant::now() + DEADLINE;
        let rest = |lines: &Receiver<String>| {
            let mut rest = Vec::new();
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match lines.recv_timeout(left) {
                    Ok(line) => rest.push(line),
                    Err(RecvTimeoutError::Disconnected) => return Some(rest),
                    Err(RecvTimeoutError::Timeout) => return None,
                }
            }
        };
        let (Some(stdout), Some(stderr)) = (rest(&self.stdout), rest(&self.stderr)) else {
            let _ = self.child.kill();
            let _ = self.child.wait();
            panic!("upqctl did not finish within {DEADLINE:?}");
        };
        let status = self.child.wait().expect("reap upqctl");
        (status.code().unwrap_or(-1), stdout, stderr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Reaped already after `finish`; otherwise stopped here, also when a test fails.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits for the next line, failing after `DEADLINE`.
pub fn next_line(lines: &Receiver<String>, what: &str) -> String {
    lines
        .recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("no line from {what} within {DEADLINE:?}"))
}
