//! Who may talk to upqd: the control socket serves only its own uid (SO_PEERCRED), even when
//! the modes were loosened after start, and upqd refuses a socket folder others can write to.
//!
//! Runs as root and becomes `nobody` (65534) with `setpriv` for the foreign client.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use upq_tests::env::run_with_deadline;
use upq_tests::{bins, Daemon, OutputExt, TestEnv};

const NOBODY: &str = "65534";

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// `setpriv --reuid=65534 --regid=65534 --clear-groups upqctl ARGS...`.
fn ctl_as_nobody(env: &TestEnv, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        &format!("--reuid={NOBODY}"),
        &format!("--regid={NOBODY}"),
        "--clear-groups",
    ])
    .arg(bins::upqctl())
    .args(args);
    env.apply_env(&mut cmd);
    run_with_deadline(cmd, Duration::from_secs(60))
}

#[test]
fn another_user_is_refused_even_when_the_modes_let_it_connect() {
    let env = TestEnv::with_socket_flag("peer-refusal");
    let daemon = env.start_daemon();
    let socket = env.socket_path();
    let socket_arg = socket.to_str().expect("UTF-8 path");

    // The daemon checks modes only at start; open everything up afterwards.
    chmod(env.root(), 0o777);
    chmod(&socket, 0o666);

    // Make sure `nobody` can run upqctl at all, so a failure below is the daemon's refusal.
    let version = ctl_as_nobody(&env, &["--version"]);
    version.assert_ok("upqctl --version as nobody (is setpriv installed, is the binary readable?)");

    let refused = ctl_as_nobody(&env, &["--socket", socket_arg, "status"]);
    assert_ne!(
        refused.status.code(),
        Some(0),
        "another user's upqctl status must fail; stdout: {}",
        refused.stdout_text()
    );
    assert!(
        !refused.stderr_text().trim().is_empty(),
        "the refused client says why on stderr"
    );
    let log = daemon.log();
    assert!(
        log.lines()
            .any(|line| line.contains("refused") && line.contains("another user")),
        "the daemon logs the refusal of another user:\n{log}"
    );
    eprintln!(
        "upqctl as nobody: exit {:?}, stderr: {}",
        refused.status.code(),
        refused.stderr_text().trim()
    );

    // The owner still gets through.
    let status = env.ctl_json(["status"]);
    assert_eq!(status["socket"], socket_arg, "{status}");
}

#[test]
fn a_socket_folder_others_can_write_to_is_refused_at_start() {
    let env = TestEnv::with_socket_flag("open-folder");
    chmod(env.root(), 0o777);

    let output = Daemon::run_to_exit(&env, &[]);
    assert_ne!(
        output.status.code(),
        Some(0),
        "upqd must not serve from a world-writable folder"
    );
    let stderr = output.stderr_text();
    assert!(
        stderr.contains("writable by other users"),
        "the refusal says why: {stderr}"
    );
    assert!(
        !env.socket_path().exists(),
        "no socket is created in a folder others can write to"
    );
}
