//! `upqctl doctor`: every check a setup depends on, one line each (ok, warning or problem)
//! with the fix for what is not ok; `--json` gives the same as an array. Exit 0 without a
//! problem, 1 with one.
//!
//! upqctl checks what it can see from outside (the socket and its folder, the session bus
//! and the notification server, systemd's unit and the D-Bus activation file) and asks the
//! daemon for the rest (its data folder and store, each destination), because only the
//! daemon holds the configuration and the tokens. Every check runs at once and has its own
//! timeout: a dead server or a hung bus costs that timeout, never a hang.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::oneshot;
use upq_proto::text::compact_duration;
use upq_proto::{CheckStatus, CheckView, StatusView};

use crate::backend::Backend;
use crate::exit;
use crate::render::Paint;

/// How `doctor` was asked to run.
pub struct Options {
    pub socket: PathBuf,
    pub bus: bool,
    pub json: bool,
    /// Each check's time.
    pub timeout: Duration,
    pub paint: Paint,
}

/// The unit `systemctl --user` knows upqd by.
const UNIT: &str = "upqd.service";
/// The D-Bus activation file's name in a `dbus-1/services` folder.
const ACTIVATION_FILE: &str = "dev.upq.upq1.service";
const NOTIFICATIONS: &str = "org.freedesktop.Notifications";

pub fn run(options: Options) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let findings = runtime.block_on(every_check(&options));
    // A check that overran its timeout may still hold a thread; nothing waits for it.
    runtime.shutdown_background();
    print(&options, &findings)?;
    let problem = findings
        .iter()
        .any(|found| found.status == CheckStatus::Problem);
    Ok(if problem { exit::FAILED } else { exit::SUCCESS })
}

fn print(options: &Options, findings: &[CheckView]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if options.json {
        serde_json::to_writer_pretty(&mut out, findings)?;
        writeln!(out)?;
        return Ok(());
    }
    let width = findings
        .iter()
        .map(|found| found.check.chars().count())
        .max()
        .unwrap_or(0);
    for found in findings {
        let status = format!("{:<7}", found.status.as_str());
        let status = match found.status {
            CheckStatus::Ok => options.paint.ok(&status),
            CheckStatus::Warning => options.paint.warning(&status),
            CheckStatus::Problem => options.paint.problem(&status),
        };
        writeln!(out, "{status}  {:<width$}  {}", found.check, found.message)?;
        if let Some(fix) = &found.fix {
            writeln!(
                out,
                "{:<7}  {:<width$}  {}",
                "",
                "",
                options.paint.dim(&format!("fix: {fix}"))
            )?;
        }
    }
    let count = |status| findings.iter().filter(|f| f.status == status).count();
    let (problems, warnings) = (count(CheckStatus::Problem), count(CheckStatus::Warning));
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    writeln!(
        out,
        "\n{}",
        match (problems, warnings) {
            (0, 0) => "everything upq needs is in place".to_string(),
            (0, w) => format!("no problem, {}", plural(w, "warning")),
            (p, w) => format!("{}, {}", plural(p, "problem"), plural(w, "warning")),
        }
    )?;
    Ok(())
}

/// Every check, concurrently; the findings in a fixed order.
async fn every_check(options: &Options) -> Vec<CheckView> {
    let (daemon, socket, bus, systemd, activation) = tokio::join!(
        daemon_checks(options),
        async { socket_checks(&options.socket) },
        bus_checks(options.timeout),
        systemd_checks(options.timeout),
        async { activation_checks() },
    );
    let DaemonFindings {
        mut answers,
        inside,
        policies,
    } = daemon;
    answers.extend(socket);
    answers.extend(bus);
    answers.extend(systemd);
    answers.extend(activation);
    answers.extend(inside);
    answers.extend(policies);
    answers
}

/// Runs blocking `work` on a thread of its own, so that a timeout can stop the waiting for it.
fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> oneshot::Receiver<T> {
    let (send, receive) = oneshot::channel();
    std::thread::spawn(move || {
        let _ = send.send(work());
    });
    receive
}

fn seconds(timeout: Duration) -> String {
    format!("{} s", timeout.as_secs_f64())
}

