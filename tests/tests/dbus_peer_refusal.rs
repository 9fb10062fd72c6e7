//! Who may talk to upqd: the control socket serves only its own uid (SO_PEERCRED), even when
//! the modes were loosened after start; upqd refuses a socket folder others can write to and
//! never changes the mode of a folder it did not create.
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

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn a_folder_others_can_only_read_keeps_its_mode() {
    // The socket sits directly in a home-like folder (0755) that upqd did not create.
    let env = TestEnv::with_socket_flag("readable-folder");
    chmod(env.root(), 0o755);
    let daemon = env.start_daemon();
    let socket = env.socket_path();
    let socket_arg = socket.to_str().expect("UTF-8 path");

    assert_eq!(
        mode_of(env.root()),
        0o755,
        "upqd must not change the mode of a folder it did not create"
    );
    assert_eq!(mode_of(&socket), 0o600, "the socket is for its owner only");

    // `nobody` can reach the folder but not the socket.
    ctl_as_nobody(&env, &["--version"]).assert_ok("upqctl --version as nobody");
    let refused = ctl_as_nobody(&env, &["--socket", socket_arg, "status"]);
    assert_ne!(refused.status.code(), Some(0), "nobody is refused");

    // With the socket opened up, the peer check still refuses `nobody`.
    chmod(&socket, 0o666);
    let refused = ctl_as_nobody(&env, &["--socket", socket_arg, "status"]);
    assert_ne!(
        refused.status.code(),
        Some(0),
        "another user's upqctl status must fail; stdout: {}",
        refused.stdout_text()
    );
    let log = daemon.log();
    assert!(
        log.lines()
            .any(|line| line.contains("refused") && line.contains("another user")),
        "the daemon refused the other user itself:\n{log}"
    );

    let status = env.ctl_json(["status"]);
    assert_eq!(status["socket"], socket_arg, "{status}");
    assert_eq!(mode_of(env.root()), 0o755, "still untouched after serving");
}

#[test]
fn missing_socket_folders_are_created_private_and_nothing_else_changes() {
    // The default socket is $XDG_RUNTIME_DIR/upq/upqd.sock: both folders are missing here.
    let env = TestEnv::new("missing-folder");
    chmod(env.root(), 0o755);
    fs::remove_dir(env.runtime_dir()).expect("remove the runtime dir");
    let _daemon = env.start_daemon();

    assert_eq!(
        mode_of(&env.runtime_dir()),
        0o700,
        "a folder upqd creates is 0700"
    );
    assert_eq!(
        mode_of(&env.runtime_dir().join("upq")),
        0o700,
        "a folder upqd creates is 0700"
    );
    assert_eq!(mode_of(&env.socket_path()), 0o600);
    assert_eq!(
        mode_of(env.root()),
        0o755,
        "the existing parent is left alone"
    );
    env.ctl_json(["status"]);
}

#[test]
fn a_socket_folder_its_group_can_write_to_is_refused_at_start() {
    let env = TestEnv::with_socket_flag("group-folder");
    // A group of which the running user is not a member.
    let status = Command::new("chown")
        .arg(format!(":{NOBODY}"))
        .arg(env.root())
        .status()
        .expect("run chown");
    assert!(status.success(), "chown :{NOBODY}");
    chmod(env.root(), 0o775);

    let output = Daemon::run_to_exit(&env, &[]);
    assert_ne!(
        output.status.code(),
        Some(0),
        "upqd must not serve from there"
    );
    let stderr = output.stderr_text();
    assert!(
        stderr.contains("writable by other users") && stderr.contains("775"),
        "the refusal says why and shows the mode: {stderr}"
    );
    assert!(!env.socket_path().exists(), "no socket is created there");
    assert_eq!(
        mode_of(env.root()),
        0o775,
        "a refused folder is not changed either"
    );
}
