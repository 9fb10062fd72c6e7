//! `TusServer`: the official tus server (@tus/server + @tus/file-store under Node) as a test peer.
//!
//! Spawns `node tests/tus-server/server.mjs`, reads its FileStore folder, and kills only its own child.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::bins::workspace_root;
use crate::env::{toml_string, TestEnv};
use crate::http;

/// How long Node may take to print its ready line on a loaded machine.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Options of one server instance (see `server.mjs`).
#[derive(Debug, Clone, Default)]
pub struct TusOptions {
    /// Sent as `Tus-Max-Size`; larger uploads are refused with 413.
    pub max_size: Option<u64>,
    /// Uploads expire this long after creation.
    pub expiration: Option<Duration>,
    /// Answer POST with a relative `Location`.
    pub relative_location: bool,
    /// Folder name under the test's root (default `tus-store`).
    pub store_name: Option<String>,
}

/// A running @tus/server with a FileStore in `dir`.
pub struct TusServer {
    /// The creation URL, `http://127.0.0.1:PORT/files/`.
    pub endpoint: String,
    /// The FileStore folder: `<id>` holds the bytes, `<id>.json` the upload's info.
    pub dir: PathBuf,
    child: Option<Child>,
    // Closing Node's stdin makes it exit even if this process dies without running Drop.
    _stdin: Option<ChildStdin>,
    log: PathBuf,
}

/// One upload as the FileStore keeps it.
#[derive(Debug, Clone)]
pub struct StoredUpload {
    pub id: String,
    /// The file holding the received bytes.
    pub data_path: PathBuf,
    /// `Upload-Length` as declared at creation.
    pub size: Option<u64>,
    /// Decoded `Upload-Metadata`.
    pub metadata: BTreeMap<String, String>,
    /// The whole `<id>.json`.
    pub info: Value,
}

impl StoredUpload {
    /// Bytes received so far (the length of the data file).
    pub fn received(&self) -> u64 {
        fs::metadata(&self.data_path).map(|m| m.len()).unwrap_or(0)
    }
}

/// The folder holding `server.mjs` and its `node_modules`.
pub fn server_dir() -> PathBuf {
    workspace_root().join("tests").join("tus-server")
}

impl TusServer {
    /// Starts a server storing under `<env root>/tus-store`.
    pub fn start(env: &TestEnv) -> TusServer {
        TusServer::start_with(env, TusOptions::default())
    }

    /// Starts a server with `options` and waits for its ready line.
    pub fn start_with(env: &TestEnv, options: TusOptions) -> TusServer {
        let name = options.store_name.as_deref().unwrap_or("tus-store");
        TusServer::start_in(&env.root().join(name), &options)
    }

