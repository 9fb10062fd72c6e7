//! `TestEnv`: one temp dir per test with its own XDG dirs, config, sources and socket.
//!
//! Runs `upqctl` against it with a deadline; never reads or writes the user's real dirs.

use std::cell::RefCell;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use upq_proto::JobView;

use crate::bins;
use crate::client::Client;
use crate::daemon::Daemon;
use crate::files::SourceFile;

/// The longest any `upqctl` call may take before the test fails.
const CTL_TIMEOUT: Duration = Duration::from_secs(180);

/// A private world for one test: HOME and XDG dirs under a fresh temp dir.
pub struct TestEnv {
    dir: Option<TempDir>,
    root: PathBuf,
    /// Set when the daemon and `upqctl` get an explicit `--socket`.
    socket_flag: Option<PathBuf>,
    client: RefCell<Option<Client>>,
    /// Extra environment variables for the daemon and `upqctl` (secrets in configs, say).
    vars: RefCell<Vec<(OsString, OsString)>>,
}

impl TestEnv {
    /// A new environment in a unique folder under the system temp dir.
    pub fn new(name: &str) -> TestEnv {
        let dir = tempfile::Builder::new()
            .prefix(&format!("upq-{name}-"))
            .tempdir_in(std::env::temp_dir())
            .expect("create temp dir");
        let root = dir.path().to_path_buf();
        for sub in ["home", "config", "data", "runtime", "videos"] {
            fs::create_dir_all(root.join(sub)).expect("create test dirs");
        }
        // XDG_RUNTIME_DIR must be private to its user.
        fs::set_permissions(root.join("runtime"), fs::Permissions::from_mode(0o700))
            .expect("chmod runtime dir");
        TestEnv {
            dir: Some(dir),
            root,
            socket_flag: None,
            client: RefCell::new(None),
            vars: RefCell::new(Vec::new()),
        }
    }

    /// Like [`TestEnv::new`], but the daemon and `upqctl` are given `--socket <root>/ctl.sock`.
    pub fn with_socket_flag(name: &str) -> TestEnv {
        let mut env = TestEnv::new(name);
        env.socket_flag = Some(env.root.join("ctl.sock"));
        env
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    pub fn config_home(&self) -> PathBuf {
        self.root.join("config")
    }

    pub fn data_home(&self) -> PathBuf {
        self.root.join("data")
    }

    pub fn runtime_dir(&self) -> PathBuf {
        self.root.join("runtime")
    }

    /// The default config file, `$XDG_CONFIG_HOME/upq/config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.config_home().join("upq").join("config.toml")
    }

    /// The default data dir, `$XDG_DATA_HOME/upq`.
    pub fn data_dir(&self) -> PathBuf {
        self.data_home().join("upq")
    }

    /// The default `local` destination, `$XDG_DATA_HOME/upq/outbox`.
    pub fn default_outbox(&self) -> PathBuf {
        self.data_dir().join("outbox")
    }

    /// The socket the daemon listens on and `upqctl` talks to.
    pub fn socket_path(&self) -> PathBuf {
        match &self.socket_flag {
            Some(path) => path.clone(),
            None => self.runtime_dir().join("upq").join("upqd.sock"),
        }
    }