struct DaemonFindings {
    /// Whether it answers, and its version.
    answers: Vec<CheckView>,
    /// What the daemon found itself: data folder, store, destinations.
    inside: Vec<CheckView>,
    /// What upq believes about the network and the power, and what the policies do.
    policies: Vec<CheckView>,
}

async fn daemon_checks(options: &Options) -> DaemonFindings {
    let timeout = options.timeout;
    let (socket, bus) = (options.socket.clone(), options.bus);
    let (send_status, status) = oneshot::channel();
    let doctor = off_thread(move || {
        let backend = if bus {
            Backend::bus()
        } else {
            Ok(Backend::socket(socket))
        };
        let backend = match backend {
            Ok(backend) => backend,
            Err(e) => {
                let _ = send_status.send(Err(format!("{e:#}")));
                return None;
            }
        };
        match backend.status() {
            Ok((status, _)) => {
                let _ = send_status.send(Ok(status));
            }
            Err(e) => {
                let _ = send_status.send(Err(unreachable_reason(&e)));
                return None;
            }
        }
        Some(backend.doctor(timeout).map_err(|e| e.to_string()))
    });
    let place = if options.bus {
        "on the session bus".to_string()
    } else {
        format!("on {}", options.socket.display())
    };
    let start = if options.bus {
        "start it: `systemctl --user start upqd`, or run `upqd` in a session with this bus"
    } else {
        "start it: `systemctl --user start upqd`, or run `upqd`"
    };
    let status = match tokio::time::timeout(timeout, status).await {
        Ok(Ok(Ok(status))) => status,
        Ok(Ok(Err(why))) => {
            return DaemonFindings {
                answers: vec![CheckView::problem(
                    "daemon",
                    format!("upqd does not answer {place}: {why}"),
                    start,
                )],
                inside: Vec::new(),
                policies: Vec::new(),
            }
        }
        Ok(Err(_)) | Err(_) => {
            return DaemonFindings {
                answers: vec![CheckView::problem(
                "daemon",
                format!("upqd gives no answer {place} within {}", seconds(timeout)),
                "it may be stuck: look at its log (`journalctl --user -u upqd`), then restart it",
            )],
                inside: Vec::new(),
                policies: Vec::new(),
            }
        }
    };
    let mut answers = vec![CheckView::ok(
        "daemon",
        format!(
            "upqd answers {place}: pid {}, up {}",
            status.pid,
            compact_duration(status.uptime_secs)
        ),
    )];
    answers.push(version_check(&status));
    // The daemon bounds each of its checks by `timeout` and runs them at once.
    let inside = match tokio::time::timeout(timeout * 2 + Duration::from_secs(2), doctor).await {
        Ok(Ok(Some(Ok(found)))) => found,
        Ok(Ok(Some(Err(why)))) => vec![CheckView::problem(
            "daemon",
            format!("upqd could not run its own checks: {why}"),
            "look at its log (`journalctl --user -u upqd`)",
        )],
        Ok(Ok(None)) | Ok(Err(_)) | Err(_) => vec![CheckView::problem(
            "daemon",
            "upqd did not finish its own checks in time".to_string(),
            "look at its log (`journalctl --user -u upqd`)",
        )],
    };
    DaemonFindings {
        answers,
        inside,
        policies: policy_checks(&status),
    }
}

/// Why the daemon did not answer, without the advice the error carries for other commands
/// (the finding's fix says what to do).
fn unreachable_reason(error: &crate::backend::Error) -> String {
    use crate::client::ClientError;
    match error {
        crate::backend::Error::Socket(ClientError::NotRunning { reason, .. }) => {
            format!("{reason}; upqd is not running")
        }
        other => other.to_string(),
    }
}

fn version_check(status: &StatusView) -> CheckView {
    let ours = env!("CARGO_PKG_VERSION");
    if status.version == ours {
        CheckView::ok(
            "version",
            format!(
                "upqd and upqctl are both {ours}, protocol {}",
                status.protocol
            ),
        )
    } else {
        CheckView::warning(
            "version",
            format!("upqd is {}, upqctl {ours}", status.version),
            "restart upqd after an upgrade (`systemctl --user restart upqd`) so both are the same",
        )
    }
}

