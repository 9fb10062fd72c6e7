//! `upqctl doctor` against real setups, healthy and broken: the real upqd and upqctl, a
//! private session bus with a notification server (or none), @tus/server, the TikTok
//! conformance server's OAuth, a tmpfs data folder, and a stand-in `systemctl` where the
//! machine has no user manager. Each case checks the line it must give and the exit status,
//! and each broken case is also seen healthy first, so the line it looks for could be absent.

mod tiktok_common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;
use tiktok_common::*;
use upq_tests::bus::PrivateBus;
use upq_tests::env::toml_string;
use upq_tests::notifications::{NotificationServer, WITHOUT_ACTIONS, WITH_ACTIONS};
use upq_tests::serve::{CloseWith, HttpServer};
use upq_tests::tiktok::{OAuthApp, TikTokServer};
use upq_tests::{bins, signin, tmpfs_or_skip, Daemon, TestEnv, TusServer};

/// One finding of `doctor --json`.
#[derive(Debug, Clone)]
struct Finding {
    check: String,
    status: String,
    message: String,
    fix: Option<String>,
}

impl Finding {
    /// Asserts that the fix says `says`.
    fn fix_says(&self, says: &str) {
        assert!(
            self.fix.as_deref().is_some_and(|fix| fix.contains(says)),
            "{self:?}: the fix says {says:?}"
        );
    }
}

/// What a `doctor` run gave: its findings, its text, its exit status.
struct Report {
    findings: Vec<Finding>,
    code: Option<i32>,
    text: String,
}

impl Report {
    fn of(env: &TestEnv, extra: &[&str]) -> Report {
        let mut json_args = vec!["doctor", "--json", "--timeout", "2s"];
        json_args.extend_from_slice(extra);
        let json = env.ctl(&json_args);
        let findings: Value = serde_json::from_slice(&json.stdout).unwrap_or_else(|e| {
            panic!(
                "doctor --json prints JSON ({e}): {}{}",
                String::from_utf8_lossy(&json.stdout),
                String::from_utf8_lossy(&json.stderr)
            )
        });
        let findings = findings
            .as_array()
            .expect("an array")
            .iter()
            .map(|found| Finding {
                check: found["check"].as_str().expect("check").to_string(),
                status: found["status"].as_str().expect("status").to_string(),
                message: found["message"].as_str().expect("message").to_string(),
                fix: found["fix"].as_str().map(str::to_string),
            })
            .collect();
        let mut text_args = vec!["doctor", "--timeout", "2s"];
        text_args.extend_from_slice(extra);
        let text: Output = env.ctl(&text_args);
        assert_eq!(
            text.status.code(),
            json.status.code(),
            "text and JSON agree on the exit status:\n{}\n{}",
            String::from_utf8_lossy(&text.stdout),
            String::from_utf8_lossy(&json.stdout)
        );
        Report {
            findings,
            code: json.status.code(),
            text: String::from_utf8_lossy(&text.stdout).into_owned(),
        }
    }

    fn get(&self, check: &str) -> &Finding {
        self.findings
            .iter()
            .find(|found| found.check == check)
            .unwrap_or_else(|| panic!("no `{check}` finding in\n{}", self.text))
    }

    /// The finding of `check`, which must have `status` and a message that `says` this.
    fn finds(&self, check: &str, status: &str, says: &str) -> &Finding {
        let found = self.get(check);
        assert_eq!(found.status, status, "{found:?} in\n{}", self.text);
        assert!(found.message.contains(says), "{found:?} says {says:?}");
        found
    }

    fn not_ok(&self) -> Vec<&Finding> {
        self.findings.iter().filter(|f| f.status != "ok").collect()
    }

    /// The text line of `check`, which must start with `status`.
    fn assert_line(&self, status: &str, check: &str, says: &str) {
        let line = self
            .text
            .lines()
            .find(|line| {
                line.split_whitespace().nth(1) == check.split_whitespace().next()
                    && line.contains(check)
                    && line.contains(says)
            })
            .unwrap_or_else(|| panic!("no `{check}` line saying {says:?} in\n{}", self.text));
        assert!(line.starts_with(status), "{line:?} starts with {status}");
    }
}