    /// Where the daemon's stderr goes (appended across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.root.join("upqd.log")
    }

    /// Writes the config file at its default place.
    pub fn write_config(&self, toml: &str) {
        let path = self.config_path();
        fs::create_dir_all(path.parent().expect("config has a folder")).expect("mkdir config");
        fs::write(&path, toml).expect("write config");
    }

    /// Writes a config with a `[daemon]` table holding `daemon_keys` and a `local` dir
    /// destination at `<root>/outbox` (created) with the given chunk size; returns the outbox.
    pub fn write_local_config(&self, daemon_keys: &str, chunk_size: &str) -> PathBuf {
        let outbox = self.root.join("outbox");
        fs::create_dir_all(&outbox).expect("create outbox");
        self.write_config(&format!(
            "[daemon]\n{daemon_keys}\n\n[destinations.local]\nkind = \"dir\"\npath = {}\nchunk_size = \"{chunk_size}\"\n",
            toml_string(&outbox)
        ));
        outbox
    }

    /// Creates a source video of `size` bytes under `<root>/videos`, content seeded by its name.
    pub fn source(&self, name: &str, size: u64) -> SourceFile {
        SourceFile::create(&self.root.join("videos").join(name), size, seed_of(name))
    }

    /// Sets an environment variable for every daemon and `upqctl` started from now on.
    pub fn set_var(&self, name: impl Into<OsString>, value: impl Into<OsString>) {
        self.vars.borrow_mut().push((name.into(), value.into()));
    }

    /// Puts this environment (and nothing of the caller's) into a command.
    pub fn apply_env(&self, cmd: &mut Command) {
        for var in [
            "UPQ_CONFIG",
            "UPQ_DATA_DIR",
            "UPQ_SOCKET",
            "DBUS_SESSION_BUS_ADDRESS",
            "DBUS_SYSTEM_BUS_ADDRESS",
            "XDG_CONFIG_DIRS",
            "XDG_DATA_DIRS",
        ] {
            cmd.env_remove(var);
        }
        // The machine's own system bus stays out of the tests: its NetworkManager could
        // say "limited connectivity" and hold uploads back. A test sets its own.
        cmd.env(
            "DBUS_SYSTEM_BUS_ADDRESS",
            format!("unix:path={}", self.root.join("no-system-bus").display()),
        );
        cmd.env("HOME", self.home())
            .env("XDG_CONFIG_HOME", self.config_home())
            .env("XDG_DATA_HOME", self.data_home())
            .env("XDG_RUNTIME_DIR", self.runtime_dir())
            .current_dir(&self.root);
        for (name, value) in self.vars.borrow().iter() {
            cmd.env(name, value);
        }
    }

    /// The daemon's command-line flags for this environment.
    pub fn daemon_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["--no-dbus".into()];
        if let Some(socket) = &self.socket_flag {
            args.push("--socket".into());
            args.push(socket.into());
        }
        args
    }

    /// Starts `upqd` and waits for its ready line.
    pub fn start_daemon(&self) -> Daemon<'_> {
        Daemon::without_bus(self).start()
    }

    /// Starts `upqd` with extra flags and waits for its ready line.
    pub fn start_daemon_with(&self, extra_args: &[&str]) -> Daemon<'_> {
        Daemon::without_bus(self).args(extra_args).start()
    }

    /// Runs `upqctl --socket <socket> ARGS...`.
    pub fn ctl<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(bins::upqctl());
        cmd.arg("--socket").arg(self.socket_path()).args(args);
        self.apply_env(&mut cmd);
        run_with_deadline(cmd, CTL_TIMEOUT)
    }

    /// Runs `upqctl ARGS...` with no `--socket`: the socket comes from the environment.
    pub fn ctl_plain<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(bins::upqctl());
        cmd.args(args);
        self.apply_env(&mut cmd);
        run_with_deadline(cmd, CTL_TIMEOUT)
    }

    /// Runs `upqctl ARGS... --json`, expects success, and parses stdout as one JSON document.
    pub fn ctl_json<I, S>(&self, args: I) -> Value
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().into()).collect();
        args.push("--json".into());
        let output = self.ctl(&args);
        output.assert_ok(&format!("upqctl {args:?}"));
        parse_json(&output, &args)
    }

    /// `upqctl add FILE EXTRA...`: expects success and returns the printed job id.
    pub fn add(&self, file: &SourceFile, extra: &[&str]) -> u64 {
        let mut args = vec!["add", file.arg()];
        args.extend_from_slice(extra);
        let output = self.ctl(&args);
        output.assert_ok(&format!("upqctl {args:?}"));
        let text = output.stdout_text();
        text.trim().parse().unwrap_or_else(|_| {
            panic!("`upqctl add` should print just the job id, printed {text:?}")
        })
    }

    /// `upqctl show ID --json`, as a job with its history.
    pub fn show(&self, id: u64) -> JobView {
        let value = self.ctl_json(["show", &id.to_string()]);
        job_from_value(value)
    }

    /// `upqctl list [--all] --json`.
    pub fn list(&self, all: bool) -> Vec<JobView> {
        let value = if all {
            self.ctl_json(["list", "--all"])
        } else {
            self.ctl_json(["list"])
        };
        serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("list --json is not an array of jobs ({e}): {value}"))
    }

    /// `upqctl drafts --json`.
    pub fn drafts(&self) -> Vec<JobView> {
        let value = self.ctl_json(["drafts"]);
        serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("drafts --json is not an array of jobs ({e}): {value}"))
    }

    /// `upqctl wait ID --timeout Ns`: expects exit 0 (published), with the job shown otherwise.
    pub fn wait_published(&self, id: u64, timeout_secs: u64) {
        let output = self.ctl([
            "wait",
            &id.to_string(),
            "--timeout",
            &format!("{timeout_secs}s"),
        ]);
        if output.code() != 0 {
            let job = self.ctl(["show", &id.to_string(), "--json"]);
            panic!(
                "upqctl wait {id} exited {} (stderr: {}); the job: {}",
                output.code(),
                output.stderr_text().trim(),
                job.stdout_text()
            );
        }
    }

    /// The job as the daemon reports it right now, read over the socket (cheap, for polling).
    pub fn job(&self, id: u64) -> JobView {
        self.with_client(|client| client.show(id))
    }

    /// Runs `f` with a socket connection, reconnecting once when the old one broke.
    pub fn with_client<T>(&self, mut f: impl FnMut(&mut Client) -> std::io::Result<T>) -> T {
        let mut slot = self.client.borrow_mut();
        if let Some(client) = slot.as_mut() {
            if let Ok(value) = f(client) {
                return value;
            }
        }
        let mut client = Client::connect(&self.socket_path())
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.socket_path().display()));
        let value = f(&mut client).expect("request over a fresh connection");
        *slot = Some(client);
        value
    }

    /// Drops the cached socket connection (before a daemon restart, for instance).
    pub fn disconnect(&self) {
        self.client.borrow_mut().take();
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        self.disconnect();
        if std::thread::panicking() && std::env::var_os("UPQ_KEEP_TEST_DIRS").is_some() {
            if let Some(dir) = self.dir.take() {
                eprintln!("keeping {}", dir.keep().display());
            }
        }
    }
}