/// What upq believes about the machine, where it learned it, and what that does to uploads.
fn policy_checks(status: &StatusView) -> Vec<CheckView> {
    let system = &status.system;
    // A source is a service's name ("NetworkManager") or what was assumed and why.
    let from = |source: &str| {
        if source.starts_with("assumed") {
            source.to_string()
        } else {
            format!("from {source}")
        }
    };
    let mut found = vec![
        CheckView::ok(
            "network",
            format!(
                "{} ({}), connectivity {} ({})",
                if system.metered {
                    "metered"
                } else {
                    "not metered"
                },
                from(&system.metered_source),
                system.connectivity,
                from(&system.connectivity_source)
            ),
        ),
        CheckView::ok(
            "power",
            format!(
                "{}{} ({})",
                if system.on_battery {
                    "on battery"
                } else {
                    "on mains power"
                },
                system
                    .battery_percent
                    .map(|percent| format!(", battery {percent:.0}%"))
                    .unwrap_or_default(),
                from(&system.battery_source)
            ),
        ),
    ];
    if status.policies.is_empty() {
        found.push(CheckView::ok(
            "policies",
            "nothing holds uploads back or slows them now",
        ));
    }
    for policy in &status.policies {
        found.push(CheckView::warning(
            "policies",
            policy.clone(),
            "as configured; `upqctl resume --now ID` sends one job anyway, the `[daemon]` \
             settings change the rule",
        ));
    }
    found
}

/// The socket's folder and the socket: private to the user, as upqd makes them.
fn socket_checks(socket: &Path) -> Vec<CheckView> {
    let folder = socket
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let Ok(meta) = std::fs::metadata(folder) else {
        // Nothing there: upqd is not running, which the daemon's check says.
        return Vec::new();
    };
    let shown = folder.display();
    let mode = meta.permissions().mode() & 0o7777;
    if meta.uid() != uid {
        return vec![CheckView::problem(
            "socket",
            format!(
                "the socket folder {shown} belongs to uid {}, not to you",
                meta.uid()
            ),
            "use a socket in a folder of your own (`--socket`, UPQ_SOCKET)",
        )];
    }
    if mode & 0o077 != 0 {
        return vec![CheckView::problem(
            "socket",
            format!(
                "the socket folder {shown} is {mode:04o}: other users can reach upq's socket folder \
                 (upqd makes it 0700, and refuses to start where others may write)"
            ),
            format!("chmod 700 {shown}"),
        )];
    }
    let Ok(socket_meta) = std::fs::symlink_metadata(socket) else {
        return vec![CheckView::ok(
            "socket",
            format!("the socket folder {shown} is 0700 and yours"),
        )];
    };
    let socket_mode = socket_meta.permissions().mode() & 0o7777;
    if !socket_meta.file_type().is_socket() {
        return vec![CheckView::problem(
            "socket",
            format!("{} is not a socket", socket.display()),
            "remove it; upqd makes the socket when it starts",
        )];
    }
    if socket_meta.uid() != uid || socket_mode & 0o077 != 0 {
        return vec![CheckView::problem(
            "socket",
            format!(
                "the socket {} is {socket_mode:04o}, owned by uid {}: upqd makes it 0600 and yours",
                socket.display(),
                socket_meta.uid()
            ),
            "restart upqd, which makes the socket afresh",
        )];
    }
    vec![CheckView::ok(
        "socket",
        format!("the socket folder {shown} is 0700 and the socket 0600, both yours"),
    )]
}

#[zbus::proxy(
    interface = "org.freedesktop.Notifications",
    default_service = "org.freedesktop.Notifications",
    default_path = "/org/freedesktop/Notifications"
)]
trait Notifications {
    fn get_capabilities(&self) -> zbus::Result<Vec<String>>;
    fn get_server_information(&self) -> zbus::Result<(String, String, String, String)>;
}

