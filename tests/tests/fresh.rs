//! A fresh machine: no config file, default dirs, `upqctl add` straight away.
//!
//! Also the CLI's refusals (bad files, bad config, no daemon, no such job) and their exit codes.

use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};

use upq_tests::files::{mtime, partial_files};
use upq_tests::{Daemon, JobState, OutputExt, TestEnv};

/// Every key of the job object in the contract (`show --json` adds `history`).
const JOB_KEYS: [&str; 20] = [
    "id",
    "file",
    "destination",
    "state",
    "size",
    "bytes_sent",
    "bytes_transferred",
    "attempts",
    "last_error",
    "next_attempt_at",
    "publish_at",
    "hold",
    "priority",
    "created_at",
    "updated_at",
    "metadata",
    "remote",
    "content_hash",
    "speed",
    "warning",
];

#[test]
fn fresh_machine_publishes_to_default_outbox() {
    let env = TestEnv::new("fresh");
    assert!(!env.config_path().exists());
    let _daemon = env.start_daemon();

    let socket = env.socket_path();
    let socket_meta = fs::metadata(&socket).expect("socket exists once ready");
    assert!(socket_meta.file_type().is_socket());
    assert_eq!(
        socket_meta.permissions().mode() & 0o777,
        0o600,
        "socket mode"
    );
    let folder_meta = fs::metadata(socket.parent().unwrap()).unwrap();
    assert_eq!(
        folder_meta.permissions().mode() & 0o777,
        0o700,
        "socket folder mode"
    );
    assert!(
        env.default_outbox().is_dir(),
        "the default outbox is created at start"
    );

    let video = env.source("holiday.mp4", 50_000_000);
    let mtime_before = mtime(&video.path);

    // No --socket: upqctl finds the daemon through XDG_RUNTIME_DIR like on a real machine.
    let added = env.ctl_plain(["add", video.arg()]);
    added.assert_ok("upqctl add");
    let id: u64 = added
        .stdout_text()
        .trim()
        .parse()
        .expect("add prints just the job id");
    let waited = env.ctl_plain(["wait", &id.to_string(), "--timeout", "60s"]);
    assert_eq!(
        waited.code(),
        0,
        "wait should report published: {}",
        waited.stderr_text()
    );

    video.assert_same_content(&env.default_outbox().join(video.name()));
    video.assert_unchanged();
    assert_eq!(
        mtime(&video.path),
        mtime_before,
        "the source's mtime changed"
    );

    let raw = env.ctl_json(["show", &id.to_string()]);
    for key in JOB_KEYS.iter().chain(["history"].iter()) {
        assert!(raw.get(key).is_some(), "show --json lacks \"{key}\": {raw}");
    }
    let listed = env.ctl_json(["list", "--all"]);
    for key in JOB_KEYS {
        assert!(
            listed[0].get(key).is_some(),
            "list --json lacks \"{key}\": {listed}"
        );
    }

    let job = env.show(id);
    assert_eq!(job.state, JobState::Published);
    assert_eq!(job.size, video.size);
    assert_eq!(job.bytes_sent, video.size);
    assert_eq!(job.destination, "local");
    assert_eq!(job.file, video.arg());
    assert_eq!(job.content_hash.as_deref(), Some(video.hash.as_str()));
    assert!(job.last_error.is_none(), "{:?}", job.last_error);
    assert!(partial_files(&env.default_outbox(), id).is_empty());
}

#[test]
fn add_refuses_missing_files_and_directories() {
    let env = TestEnv::new("add-errors");
    let _daemon = env.start_daemon();

    let missing = env.root().join("videos").join("no-such-video.mp4");
    let output = env.ctl(["add", missing.to_str().unwrap()]);
    assert_eq!(output.code(), 1, "add of a missing file: {output:?}");
    assert!(
        output.stderr_text().contains("no-such-video.mp4"),
        "the error should name the file: {}",
        output.stderr_text()
    );
    assert!(output.stdout_text().trim().is_empty(), "no job id printed");

    let folder = env.root().join("videos");
    let output = env.ctl(["add", folder.to_str().unwrap()]);
    assert_eq!(output.code(), 1, "add of a directory: {output:?}");
    let message = output.stderr_text();
    assert!(
        message.contains(folder.to_str().unwrap())
            || message.contains("director")
            || message.contains("regular file"),
        "the error should say what is wrong: {message}"
    );
    assert!(output.stdout_text().trim().is_empty(), "no job id printed");

    assert!(env.list(false).is_empty(), "nothing may be queued");
    assert!(env.list(true).is_empty(), "nothing may be recorded");
    assert!(env.drafts().is_empty());
}

#[test]
fn config_error_exits_78_naming_file_and_key() {
    let env = TestEnv::new("bad-config");
    env.write_config("[daemon]\nmax_active = \"lots\"\n");
    let output = Daemon::run_to_exit(&env, &[]);
    assert_eq!(output.status.code(), Some(78), "{output:?}");
    let message = output.stderr_text();
    assert!(
        message.contains(env.config_path().to_str().unwrap()),
        "the error should name the config file: {message}"
    );
    assert!(
        message.contains("max_active"),
        "the error should name the key: {message}"
    );
    assert!(
        !env.socket_path().exists(),
        "no socket is left behind by a refused start"
    );
}

#[test]
fn ctl_exit_codes_and_status() {
    let env = TestEnv::new("exit-codes");
    let output = env.ctl(["status"]);
    assert_eq!(output.code(), 3, "no daemon: {output:?}");
    assert!(!output.stderr_text().trim().is_empty());

    let daemon = env.start_daemon();
    let output = env.ctl(["show", "999"]);
    assert_eq!(output.code(), 4, "no such job: {output:?}");
    let output = env.ctl(["frobnicate"]);
    assert_eq!(output.code(), 2, "usage error: {output:?}");

    let status = env.ctl_json(["status"]);
    assert_eq!(status["pid"], daemon.pid(), "{status}");
    assert_eq!(status["queue_paused"], false, "{status}");
    assert!(
        status["destinations"]
            .as_array()
            .is_some_and(|d| d.iter().any(|name| name == "local")),
        "{status}"
    );
    env.ctl(["limit", "5MiB"]).assert_ok("upqctl limit");
    assert_eq!(env.ctl_json(["status"])["rate_limit"], 5 * 1024 * 1024);
    let version = status["version"].as_str().expect("status has a version");
    assert!(
        daemon
            .ready_line
            .starts_with(&format!("upqd {version} listening on ")),
        "ready line {:?} vs version {version}",
        daemon.ready_line
    );
}