/// Parses a job object (`show --json`, `add --json`), with the raw JSON in the panic.
pub fn job_from_value(value: Value) -> JobView {
    serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("not a job object ({e}): {value}"))
}

fn parse_json(output: &Output, args: &[OsString]) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "upqctl {args:?} printed no single JSON document ({e}): {}",
            output.stdout_text()
        )
    })
}

/// Runs a command to completion, killing it (by its PID) and failing after `timeout`.
pub fn run_with_deadline(mut cmd: Command, timeout: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(output) => output.expect("collect command output"),
        Err(_) => {
            // The waiting thread has not reaped it yet, so the PID is still this child's.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("{cmd:?} did not finish within {timeout:?}");
        }
    }
}

/// A path as a TOML basic string, quotes included.
pub fn toml_string(path: &Path) -> String {
    let text = path.to_str().expect("temp paths are UTF-8");
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn seed_of(name: &str) -> u64 {
    // FNV-1a: a stable seed per file name.
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Small conveniences on a finished command.
pub trait OutputExt {
    /// The exit code; panics when the process died from a signal.
    fn code(&self) -> i32;
    fn stdout_text(&self) -> String;
    fn stderr_text(&self) -> String;
    /// Panics with both streams unless the command exited 0.
    fn assert_ok(&self, what: &str) -> &Self;
}

impl OutputExt for Output {
    fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("killed by a signal: {:?}", self.status))
    }

    fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    fn assert_ok(&self, what: &str) -> &Self {
        assert!(
            self.status.success(),
            "{what} failed with {:?}\nstdout: {}\nstderr: {}",
            self.status,
            self.stdout_text(),
            self.stderr_text()
        );
        self
    }
}
