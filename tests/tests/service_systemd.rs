//! The files that install upqd as a service: the user unit passes `systemd-analyze --user
//! verify`; the D-Bus activation file names the service and unit and starts upqd on a call.
//!
//! The unit runs `%h/.cargo/bin/upqd`, so the check gets a temporary home with that binary;
//! the activation file is installed as the README says, with Exec pointed at the build.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::process::Command;
use std::time::Duration;

use upq_tests::bins::{self, workspace_root};
use upq_tests::bus::{PrivateBus, MANAGER, MANAGER_PATH};
use upq_tests::env::run_with_deadline;
use upq_tests::{wait_until, OutputExt, TestEnv};

/// `key=value` lines of one `[section]` of a systemd-style ini file (last one wins).
fn section(text: &str, name: &str) -> BTreeMap<String, String> {
    let header = format!("[{name}]");
    let mut inside = false;
    let mut keys = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == header;
        } else if inside && !line.starts_with('#') && !line.starts_with(';') {
            if let Some((key, value)) = line.split_once('=') {
                keys.insert(key.trim().to_string(), value.trim().to_string());
            }
        }
    }
    keys
}

#[test]
fn the_user_unit_passes_systemd_analyze_verify() {
    let dir = tempfile::Builder::new()
        .prefix("upq-systemd-verify-")
        .tempdir()
        .expect("temp dir");
    let home = dir.path().join("home");
    let runtime = dir.path().join("runtime");
    fs::create_dir_all(home.join(".cargo/bin")).expect("mkdir home");
    fs::create_dir_all(&runtime).expect("mkdir runtime");
    fs::set_permissions(&runtime, fs::Permissions::from_mode(0o700)).expect("chmod runtime");
    symlink(bins::upqd(), home.join(".cargo/bin/upqd")).expect("link upqd into the home");

    let unit = workspace_root().join("systemd/upqd.service");
    let mut cmd = Command::new("systemd-analyze");
    cmd.args(["--user", "verify"])
        .arg(&unit)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("SYSTEMD_LOG_COLOR", "0")
        .env("SYSTEMD_PAGER", "");
    let output = run_with_deadline(cmd, Duration::from_secs(60));
    let text = format!("{}{}", output.stdout_text(), output.stderr_text());
    assert!(
        output.status.success(),
        "systemd-analyze --user verify failed ({:?}):\n{text}",
        output.status
    );
    let complaints: Vec<&str> = text.lines().filter(|line| line.contains("upqd")).collect();
    assert!(
        complaints.is_empty(),
        "systemd-analyze has remarks about the unit:\n{}",
        complaints.join("\n")
    );

    let unit_text = fs::read_to_string(&unit).expect("read the unit");
    let service = section(&unit_text, "Service");
    assert_eq!(service.get("Type").map(String::as_str), Some("notify"));
    assert_eq!(
        service.get("ExecStart").map(String::as_str),
        Some("%h/.cargo/bin/upqd")
    );
    assert!(
        service.contains_key("WatchdogSec"),
        "the unit arms the watchdog upqd pings: {service:?}"
    );
    assert_eq!(
        service.get("RestartPreventExitStatus").map(String::as_str),
        Some("65 73 78"),
        "a damaged database, an unwritable data folder and a bad config do not restart in a loop"
    );
    assert!(
        service
            .get("ExecReload")
            .is_some_and(|reload| reload.contains("-HUP")),
        "reload sends SIGHUP: {service:?}"
    );
}

#[test]
fn the_dbus_activation_file_names_the_service_and_the_unit() {
    let path = workspace_root().join("systemd/dev.upq.upq1.service");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let service = section(&text, "D-BUS Service");
    assert_eq!(
        service.get("Name").map(String::as_str),
        Some("dev.upq.upq1"),
        "{text}"
    );
    assert_eq!(
        service.get("SystemdService").map(String::as_str),
        Some("upqd.service"),
        "{text}"
    );
    let exec = service.get("Exec").map(String::as_str).unwrap_or_default();
    assert!(
        exec.starts_with('/') && exec.ends_with("/upqd"),
        "Exec is the absolute path of upqd: {exec:?}"
    );
    assert!(
        workspace_root().join("systemd/upqd.service").is_file(),
        "the unit it names is in systemd/"
    );
}

/// A process the bus started for us; SIGTERM by its PID when the test ends.
struct Activated(u32);

impl Activated {
    fn is_alive(&self) -> bool {
        // SAFETY: signal 0 only checks that the process exists.
        unsafe { libc::kill(self.0 as libc::pid_t, 0) == 0 }
    }
}

impl Drop for Activated {
    fn drop(&mut self) {
        if self.is_alive() {
            // SAFETY: kill has no memory-safety preconditions; the pid is the upqd we caused.
            unsafe { libc::kill(self.0 as libc::pid_t, libc::SIGTERM) };
        }
    }
}

#[test]
fn the_dbus_activation_file_starts_upqd_on_the_first_call() {
    let env = TestEnv::new("dbus-activation");
    // Installed as the README says: into ~/.local/share/dbus-1/services, Exec pointed at upqd.
    let template = fs::read_to_string(workspace_root().join("systemd/dev.upq.upq1.service"))
        .expect("read the activation file");
    let upqd = bins::upqd();
    let services = env.data_home().join("dbus-1/services");
    fs::create_dir_all(&services).expect("mkdir services");
    fs::write(
        services.join("dev.upq.upq1.service"),
        template.replace("/usr/local/bin/upqd", upqd.to_str().expect("UTF-8 path")),
    )
    .expect("install the activation file");
    let bus = PrivateBus::start_for(&env);
    assert!(
        !env.socket_path().exists(),
        "no upqd runs before the first call"
    );

    let status = bus.call(MANAGER_PATH, MANAGER, "Status", &[]);
    let pid = status[0]["pid"]["data"]
        .as_u64()
        .unwrap_or_else(|| panic!("Status has no pid: {status}")) as u32;
    let activated = Activated(pid);
    assert!(activated.is_alive(), "the activated upqd runs");
    let over_socket = env.ctl_json(["status"]);
    assert_eq!(
        over_socket["pid"], pid,
        "the socket is served by the activated upqd: {over_socket}"
    );

    // SAFETY: kill has no memory-safety preconditions; the pid is the upqd we caused.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    wait_until(
        Duration::from_secs(10),
        "the activated upqd to exit on SIGTERM",
        || !activated.is_alive(),
    );
}