/// A `systemctl` that answers `--user show upqd.service` as a user manager with the unit
/// installed, enabled and active would, in `<root>/bin`; returns that folder.
fn systemctl_with_unit(env: &TestEnv) -> PathBuf {
    let bin = env.root().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("systemctl");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1 $2 $3\" = \"--user show upqd.service\" ] || exit 1\n\
             printf 'LoadState=loaded\\nUnitFileState=enabled\\nActiveState=active\\n\
             FragmentPath=%s\\n' '{}'\n",
            env.config_home()
                .join("systemd/user/upqd.service")
                .display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// The D-Bus activation file as the README installs it, starting the built upqd.
fn install_activation_file(env: &TestEnv) -> PathBuf {
    let services = env.data_home().join("dbus-1/services");
    std::fs::create_dir_all(&services).unwrap();
    let file = services.join("dev.upq.upq1.service");
    std::fs::write(
        &file,
        format!(
            "[D-BUS Service]\nName=dev.upq.upq1\nExec={}\nSystemdService=upqd.service\n",
            bins::upqd().display()
        ),
    )
    .unwrap();
    file
}

/// Everything in place: a bus with upqd's name and a notification server with actions, the
/// unit (through the stand-in systemctl) and the activation file.
fn healthy_setup(env: &TestEnv, bus: &PrivateBus) {
    env.set_var("DBUS_SESSION_BUS_ADDRESS", bus.address());
    env.set_var("PATH", systemctl_with_unit(env));
    install_activation_file(env);
}

#[test]
fn a_healthy_setup_is_all_ok_over_the_socket_and_over_the_bus() {
    let env = TestEnv::new("doctor-healthy");
    let tus = TusServer::start(&env);
    env.write_config(&format!(
        "[destinations.local]\nkind = \"dir\"\npath = {}\n\n\
         [destinations.tus]\nkind = \"tus\"\nendpoint = {}\n",
        toml_string(&env.default_outbox()),
        toml_string(Path::new(&tus.endpoint))
    ));
    std::fs::create_dir_all(env.default_outbox()).unwrap();
    let bus = PrivateBus::start(env.root());
    let _notifications = NotificationServer::start(&bus, WITH_ACTIONS);
    let _daemon = Daemon::on_bus(&env, &bus).start();
    healthy_setup(&env, &bus);

    let report = Report::of(&env, &[]);
    assert_eq!(report.not_ok().len(), 0, "{}", report.text);
    assert_eq!(report.code, Some(0), "{}", report.text);
    for check in [
        "daemon",
        "version",
        "socket",
        "session bus",
        "notifications",
        "systemd",
        "activation",
        "data folder",
        "queue database",
        "destination local",
        "destination tus",
        "network",
        "power",
        "policies",
    ] {
        report.get(check);
    }
    assert!(report.get("destination tus").message.contains("tus 1.0.0"));
    assert!(
        report.get("destination tus").message.contains("creation"),
        "the extensions offered: {}",
        report.get("destination tus").message
    );
    assert!(report.get("destination local").message.contains("free"));
    assert!(report.get("data folder").message.contains("writable"));
    assert!(report
        .get("activation")
        .message
        .contains(&bins::upqd().display().to_string()));
    report.assert_line("ok", "daemon", "upqd answers on");
    assert!(
        report
            .text
            .trim_end()
            .ends_with("everything upq needs is in place"),
        "{}",
        report.text
    );
    assert!(
        !report.text.contains('\x1b'),
        "no colour when stdout is a pipe"
    );
    // Nothing was left behind by the writability probes.
    assert_eq!(
        std::fs::read_dir(env.default_outbox()).unwrap().count(),
        0,
        "the probe file is removed"
    );

    // The same over D-Bus: the daemon's own checks come through Manager.Doctor.
    let over_bus = Report::of(&env, &["--bus"]);
    assert_eq!(over_bus.code, Some(0), "{}", over_bus.text);
    assert!(over_bus
        .get("daemon")
        .message
        .contains("on the session bus"));
    assert_eq!(over_bus.get("destination tus").status, "ok");
    assert_eq!(over_bus.findings.len(), report.findings.len());
}

#[test]
fn a_dead_daemon_is_a_problem_that_says_how_to_start_it() {
    let env = TestEnv::new("doctor-dead");
    env.write_local_config("", "4MiB");
    let mut daemon = env.start_daemon();
    let alive = Report::of(&env, &[]);
    assert_eq!(alive.get("daemon").status, "ok", "{}", alive.text);

    daemon.stop();
    let started = Instant::now();
    let report = Report::of(&env, &[]);
    let daemon_check = report.finds("daemon", "problem", "does not answer");
    daemon_check.fix_says("systemctl --user start upqd");
    assert_eq!(report.code, Some(1));
    report.assert_line("problem", "daemon", "does not answer");
    assert!(report.text.contains("fix: start it"), "{}", report.text);
    // The checks that need the daemon are not invented without it.
    assert!(report.findings.iter().all(|f| f.check != "data folder"));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "two runs with a 2 s timeout took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_loosened_socket_folder_is_a_problem_until_it_is_private_again() {
    let env = TestEnv::new("doctor-socket");
    env.write_local_config("", "4MiB");
    let _daemon = env.start_daemon();
    let folder = env.socket_path().parent().unwrap().to_path_buf();
    let private = Report::of(&env, &[]);
    assert_eq!(private.get("socket").status, "ok", "{}", private.text);

    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755)).unwrap();
    let loose = Report::of(&env, &[]);
    let socket = loose.finds("socket", "problem", "0755");
    assert_eq!(
        socket.fix.as_deref(),
        Some(format!("chmod 700 {}", folder.display()).as_str())
    );
    assert_eq!(loose.code, Some(1));
    loose.assert_line("problem", "socket", "other users can reach");

    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(Report::of(&env, &[]).get("socket").status, "ok");
}