/// The session bus: upqd's name on it, and a notification server that can show buttons.
async fn bus_checks(timeout: Duration) -> Vec<CheckView> {
    let connection = match tokio::time::timeout(timeout, zbus::Connection::session()).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(e)) => {
            return vec![
            CheckView::warning(
                "session bus",
                format!("no session bus ({e}): `upqctl --bus` and D-Bus clients cannot reach upqd"),
                "run upqd and upqctl inside your desktop session (DBUS_SESSION_BUS_ADDRESS set)",
            ),
            CheckView::warning(
                "notifications",
                "no session bus, so no notification server: stalls and needed sign-ins are \
                     not shown on the desktop (upqctl and the desk still show them)",
                "run upqd inside your desktop session",
            ),
        ]
        }
        Err(_) => {
            return vec![CheckView::warning(
                "session bus",
                format!(
                    "the session bus gives no answer within {}",
                    seconds(timeout)
                ),
                "log out and in again, or look at the session bus's log",
            )]
        }
    };
    let (name, notifications) = tokio::join!(
        tokio::time::timeout(timeout, name_check(&connection)),
        tokio::time::timeout(timeout, notification_check(&connection)),
    );
    let late = |check: &str| {
        CheckView::warning(
            check,
            format!("no answer on the session bus within {}", seconds(timeout)),
            "run `upqctl doctor` again; a bus this slow delays notifications",
        )
    };
    vec![
        name.unwrap_or_else(|_| late("session bus")),
        notifications.unwrap_or_else(|_| late("notifications")),
    ]
}

async fn name_check(connection: &zbus::Connection) -> CheckView {
    let owned = async {
        let bus = zbus::fdo::DBusProxy::new(connection).await?;
        let name = zbus::names::BusName::try_from(upq_proto::dbus::BUS_NAME)?;
        Ok::<_, zbus::Error>(bus.name_has_owner(name).await?)
    };
    match owned.await {
        Ok(true) => CheckView::ok(
            "session bus",
            format!("{} is owned: D-Bus clients reach upqd", upq_proto::dbus::BUS_NAME),
        ),
        Ok(false) => CheckView::warning(
            "session bus",
            format!(
                "nobody owns {} on this session bus: `upqctl --bus` and D-Bus clients cannot reach upqd",
                upq_proto::dbus::BUS_NAME
            ),
            "run upqd without --no-dbus in this session (the systemd unit does)",
        ),
        Err(e) => CheckView::warning(
            "session bus",
            format!("cannot ask the session bus who owns {}: {e}", upq_proto::dbus::BUS_NAME),
            "run `upqctl doctor` again",
        ),
    }
}

async fn notification_check(connection: &zbus::Connection) -> CheckView {
    let proxy = match NotificationsProxy::new(connection).await {
        Ok(proxy) => proxy,
        Err(e) => {
            return CheckView::warning(
                "notifications",
                format!("cannot talk to {NOTIFICATIONS}: {e}"),
                "run `upqctl doctor` again",
            )
        }
    };
    let capabilities = match proxy.get_capabilities().await {
        Ok(capabilities) => capabilities,
        Err(e) => {
            let absent = nobody_there(&e);
            return CheckView::warning(
                "notifications",
                if absent {
                    "no notification server on the session bus: stalls and needed sign-ins are \
                     not shown on the desktop (upqctl and the desk still show them)"
                        .to_string()
                } else {
                    format!("the notification server fails: {e}")
                },
                "start your desktop's notification service (any server of org.freedesktop.Notifications)",
            );
        }
    };
    let server = match proxy.get_server_information().await {
        Ok((name, _vendor, version, _spec)) if !name.is_empty() => format!("{name} {version}"),
        _ => "the notification server".to_string(),
    };
    let server = server.trim().to_string();
    if capabilities.iter().any(|c| c == "actions") {
        CheckView::ok(
            "notifications",
            format!("{server} shows notifications with buttons (Cancel, Retry, Sign in)"),
        )
    } else {
        CheckView::warning(
            "notifications",
            format!(
                "{server} shows no buttons: notifications cannot offer Cancel, Retry or Sign in"
            ),
            "act from `upqctl` or the desk instead, or use a notification server that supports actions",
        )
    }
}

/// Whether a call failed because nothing owns the name it went to (and nothing can be
/// started for it), rather than because the owner failed.
fn nobody_there(error: &zbus::Error) -> bool {
    const ABSENT: [&str; 2] = [
        "org.freedesktop.DBus.Error.ServiceUnknown",
        "org.freedesktop.DBus.Error.NameHasNoOwner",
    ];
    match error {
        zbus::Error::MethodError(name, _, _) => ABSENT.contains(&name.as_str()),
        zbus::Error::FDO(fdo) => matches!(
            **fdo,
            zbus::fdo::Error::ServiceUnknown(_) | zbus::fdo::Error::NameHasNoOwner(_)
        ),
        _ => false,
    }
}

