//! Runs the real `upqctl` binary against a scripted stand-in for `upqd` on a temp socket.
//! Checks what users and scripts rely on: output, JSON passthrough and exit codes.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::thread;

use interprocess::local_socket::{prelude::*, GenericFilePath, ListenerOptions, Stream};
use serde_json::{json, Value};

/// Given a request, the reply lines; `{id}` in each stands for the request id.
type Script = dyn Fn(&Value) -> Vec<Value> + Send + Sync;

struct FakeDaemon {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    requests: Arc<Mutex<Vec<Value>>>,
}

impl FakeDaemon {
    fn start(protocol: u32, script: impl Fn(&Value) -> Vec<Value> + Send + Sync + 'static) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("upqd.sock");
        let name = socket.clone().to_fs_name::<GenericFilePath>().unwrap();
        let listener = ListenerOptions::new().name(name).create_sync().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let seen = Arc::clone(&requests);
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let script = Arc::clone(&script);
                let seen = Arc::clone(&seen);
                thread::spawn(move || serve(conn, protocol, &*script, &seen));
            }
        });
        FakeDaemon {
            _dir: dir,
            socket,
            requests,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_upqctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap()
    }

    fn methods(&self) -> Vec<String> {
        let requests = self.requests.lock().unwrap();
        requests
            .iter()
            .map(|request| request["method"].as_str().unwrap_or("").to_owned())
            .collect()
    }
}

fn serve(conn: Stream, protocol: u32, script: &Script, seen: &Mutex<Vec<Value>>) {
    let hello = json!({"id": 0, "result": {"type": "hello", "data": {"protocol": protocol, "version": "0.1.0"}}});
    let mut writer = &conn;
    if writeln!(writer, "{hello}").is_err() {
        return;
    }
    let mut reader = BufReader::new(&conn);
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap_or(0) > 0 {
        let request: Value = serde_json::from_str(&line).unwrap();
        line.clear();
        seen.lock().unwrap().push(request.clone());
        for mut reply in script(&request) {
            reply["id"] = request["id"].clone();
            if writeln!(writer, "{reply}").is_err() {
                return;
            }
        }
    }
}

fn job(id: u64, state: &str) -> Value {
    json!({
        "id": id, "file": format!("/v/clip{id}.mp4"), "destination": "local", "state": state,
        "size": 1000, "bytes_sent": 500, "bytes_transferred": 500, "attempts": 1,
        "last_error": null, "next_attempt_at": null, "publish_at": null, "hold": false,
        "priority": 0, "created_at": "2026-12-01T11:00:00Z", "updated_at": "2026-12-01T11:30:00Z",
        "metadata": {"title": "Trip"}, "remote": null, "content_hash": null, "speed": null,
        "warning": null, "a_field_from_a_newer_daemon": [1, 2]
    })
}

fn result(kind: &str, data: Value) -> Value {
    json!({"result": {"type": kind, "data": data}})
}