    /// Starts a server storing in `dir` (created), logging next to it.
    pub fn start_in(dir: &Path, options: &TusOptions) -> TusServer {
        let script_dir = server_dir();
        assert!(
            script_dir
                .join("node_modules")
                .join("@tus")
                .join("server")
                .is_dir(),
            "{} has no node_modules: run `npm ci` there (scripts/check does)",
            script_dir.display()
        );
        fs::create_dir_all(dir).expect("create tus store");
        let log = dir.with_extension("log");
        let log_file = File::create(&log).expect("create tus server log");
        let mut cmd = Command::new("node");
        cmd.arg(script_dir.join("server.mjs"))
            .arg(dir)
            .current_dir(&script_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .env_remove("UPQ_TUS_MAX_SIZE")
            .env_remove("UPQ_TUS_EXPIRATION_MS")
            .env_remove("UPQ_TUS_RELATIVE");
        if let Some(max) = options.max_size {
            cmd.env("UPQ_TUS_MAX_SIZE", max.to_string());
        }
        if let Some(expiration) = options.expiration {
            cmd.env("UPQ_TUS_EXPIRATION_MS", expiration.as_millis().to_string());
        }
        if options.relative_location {
            cmd.env("UPQ_TUS_RELATIVE", "1");
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn node (is Node.js installed?): {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("node stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let mut server = TusServer {
            endpoint: String::new(),
            dir: dir.to_path_buf(),
            child: Some(child),
            _stdin: stdin,
            log,
        };
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(line) => {
                let endpoint = line
                    .strip_prefix("listening on ")
                    .unwrap_or_else(|| panic!("tus server printed {line:?} before its ready line"));
                server.endpoint = endpoint.trim().to_string();
            }
            Err(e) => panic!(
                "tus server gave no ready line within {READY_TIMEOUT:?} ({e}); log:\n{}",
                server.log()
            ),
        }
        server
    }

    /// `127.0.0.1:PORT`, to point a proxy or shim at.
    pub fn addr(&self) -> std::net::SocketAddr {
        let (authority, _) = http::split_url(&self.endpoint);
        authority.parse().expect("the endpoint has host:port")
    }

    /// The server's stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The same upload addressed to this server directly: `<endpoint><last path segment>`.
    ///
    /// Upload URLs handed out through a proxy or shim name that front; this bypasses it.
    pub fn direct_url(&self, upload_url: &str) -> String {
        let id = upload_url
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .expect("an upload URL has a last segment");
        format!("{}{id}", self.endpoint)
    }

    /// Every upload in the store, oldest first.
    pub fn uploads(&self) -> Vec<StoredUpload> {
        let mut uploads: Vec<StoredUpload> = match fs::read_dir(&self.dir) {
            Ok(entries) => entries
                .filter_map(|entry| {
                    let path = entry.ok()?.path();
                    let name = path.file_name()?.to_str()?;
                    let id = name.strip_suffix(".json")?.to_string();
                    // Written by the server as we read: skip a half-written one.
                    let text = fs::read_to_string(&path).ok()?;
                    let info: Value = serde_json::from_str(&text).ok()?;
                    Some(stored_upload(&self.dir, id, info))
                })
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("read {}: {e}", self.dir.display()),
        };
        uploads.sort_by(|a, b| {
            let created = |u: &StoredUpload| u.info["creation_date"].as_str().map(str::to_owned);
            created(a).cmp(&created(b)).then(a.id.cmp(&b.id))
        });
        uploads
    }

    /// How many uploads the store holds.
    pub fn upload_count(&self) -> usize {
        self.uploads().len()
    }

    /// The upload with this id (the last segment of its URL), if it exists.
    pub fn upload(&self, upload_url: &str) -> Option<StoredUpload> {
        let wanted = upload_url.trim_end_matches('/').rsplit('/').next()?;
        self.uploads().into_iter().find(|u| u.id == wanted)
    }

    /// The only upload in the store; panics when there are none or several.
    pub fn only_upload(&self) -> StoredUpload {
        let mut uploads = self.uploads();
        assert_eq!(
            uploads.len(),
            1,
            "expected exactly one upload in {}: {uploads:#?}",
            self.dir.display()
        );
        uploads.remove(0)
    }

    /// Removes an upload's files from the store behind the server's back (an expiry).
    pub fn remove_files(&self, upload: &StoredUpload) {
        fs::remove_file(&upload.data_path).expect("remove upload data");
        fs::remove_file(self.dir.join(format!("{}.json", upload.id))).expect("remove upload info");
    }

    /// `HEAD` of an upload on this server directly, whatever front its URL names.
    pub fn head(&self, upload_url: &str) -> http::Response {
        let url = self.direct_url(upload_url);
        http::tus_head(&url).unwrap_or_else(|e| panic!("HEAD {url}: {e}"))
    }

    /// True when the server says the upload no longer exists (404 or 410).
    pub fn is_gone(&self, upload_url: &str) -> bool {
        matches!(self.head(upload_url).status, 404 | 410)
    }
}

impl Drop for TusServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Our own child, by its PID.
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- tus server log ({}) ----\n{}",
                self.log.display(),
                self.log()
            );
        }
    }
}