/// `systemctl --user`: is upqd's unit installed, enabled and active? Says so where there is
/// no systemctl, or no user manager to ask, instead of failing.
async fn systemd_checks(timeout: Duration) -> Vec<CheckView> {
    let mut command = tokio::process::Command::new("systemctl");
    command
        .args([
            "--user",
            "show",
            UNIT,
            "--property=LoadState,UnitFileState,ActiveState,FragmentPath",
        ])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = match tokio::time::timeout(timeout, command.output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return vec![CheckView::warning(
                "systemd",
                "no systemctl here: upqd does not run as a systemd service",
                "start upqd from your session's autostart, or keep it running by hand",
            )]
        }
        Ok(Err(e)) => {
            return vec![CheckView::warning(
                "systemd",
                format!("cannot run systemctl: {e}"),
                "start upqd from your session's autostart, or keep it running by hand",
            )]
        }
        Err(_) => {
            return vec![CheckView::warning(
                "systemd",
                format!("systemctl gives no answer within {}", seconds(timeout)),
                "look at `systemctl --user status`",
            )]
        }
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let property = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let load = property("LoadState");
    if !output.status.success() || load.is_empty() {
        let why = String::from_utf8_lossy(&output.stderr).trim().to_string();
        return vec![CheckView::warning(
            "systemd",
            format!(
                "systemctl cannot reach your user manager{}: upqd does not run as a systemd service",
                if why.is_empty() { String::new() } else { format!(" ({why})") }
            ),
            "start upqd from your session's autostart, or keep it running by hand",
        )];
    }
    let install = "install the unit: `cp systemd/upqd.service ~/.config/systemd/user/ && \
                   systemctl --user enable --now upqd`";
    if load != "loaded" {
        return vec![CheckView::warning(
            "systemd",
            format!(
                "{UNIT} is not installed ({load}): upqd is run by hand and does not start at login"
            ),
            install,
        )];
    }
    let (enabled, active) = (property("UnitFileState"), property("ActiveState"));
    let path = property("FragmentPath");
    let mut found = Vec::new();
    if enabled != "enabled" {
        found.push(CheckView::warning(
            "systemd",
            format!("{UNIT} ({path}) is installed but {enabled}: upqd does not start at login"),
            "systemctl --user enable upqd",
        ));
    }
    if active != "active" {
        found.push(CheckView::warning(
            "systemd",
            format!("{UNIT} is {active}: upqd, if it runs, was started by hand"),
            "systemctl --user start upqd",
        ));
    }
    if found.is_empty() {
        found.push(CheckView::ok(
            "systemd",
            format!("{UNIT} ({path}) is enabled and active"),
        ));
    }
    found
}

/// The folders the session bus looks in for activation files, in its order.
fn activation_folders() -> Vec<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| home.map(|home| home.join(".local/share")));
    let data_dirs = std::env::var("XDG_DATA_DIRS")
        .ok()
        .filter(|dirs| !dirs.is_empty())
        .unwrap_or_else(|| "/usr/local/share:/usr/share".to_string());
    data_home
        .into_iter()
        .chain(data_dirs.split(':').map(PathBuf::from))
        .map(|dir| dir.join("dbus-1/services"))
        .collect()
}

/// The D-Bus activation file: in place, and starting a `upqd` that exists.
fn activation_checks() -> Vec<CheckView> {
    let folders = activation_folders();
    let Some(file) = folders
        .iter()
        .map(|folder| folder.join(ACTIVATION_FILE))
        .find(|file| file.is_file())
    else {
        return vec![CheckView::warning(
            "activation",
            format!(
                "no {ACTIVATION_FILE} in {}: a D-Bus call does not start upqd",
                folders
                    .first()
                    .map(|f| f.display().to_string())
                    .unwrap_or_else(|| "~/.local/share/dbus-1/services".into())
            ),
            "install it as the README's \"Install\" says (its Exec= the absolute path of upqd)",
        )];
    };
    vec![activation_file_check(&file)]
}