fn not_found(id: u64) -> Value {
    json!({"error": {"code": "not_found", "message": format!("no job {id}")}})
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A daemon whose jobs 1..=3 exist: show answers with `shown(id)`, subscribing sends `events`.
fn jobs_daemon(shown: fn(u64) -> &'static str, events: Vec<Value>) -> FakeDaemon {
    FakeDaemon::start(1, move |request| match request["method"].as_str() {
        Some("show") => match request["params"]["id"].as_u64() {
            Some(id @ 1..=3) => vec![result("job", job(id, shown(id)))],
            Some(id) => vec![not_found(id)],
            None => vec![],
        },
        Some("subscribe") => {
            let mut lines = vec![result("subscribed", Value::Null)];
            lines.extend(events.iter().map(|event| result("event", event.clone())));
            lines
        }
        _ => vec![json!({"error": {"code": "unknown_method", "message": "no"}})],
    })
}

/// A daemon whose one job is 7: a page after it is empty.
fn one_job_daemon() -> FakeDaemon {
    FakeDaemon::start(1, |request| match request["params"]["after"].as_u64() {
        Some(after) if after >= 7 => vec![result("jobs", json!([]))],
        _ => vec![result("jobs", json!([job(7, "uploading")]))],
    })
}

#[test]
fn list_json_passes_the_daemons_objects_through() {
    let daemon = one_job_daemon();
    let output = daemon.run(&["list", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed, json!([job(7, "uploading")]));
    // Pages are read on until one is empty.
    assert_eq!(daemon.methods(), ["list", "list"]);
}

#[test]
fn a_daemon_that_does_not_page_is_an_error_not_an_endless_list() {
    let daemon = FakeDaemon::start(1, |_| vec![result("jobs", json!([job(7, "uploading")]))]);
    for args in [&["list", "--json"][..], &["list"][..]] {
        let output = daemon.run(args);
        assert!(!output.status.success(), "{args:?}: {}", stdout(&output));
        assert!(stderr(&output).contains("same page"), "{}", stderr(&output));
    }
}

#[test]
fn list_prints_a_table() {
    let daemon = one_job_daemon();
    let output = daemon.run(&["list"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("ID  STATE      PROGRESS    SIZE  DEST   NAME")
    );
    assert_eq!(
        lines.next(),
        Some(" 7  uploading       50%  1000 B  local  Trip")
    );
}

#[test]
fn add_sends_an_absolute_path_and_prints_the_id() {
    let daemon = FakeDaemon::start(1, |_| vec![result("job", job(7, "queued"))]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("clip.mp4"), b"video").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_upqctl"))
        .current_dir(dir.path())
        .args(["--socket", daemon.socket.to_str().unwrap()])
        .args([
            "add", "clip.mp4", "--title", "Trip", "--delay", "10m", "--hold",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "7\n");
    let requests = daemon.requests.lock().unwrap();
    let params = &requests[0]["params"];
    let file = params["file"].as_str().unwrap();
    assert!(
        Path::new(file).is_absolute() && file.ends_with("/clip.mp4"),
        "{file}"
    );
    assert_eq!(params["metadata"]["title"], "Trip");
    assert_eq!(params["delay_ms"], 600_000);
    assert_eq!(params["hold"], true);
}

#[test]
fn batches_report_each_id_and_exit_4_for_unknown_ones() {
    let daemon = FakeDaemon::start(1, |_| {
        vec![result(
            "batch",
            json!([{"id": 1, "job": job(1, "paused")},
                   {"id": 9, "error": {"code": "not_found", "message": "no job 9"}}]),
        )]
    });
    let output = daemon.run(&["pause", "1", "9"]);
    assert_eq!(output.status.code(), Some(4));
    assert_eq!(stdout(&output), "1 paused\n");
    assert_eq!(stderr(&output), "9: no job 9\n");
    let output = daemon.run(&["pause", "1", "9", "--json"]);
    assert_eq!(output.status.code(), Some(4));
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed[1]["error"]["code"], "not_found");
}

#[test]
fn an_unknown_job_exits_4() {
    let daemon = jobs_daemon(|_| "queued", vec![]);
    let output = daemon.run(&["show", "9"]);
    assert_eq!(output.status.code(), Some(4));
    assert_eq!(stderr(&output), "upqctl: no job 9\n");
    assert!(output.stdout.is_empty());
}

#[test]
fn another_protocol_version_is_refused() {
    let daemon = FakeDaemon::start(2, |_| vec![]);
    let output = daemon.run(&["status"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("protocol 2"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn wait_exits_0_when_published() {
    let published = json!({"kind": "state", "id": 1, "from": "processing", "to": "published",
                           "reason": "done", "job": job(1, "published")});
    let daemon = jobs_daemon(|_| "uploading", vec![published]);
    let output = daemon.run(&["wait", "1"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "1 published\n");
    assert_eq!(daemon.methods(), ["subscribe", "show"]);
}

#[test]
fn wait_exits_1_when_a_job_failed_and_prints_json() {
    let daemon = jobs_daemon(|id| if id == 2 { "failed" } else { "published" }, vec![]);
    let output = daemon.run(&["wait", "1", "2", "--json"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed, json!([job(1, "published"), job(2, "failed")]));
}

#[test]
fn wait_exits_124_on_timeout() {
    let daemon = jobs_daemon(|_| "uploading", vec![]);
    let output = daemon.run(&["wait", "1", "--timeout", "300ms"]);
    assert_eq!(output.status.code(), Some(124));
    assert!(
        stderr(&output).contains("still waiting for 1 (uploading)"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn watch_named_jobs_until_they_end_as_ndjson() {
    let progress = json!({"kind": "progress", "id": 1, "bytes_sent": 600, "bytes_in_flight": 100,
                          "size": 1000, "speed": 50});
    let done = json!({"kind": "state", "id": 1, "from": "uploading", "to": "published",
                      "reason": "done", "job": job(1, "published")});
    let daemon = jobs_daemon(|_| "uploading", vec![progress.clone(), done.clone()]);
    let output = daemon.run(&["watch", "1", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let lines: Vec<Value> = stdout(&output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines, [progress, done]);
}

#[test]
fn status_and_limit() {
    let daemon = FakeDaemon::start(1, |request| match request["method"].as_str() {
        Some("limit") => vec![result("limit", request["params"]["rate"].clone())],
        // `limit` asks when the rate gives way; this daemon's holds for good.
        Some("status") => vec![result(
            "status",
            json!({"version": "0.1.0", "protocol": 1, "pid": 1,
                   "started_at": "2026-12-01T10:00:00Z", "uptime_secs": 1, "counts": {},
                   "max_active": 2, "rate_limit": 0,
                   "queue_paused": false, "destinations": [], "data_dir": "/d",
                   "socket": "/s"}),
        )],
        _ => vec![],
    });
    let output = daemon.run(&["limit", "4MiB"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "rate limit: 4 MiB/s\n");
    let output = daemon.run(&["limit", "none", "--json"]);
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed, json!({"rate_limit": 0}));
}