fn stored_upload(dir: &Path, id: String, info: Value) -> StoredUpload {
    let metadata = info["metadata"]
        .as_object()
        .map(|map| {
            map.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    StoredUpload {
        data_path: dir.join(&id),
        size: info["size"].as_u64(),
        metadata,
        info,
        id,
    }
}

/// A config for one tus destination named `tus`.
///
/// `daemon_keys` go into `[daemon]` (e.g. `rate_limit = "8MiB"`), `retry_keys` into
/// `[daemon.retry]`, and `destination_keys` into `[destinations.tus]` after the endpoint.
pub fn tus_config(
    endpoint: &str,
    daemon_keys: &str,
    retry_keys: &str,
    destination_keys: &str,
) -> String {
    tus_config_named("tus", endpoint, daemon_keys, retry_keys, destination_keys)
}

/// Like [`tus_config`], with the destination called `name`.
pub fn tus_config_named(
    name: &str,
    endpoint: &str,
    daemon_keys: &str,
    retry_keys: &str,
    destination_keys: &str,
) -> String {
    format!(
        "[daemon]\n{daemon_keys}\n\n[daemon.retry]\n{retry_keys}\n\n\
         [destinations.{name}]\nkind = \"tus\"\nendpoint = {}\n{destination_keys}\n",
        toml_string(Path::new(endpoint))
    )
}

/// `Upload-Metadata` for these pairs: `key base64(value)`, comma-separated.
pub fn encode_metadata(pairs: &[(&str, &str)]) -> String {
    use base64::Engine;
    pairs
        .iter()
        .map(|(key, value)| {
            format!(
                "{key} {}",
                base64::engine::general_purpose::STANDARD.encode(value)
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `[daemon.retry]` keys that keep retries quick in tests.
pub const FAST_RETRY: &str = "max_attempts = 10\nbase_delay = \"200ms\"\nmax_delay = \"2s\"";

/// Waits until job `id` is in `state`; returns the job then.
pub fn wait_state(
    env: &TestEnv,
    id: u64,
    state: upq_proto::JobState,
    timeout: Duration,
) -> upq_proto::JobView {
    wait_state_explained(env, id, state, timeout, String::new)
}

/// Like [`wait_state`]; on timeout the panic adds what `explain` says (peer records, say).
pub fn wait_state_explained(
    env: &TestEnv,
    id: u64,
    state: upq_proto::JobState,
    timeout: Duration,
    explain: impl Fn() -> String,
) -> upq_proto::JobView {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let job = env.job(id);
        if job.state == state {
            return job;
        }
        if std::time::Instant::now() >= deadline {
            let shown = env.show(id);
            panic!(
                "timed out after {timeout:?} waiting for job {id} to be {state}; it is {} \
                 (last_error {:?}, attempts {}):\n{}\n{}",
                shown.state,
                shown.last_error,
                shown.attempts,
                crate::jobs::describe_history(&shown),
                explain()
            );
        }
        std::thread::sleep(crate::wait::POLL_INTERVAL);
    }
}

/// Waits until job `id` is uploading with at least `bytes` acknowledged; returns the job.
pub fn wait_progress(env: &TestEnv, id: u64, bytes: u64, timeout: Duration) -> upq_proto::JobView {
    crate::wait::wait_for(
        timeout,
        format!("job {id} to have {bytes} bytes acknowledged"),
        || {
            let job = env.job(id);
            assert!(
                !job.state.is_terminal(),
                "job {id} ended before reaching {bytes} bytes: {job:?}"
            );
            (job.state == upq_proto::JobState::Uploading && job.bytes_sent >= bytes).then_some(job)
        },
    )
}

/// Panics unless the stored upload holds exactly the source's bytes.
pub fn assert_stored_copy(upload: &StoredUpload, source: &crate::files::SourceFile) {
    assert_eq!(
        upload.size,
        Some(source.size),
        "declared Upload-Length of {}",
        upload.id
    );
    source.assert_same_content(&upload.data_path);
}