/// One activation file: it has an `Exec=` line naming a program that exists.
fn activation_file_check(file: &Path) -> CheckView {
    let shown = file.display();
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => {
            return CheckView::problem(
                "activation",
                format!("cannot read {shown}: {e}"),
                format!("make {shown} readable"),
            )
        }
    };
    let exec = text
        .lines()
        .map(str::trim)
        .find_map(|line| line.strip_prefix("Exec="))
        .map(|exec| exec.split_whitespace().next().unwrap_or("").to_string());
    let Some(exec) = exec.filter(|exec| !exec.is_empty()) else {
        return CheckView::problem(
            "activation",
            format!("{shown} has no Exec= line: the bus cannot start upqd"),
            format!("set Exec= in {shown} to the absolute path of upqd"),
        );
    };
    let program = Path::new(&exec);
    let runnable = program.is_absolute()
        && std::fs::metadata(program)
            .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0);
    if runnable {
        CheckView::ok("activation", format!("{shown} starts {exec}"))
    } else {
        CheckView::problem(
            "activation",
            format!("{shown} starts {exec}, which is not a program that exists: a D-Bus call cannot start upqd"),
            format!(
                "set Exec= in {shown} to the absolute path of upqd (`command -v upqd` says where it is)"
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_folder_others_can_reach_is_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("upqd.sock");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let found = socket_checks(&socket);
        assert_eq!(found[0].status, CheckStatus::Ok, "{found:?}");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let found = socket_checks(&socket);
        assert_eq!(found[0].status, CheckStatus::Problem, "{found:?}");
        assert!(found[0].message.contains("0755"), "{found:?}");
        assert_eq!(
            found[0].fix.as_deref(),
            Some(format!("chmod 700 {}", dir.path().display()).as_str())
        );
        // A file where the socket should be.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(&socket, b"").unwrap();
        let found = socket_checks(&socket);
        assert_eq!(found[0].status, CheckStatus::Problem, "{found:?}");
        assert!(found[0].message.contains("not a socket"), "{found:?}");
    }

    #[test]
    fn policies_say_what_upq_believes_and_from_where() {
        let status = StatusView {
            version: "0.1.0".into(),
            protocol: 1,
            pid: 1,
            started_at: chrono::Utc::now(),
            uptime_secs: 0,
            counts: Default::default(),
            max_active: 1,
            rate_limit: 0,
            rate_limit_until: None,
            queue_paused: false,
            destinations: Vec::new(),
            data_dir: String::new(),
            socket: String::new(),
            quarantined: 0,
            lost: Vec::new(),
            system: upq_proto::SystemView {
                metered: true,
                metered_source: "NetworkManager".into(),
                on_battery: true,
                battery_percent: Some(41.0),
                battery_source: "UPower".into(),
                connectivity: "full".into(),
                connectivity_source: "NetworkManager".into(),
            },
            policies: vec!["uploads wait: metered connection (on_metered = pause)".into()],
            web_url: None,
        };
        let found = policy_checks(&status);
        assert_eq!(
            found[0].message,
            "metered (from NetworkManager), connectivity full (from NetworkManager)"
        );
        assert_eq!(found[1].message, "on battery, battery 41% (from UPower)");
        assert_eq!(found[2].status, CheckStatus::Warning);
        assert!(found[2].message.contains("on_metered = pause"));
        assert_eq!(version_check(&status).status, CheckStatus::Ok);
        let older = StatusView {
            version: "0.0.9".into(),
            ..status
        };
        assert_eq!(version_check(&older).status, CheckStatus::Warning);
    }

    #[test]
    fn an_activation_file_must_start_a_program_that_exists() {
        let home = tempfile::tempdir().unwrap();
        let services = home.path().join("dbus-1/services");
        std::fs::create_dir_all(&services).unwrap();
        let file = services.join(ACTIVATION_FILE);
        let with_exec = |exec: &str| {
            std::fs::write(
                &file,
                format!("[D-BUS Service]\nName=dev.upq.upq1\nExec={exec}\n"),
            )
            .unwrap();
        };
        with_exec("/nonexistent/upqd");
        let found = activation_file_check(&file);
        assert_eq!(found.status, CheckStatus::Problem, "{found:?}");
        with_exec("/bin/sh --flag");
        let found = activation_file_check(&file);
        assert_eq!(found.status, CheckStatus::Ok, "{found:?}");
        std::fs::write(&file, "[D-BUS Service]\nName=dev.upq.upq1\n").unwrap();
        assert_eq!(activation_file_check(&file).status, CheckStatus::Problem);
    }
}
