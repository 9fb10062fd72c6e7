//! Who may talk to upqd: only its own uid, over the socket (SO_PEERCRED, whatever the modes)
//! and over D-Bus (the bus's word on each caller); socket folders it did not make keep their mode.
//!
//! Runs as root and becomes `nobody` (65534) with `setpriv` for the foreign client.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use upq_tests::bins::workspace_root;
use upq_tests::bus::{
    assert_dbus_error, interface_members, job_path, PrivateBus, BUS_NAME, JOB, MANAGER,
    MANAGER_PATH,
};
use upq_tests::env::run_with_deadline;
use upq_tests::{bins, wait_until, Daemon, JobState, OutputExt, TestEnv, MIB};

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

/// Runs upqd, which must refuse to serve from the socket folder; returns what it said.
fn refused_at_start(env: &TestEnv) -> String {
    let output = Daemon::run_to_exit(env, &[]);
    assert_ne!(
        output.status.code(),
        Some(0),
        "upqd must not serve from a folder others can write to"
    );
    output.stderr_text()
}

#[test]
fn a_socket_folder_others_can_write_to_is_refused_at_start() {
    let env = TestEnv::with_socket_flag("open-folder");
    chmod(env.root(), 0o777);

    let stderr = refused_at_start(&env);
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

    let stderr = refused_at_start(&env);
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

/// `gdbus call` on `bus` to `dest`, as `nobody` when `as_nobody`, else as the test's own user.
fn gdbus(
    bus: &PrivateBus,
    as_nobody: bool,
    dest: &str,
    path: &str,
    method: &str,
    args: &[String],
) -> std::process::Output {
    let mut cmd = if as_nobody {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            "gdbus",
        ]);
        cmd
    } else {
        Command::new("gdbus")
    };
    cmd.args(["call", "--address", bus.address(), "--dest", dest])
        .args(["--object-path", path, "--method", method])
        .args(args);
    run_with_deadline(cmd, Duration::from_secs(60))
}

/// `gdbus` arguments for a method's in-arguments, from a line such as
/// `method GetJob(in t id)`: ids become `id`, strings `file`, string lists `[file]`,
/// booleans `true`.
fn sample_call(member: &str, id: u64, file: &str) -> Option<(String, Vec<String>)> {
    let rest = member.strip_prefix("method ")?;
    let (name, args) = rest.split_once('(')?;
    let args = args.trim_end_matches(')');
    let values = args
        .split(", ")
        .filter_map(|arg| arg.strip_prefix("in "))
        .map(|arg| match arg.split(' ').next().unwrap_or_default() {
            "t" => id.to_string(),
            "b" => "true".to_string(),
            "s" => format!("'{file}'"),
            "as" => format!("['{file}']"),
            "a{sv}" => "@a{sv} {}".to_string(),
            other => panic!("no sample value for type {other} in {member}"),
        })
        .collect();
    Some((name.to_string(), values))
}

/// The property names in the committed XML's lines such as `property State s read`.
fn property_names(members: &std::collections::BTreeSet<String>) -> Vec<&str> {
    members
        .iter()
        .filter_map(|m| m.strip_prefix("property "))
        .filter_map(|m| m.split(' ').next())
        .collect()
}

#[test]
fn another_user_on_the_bus_is_refused_every_method_and_property() {
    let env = TestEnv::new("dbus-other-user");
    // `nobody` may pass through to the bus socket; the other folders stay private.
    chmod(env.root(), 0o711);
    let bus = PrivateBus::start_for_every_user(env.root());
    let _upqd = Daemon::on_bus(&env, &bus).start();
    let video = env.source("private.mp4", MIB);
    let id = env.add(&video, &["--hold"]);
    wait_until(Duration::from_secs(30), "the job to be held", || {
        env.job(id).state == JobState::Held
    });
    let path = job_path(id);

    // The bus lets `nobody` in and passes its calls on: any refusal below is upqd's.
    gdbus(
        &bus,
        true,
        "org.freedesktop.DBus",
        "/org/freedesktop/DBus",
        "org.freedesktop.DBus.GetId",
        &[],
    )
    .assert_ok("nobody calls the bus itself");

    // Every member the committed API declares, so a new one cannot skip the check.
    let xml_path = workspace_root().join("daemon/dbus/dev.upq.upq1.xml");
    let api = interface_members(&fs::read_to_string(&xml_path).expect("read the API"));
    let mut calls: Vec<(String, String, Vec<String>)> = Vec::new();
    for (interface, object) in [(MANAGER, MANAGER_PATH.to_string()), (JOB, path.clone())] {
        for member in &api[interface] {
            if let Some((name, args)) = sample_call(member, id, video.arg()) {
                calls.push((object.clone(), format!("{interface}.{name}"), args));
            }
        }
        for name in property_names(&api[interface]) {
            calls.push((
                object.clone(),
                "org.freedesktop.DBus.Properties.Get".into(),
                vec![interface.into(), name.into()],
            ));
        }
    }
    calls.push((
        MANAGER_PATH.into(),
        "org.freedesktop.DBus.ObjectManager.GetManagedObjects".into(),
        vec![],
    ));
    assert!(calls.len() > 30, "too few members read: {calls:?}");
    for (object, method, args) in &calls {
        let output = gdbus(&bus, true, BUS_NAME, object, method, args);
        assert_dbus_error(
            &output,
            "dev.upq.upq1.Error.PermissionDenied",
            &format!("{method} {args:?} on {object} as nobody"),
        );
    }

    // GetAll cannot be refused as a whole: it must at least reveal nothing.
    let all = gdbus(
        &bus,
        true,
        BUS_NAME,
        &path,
        "org.freedesktop.DBus.Properties.GetAll",
        &[JOB.into()],
    );
    let all_text = all.stdout_text();
    assert!(
        !all_text.contains("private.mp4") && !all_text.contains("held"),
        "GetAll shows another user nothing: {all_text}"
    );

    // Nothing the refused calls asked for happened.
    let jobs = env.list(true);
    assert_eq!(jobs.len(), 1, "no job was added: {jobs:?}");
    assert_eq!(jobs[0].state, JobState::Held, "the job was left alone");
    let log = env_log(&env);
    assert!(
        log.contains("refused a D-Bus call from another user"),
        "the daemon logs the refusal:\n{log}"
    );

    // The owner is still served.
    let owner = gdbus(
        &bus,
        false,
        BUS_NAME,
        MANAGER_PATH,
        "org.freedesktop.DBus.ObjectManager.GetManagedObjects",
        &[],
    );
    owner.assert_ok("the owner's GetManagedObjects");
    assert!(
        owner.stdout_text().contains(&format!("'{path}'")),
        "{}",
        owner.stdout_text()
    );
    assert_eq!(bus.property(&path, JOB, "State"), "held");
    bus.call(MANAGER_PATH, MANAGER, "PublishJob", &["t", &id.to_string()]);
    env.wait_published(id, 60);
}

fn env_log(env: &TestEnv) -> String {
    fs::read_to_string(env.log_path()).unwrap_or_default()
}