#[test]
fn a_full_data_folder_is_a_problem() {
    let env = TestEnv::new("doctor-full");
    env.write_local_config("", "4MiB");
    let data = tmpfs_or_skip!(&env.data_dir(), "96m", "");
    let _daemon = env.start_daemon();
    let roomy = Report::of(&env, &[]);
    assert_eq!(roomy.get("data folder").status, "ok", "{}", roomy.text);

    data.fill();
    let report = Report::of(&env, &[]);
    let folder = report.finds("data folder", "problem", "is full");
    assert!(
        folder
            .message
            .contains(&env.data_dir().display().to_string()),
        "{folder:?}"
    );
    assert_eq!(report.code, Some(1));
    report.assert_line("problem", "data folder", "is full");
}

/// A config with the default local destination and one tus destination at `endpoint`.
fn with_tus(env: &TestEnv, endpoint: &str) {
    std::fs::create_dir_all(env.default_outbox()).unwrap();
    env.write_config(&format!(
        "[destinations.local]\nkind = \"dir\"\npath = {}\n\n\
         [destinations.tus]\nkind = \"tus\"\nendpoint = {}\n",
        toml_string(&env.default_outbox()),
        toml_string(Path::new(endpoint))
    ));
}

#[test]
fn a_tus_server_that_is_down_is_a_problem() {
    let env = TestEnv::new("doctor-tus-down");
    let tus = TusServer::start(&env);
    with_tus(&env, &tus.endpoint);
    let _daemon = env.start_daemon();
    assert_eq!(Report::of(&env, &[]).get("destination tus").status, "ok");

    drop(tus);
    let report = Report::of(&env, &[]);
    let found = report.finds("destination tus", "problem", "does not answer");
    found.fix_says("start the server");
    assert_eq!(report.get("destination local").status, "ok");
    assert_eq!(report.code, Some(1));
}

#[test]
fn a_tus_endpoint_that_answers_404_to_options_is_a_problem() {
    let env = TestEnv::new("doctor-tus-404");
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = asked.clone();
    let server = HttpServer::start("not-tus", CloseWith::Fin, move |_| {
        move |request: hyper::Request<hyper::body::Incoming>, _closer| {
            seen.lock().unwrap().push(request.method().to_string());
            async move {
                hyper::Response::builder()
                    .status(404)
                    .body(String::from("not found"))
                    .unwrap()
            }
        }
    });
    with_tus(&env, &server.url("/files/"));
    let _daemon = env.start_daemon();
    let report = Report::of(&env, &[]);
    let found = report.finds("destination tus", "problem", "404");
    found.fix_says("`endpoint`");
    assert_eq!(report.code, Some(1));
    assert!(
        asked
            .lock()
            .unwrap()
            .iter()
            .all(|method| method == "OPTIONS"),
        "doctor only asks; it uploads nothing: {:?}",
        asked.lock().unwrap()
    );
}

#[test]
fn a_server_that_never_answers_costs_the_timeout_not_a_hang() {
    let env = TestEnv::new("doctor-hung");
    let server = HttpServer::start("hung", CloseWith::Fin, |_| {
        |_request: hyper::Request<hyper::body::Incoming>, _closer| async {
            std::future::pending::<()>().await;
            hyper::Response::new(String::new())
        }
    });
    with_tus(&env, &server.url("/files/"));
    let _daemon = env.start_daemon();
    let started = Instant::now();
    let out = env.ctl(["doctor", "--json", "--timeout", "1s"]);
    let took = started.elapsed();
    let findings: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let tus = findings
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "destination tus")
        .expect("a tus finding")
        .clone();
    assert_eq!(tus["status"], "problem", "{tus}");
    assert!(
        tus["message"]
            .as_str()
            .unwrap()
            .contains("no answer within 1 s"),
        "{tus}"
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        took < Duration::from_secs(8),
        "doctor took {took:?} with a 1 s timeout"
    );
}

#[test]
fn an_expired_tiktok_signin_is_a_problem_that_says_to_sign_in() {
    let env = TestEnv::new("doctor-tiktok");
    let server = TikTokServer::start(oauth_options(OAuthApp::default()));
    configure_signin(&env, &server, "");
    let _daemon = env.start_daemon();
    let before = Report::of(&env, &[]);
    assert_eq!(
        before.get("account tiktok").status,
        "problem",
        "not signed in yet"
    );
    signin::sign_in(&env, "tiktok");

    let signed_in = Report::of(&env, &[]);
    let account = signed_in.get("account tiktok");
    assert_eq!(account.status, "ok", "{}", signed_in.text);
    assert!(
        account.message.contains("video.publish"),
        "the scopes: {account:?}"
    );
    assert!(
        account.message.contains("access token until"),
        "{account:?}"
    );
    signed_in.finds("destination tiktok", "ok", "posts go to @");
    assert_eq!(signed_in.code, Some(0), "{}", signed_in.text);

    // A year later on TikTok's clock, the access and the refresh token have both expired.
    server.advance(Duration::from_secs(366 * 24 * 3600));
    let report = Report::of(&env, &[]);
    let account = report.finds("account tiktok", "problem", "needs a sign-in");
    account.fix_says("upqctl login tiktok");
    assert_eq!(report.code, Some(1));
    report.assert_line("problem", "account tiktok", "needs a sign-in");
    // No token shows in what doctor prints.
    assert!(!report.text.contains(&server.token()));
}

#[test]
fn a_missing_notification_server_is_a_warning_and_so_is_one_without_buttons() {
    let env = TestEnv::new("doctor-notifications");
    env.write_local_config("", "4MiB");
    let bus = PrivateBus::start(env.root());
    let _daemon = Daemon::on_bus(&env, &bus).start();
    healthy_setup(&env, &bus);

    let report = Report::of(&env, &[]);
    report.finds("notifications", "warning", "no notification server");
    assert_eq!(
        report.code,
        Some(0),
        "a warning is not a problem: {}",
        report.text
    );
    report.assert_line("warning", "notifications", "no notification server");
    assert!(
        report.text.contains("no problem, 1 warning"),
        "{}",
        report.text
    );

    let _with_actions = NotificationServer::start(&bus, WITH_ACTIONS);
    let report = Report::of(&env, &[]);
    report.finds("notifications", "ok", "with buttons");

    // Another session whose notification server shows no buttons.
    let other_dir = env.root().join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    let other = PrivateBus::start(&other_dir);
    let _plain = NotificationServer::start(&other, WITHOUT_ACTIONS);
    env.set_var("DBUS_SESSION_BUS_ADDRESS", other.address());
    let report = Report::of(&env, &[]);
    report.finds("notifications", "warning", "shows no buttons");
    // upqd is not on that bus.
    assert_eq!(
        report.get("session bus").status,
        "warning",
        "{}",
        report.text
    );
}

#[test]
fn without_systemd_the_check_says_so_instead_of_failing() {
    let env = TestEnv::new("doctor-systemd");
    env.write_local_config("", "4MiB");
    let _daemon = env.start_daemon();
    // A PATH with nothing on it: no systemctl at all.
    let empty = env.root().join("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    env.set_var("PATH", &empty);
    let report = Report::of(&env, &[]);
    report.finds("systemd", "warning", "no systemctl");
    // No session bus either (upqd runs with --no-dbus here): warnings, not problems.
    assert_eq!(report.get("session bus").status, "warning");
    assert_eq!(report.get("notifications").status, "warning");
    assert_eq!(report.get("activation").status, "warning");
    assert_eq!(report.code, Some(0), "{}", report.text);

    // An activation file whose Exec= names a program that is gone is a problem.
    let file = install_activation_file(&env);
    std::fs::write(
        &file,
        "[D-BUS Service]\nName=dev.upq.upq1\nExec=/nonexistent/upqd\n",
    )
    .unwrap();
    let report = Report::of(&env, &[]);
    assert_eq!(
        report.get("activation").status,
        "problem",
        "{}",
        report.text
    );
    assert_eq!(report.code, Some(1));

    // With the stand-in user manager that has the unit: ok.
    env.set_var("PATH", systemctl_with_unit(&env));
    let report = Report::of(&env, &[]);
    report.finds("systemd", "ok", "enabled and active");
}

#[test]
fn a_youtube_account_says_its_scopes_and_a_signed_out_one_says_to_sign_in() {
    let (env, _server) = upq_tests::youtube::world::signin_world("doctor-youtube");
    let _daemon = env.start_daemon();
    let signed_out = Report::of(&env, &[]);
    let account = signed_out.finds("account youtube", "problem", "not signed in to Google");
    assert_eq!(
        account.fix.as_deref(),
        Some("sign in: `upqctl login youtube` (or the desk's Accounts page)")
    );
    assert_eq!(signed_out.code, Some(1));

    signin::sign_in(&env, "youtube");
    let report = Report::of(&env, &[]);
    let account = report.get("account youtube");
    assert_eq!(account.status, "ok", "{}", report.text);
    assert!(
        account.message.contains("youtube.upload"),
        "the scopes: {account:?}"
    );
    assert_eq!(report.code, Some(0), "{}", report.text);
}
