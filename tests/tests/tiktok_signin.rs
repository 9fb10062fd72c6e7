//! Signing in to TikTok and staying signed in, end to end: the real upqd and upqctl against the
//! conformance server's OAuth endpoints, with the browser's part played by an HTTP client.
//!
//! Covers the login flow (PKCE, state, loopback redirect), refusals that must never reach the
//! token endpoint, refresh across many expiries with rotation, kill -9 at each step of a
//! refresh, a revoked grant (jobs wait, one notification with a Sign in action), the file
//! store, and that no token shows in any output.

mod tiktok_common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tiktok_common::*;
use upq_tests::bus::PrivateBus;
use upq_tests::http;
use upq_tests::keyring::Keyring;
use upq_tests::notifications::{NotificationServer, WITH_ACTIONS};
use upq_tests::signin::{self, consent, fake_browser, query_param, Login, STEP};
use upq_tests::tiktok::{OAuthApp, TikTokOptions, TikTokServer};
use upq_tests::{bins, wait_for, Daemon, JobState, OutputExt, TestEnv};

const PUBLISH_TIMEOUT: Duration = Duration::from_secs(90);

/// A test's folders and a TikTok server with the default app, configured to sign in.
fn signin_world(name: &str) -> (TestEnv, TikTokServer) {
    let env = TestEnv::new(name);
    let server = TikTokServer::start(oauth_options(OAuthApp::default()));
    configure_signin(&env, &server, "");
    (env, server)
}

fn sign_in(env: &TestEnv) {
    signin::sign_in(env, "tiktok");
}

/// Nothing of upqd answers at `url` any more. The port is free again, so another process
/// may have taken it meanwhile: what counts is that upqd's sign-in page is not what answers.
fn assert_nobody_listens(url: &str) {
    if let Ok(answer) = http::request("GET", url, &[], b"") {
        let page = String::from_utf8_lossy(&answer.body);
        assert!(
            !page.contains("upq"),
            "a callback after the sign-in ended was answered by upqd: {page}"
        );
    }
}

/// Every access and refresh token shape TikTok uses, found in `text`.
fn tokens_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for prefix in ["act.", "rft."] {
        let mut rest = text;
        while let Some(at) = rest.find(prefix) {
            let tail: String = rest[at + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            if tail.len() >= 8 {
                found.push(format!("{prefix}{tail}"));
            }
            rest = &rest[at + prefix.len()..];
        }
    }
    found
}

fn assert_no_secret(what: &str, text: &str) {
    let tokens = tokens_in(text);
    assert!(tokens.is_empty(), "{what} shows a token: {tokens:?}");
    assert!(
        !text.contains(&OAuthApp::default().client_secret),
        "{what} shows the client secret"
    );
}

fn account(env: &TestEnv) -> Value {
    let accounts = env.ctl_json(["accounts"]);
    accounts
        .as_array()
        .and_then(|list| list.iter().find(|a| a["destination"] == "tiktok"))
        .cloned()
        .unwrap_or_else(|| panic!("accounts lists tiktok: {accounts}"))
}

fn wait_signin_required(env: &TestEnv, server: &TikTokServer, id: u64) -> upq_tests::JobView {
    upq_tests::wait::wait_for_explained(
        PUBLISH_TIMEOUT,
        || {
            format!(
                "job {id} to wait for a sign-in; history:\n{}\nserver:\n{}",
                upq_tests::describe_history(&env.show(id)),
                server.describe()
            )
        },
        || {
            let job = env.job(id);
            (job.state == JobState::Retrying
                && job.last_error.as_ref().map(|e| e.kind.as_str()) == Some("signin_required"))
            .then_some(job)
        },
    )
}

#[test]
fn a_job_queued_before_the_sign_in_publishes_after_it_and_no_token_shows() {
    let (env, server) = signin_world("tiktok-signin");
    let video = small_video(&env, "before-signin");
    let daemon = env.start_daemon();

    assert_eq!(account(&env)["state"], "signed_out");
    let added = env.ctl(["add", video.arg(), "--title", "Queued first"]);
    added.assert_ok("add before signing in is accepted");
    assert!(
        added.stderr_text().contains("upqctl login tiktok"),
        "add warns that a sign-in is needed: {}",
        added.stderr_text()
    );
    let id: u64 = added
        .stdout_text()
        .trim()
        .parse()
        .expect("add prints the id");
    let waiting = wait_signin_required(&env, &server, id);
    assert_eq!(
        waiting.attempts, 0,
        "waiting for a sign-in counts no attempt"
    );
    assert!(
        waiting
            .last_error
            .unwrap()
            .message
            .contains("upqctl login tiktok"),
        "the message names the command"
    );

    // The authorization URL follows TikTok's desktop rules.
    let login = Login::start(&env, "tiktok", &[]);
    let url = login.url.clone();
    assert!(url.starts_with(&server.authorize_url()), "{url}");
    assert_eq!(
        query_param(&url, "client_key").as_deref(),
        Some("upq-test-client-key")
    );
    assert_eq!(query_param(&url, "response_type").as_deref(), Some("code"));
    assert_eq!(
        query_param(&url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let challenge = query_param(&url, "code_challenge").expect("a code_challenge");
    assert_eq!(
        challenge.len(),
        64,
        "TikTok's challenge is hex SHA-256: {challenge}"
    );
    assert!(challenge.bytes().all(|b| b.is_ascii_hexdigit()));
    let scope = query_param(&url, "scope").expect("scopes");
    assert!(scope.split(',').any(|s| s == "video.publish"), "{scope}");
    let redirect = query_param(&url, "redirect_uri").expect("a redirect_uri");
    assert!(redirect.starts_with("http://127.0.0.1:"), "{redirect}");
    let state = query_param(&url, "state").expect("a state");

    // Callbacks that do not carry this sign-in's state are refused and go nowhere.
    for forged in [
        format!("{redirect}?code=stolen"),
        format!("{redirect}?code=stolen&state=not-{state}"),
    ] {
        let answer = http::request("GET", &forged, &[], b"").expect("the loopback answers");
        assert_eq!(answer.status, 400, "{forged}");
        assert!(String::from_utf8_lossy(&answer.body).contains("nothing was done"));
    }
    assert!(
        server.token_requests().is_empty(),
        "a forged callback reached the token endpoint: {:?}",
        server.token_requests()
    );

    let (location, landed) = consent(&url);
    assert_eq!(landed.status, 200);
    assert!(String::from_utf8_lossy(&landed.body).contains("close this tab"));
    let (status, stderr) = login.finish();
    assert_eq!(status.code(), Some(0), "login: {stderr}");
    // The listener is gone with the sign-in: a replay finds nobody.
    assert_nobody_listens(&location);
    assert_eq!(server.token_requests().len(), 1, "one code exchange");

    let job = wait_state(&env, &server, id, JobState::Published, PUBLISH_TIMEOUT);
    assert_eq!(job.attempts, 0, "{job:?}");
    let show = env.ctl(["show", &id.to_string()]);
    assert!(
        show.stdout_text().contains("signed in again"),
        "{}",
        show.stdout_text()
    );

    let signed = account(&env);
    assert_eq!(signed["state"], "signed_in", "{signed}");
    assert_eq!(signed["account_id"], OAuthApp::default().open_id);
    assert_eq!(signed["display_name"], OAuthApp::default().display_name);
    assert_eq!(signed["store"], "file");
    assert!(signed["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s == "video.publish"));
    let file = env.data_dir().join("accounts/tiktok.json");
    let mode = std::fs::metadata(&file)
        .expect("the token file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let stored = std::fs::read_to_string(&file).unwrap();
    assert!(
        !tokens_in(&stored).is_empty(),
        "the check finds tokens where they are"
    );

    // Nothing a person or a log sees carries a token.
    let outputs = [
        (
            "show --json",
            env.ctl(["show", &id.to_string(), "--json"]).stdout_text(),
        ),
        (
            "list --all --json",
            env.ctl(["list", "--all", "--json"]).stdout_text(),
        ),
        ("accounts", env.ctl(["accounts"]).stdout_text()),
        (
            "accounts --json",
            env.ctl(["accounts", "--json"]).stdout_text(),
        ),
        ("status --json", env.ctl(["status", "--json"]).stdout_text()),
        ("the daemon's log", daemon.log()),
    ];
    for (what, text) in &outputs {
        assert_no_secret(what, text);
    }
    assert_no_violations(&server);

    // Sign out: revoked at TikTok, forgotten here.
    let out = env.ctl(["logout", "tiktok"]);
    out.assert_ok("logout");
    assert_eq!(server.revocations(), 1);
    assert!(!file.exists(), "the token file is removed");
    assert_eq!(account(&env)["state"], "signed_out");
    video.assert_unchanged();
}

#[test]
fn a_refused_consent_fails_the_login_and_an_unfinished_one_times_out() {
    let (env, server) = signin_world("tiktok-signin-refused");
    let _daemon = env.start_daemon();

    server.set_consent(false);
    let login = Login::start(&env, "tiktok", &[]);
    let (_, landed) = consent(&login.url);
    assert!(String::from_utf8_lossy(&landed.body).contains("access_denied"));
    let (status, stderr) = login.finish();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("access_denied"),
        "the provider's error is shown: {stderr}"
    );

    server.set_consent(true);
    let started = Instant::now();
    let login = Login::start(&env, "tiktok", &["--timeout", "2s"]);
    let redirect = query_param(&login.url, "redirect_uri").unwrap();
    let url = login.url.clone();
    let (status, stderr) = login.finish();
    assert_eq!(status.code(), Some(124), "{stderr}");
    assert!(started.elapsed() >= Duration::from_secs(2));
    // After the timeout the callback finds nobody, and the code is never redeemed.
    let state = query_param(&url, "state").unwrap();
    let late = format!("{redirect}?code=late&state={state}");
    assert_nobody_listens(&late);
    assert!(server.token_requests().is_empty());
    assert_eq!(account(&env)["state"], "signed_out");
}

/// Three days of posts, one every twelve hours, on a server whose clock runs 8640 times
/// faster (a day in ten seconds) and whose access tokens live TikTok's two hours: about 36
/// expiries, each met by a refresh with rotation. Two jobs run at once, so a second refresh
/// with an already rotated token would show as a violation.
#[test]
fn three_days_of_scheduled_posts_outlive_many_access_tokens() {
    let env = TestEnv::new("tiktok-signin-days");
    let day = 86_400.0;
    let app = OAuthApp {
        access_ttl: Duration::from_secs(2 * 3600),
        code_ttl: Duration::from_secs(30 * 86_400),
        ..OAuthApp::default()
    };
    let server = TikTokServer::start(TikTokOptions {
        time_scale: day / 10.0,
        url_lifetime: Duration::from_secs(365 * 86_400),
        ..oauth_options(app)
    });
    configure_signin(&env, &server, "max_active = 2");
    let _daemon = env.start_daemon();
    sign_in(&env);

    let start = chrono::Utc::now();
    let mut ids = Vec::new();
    for post in 0..6u32 {
        let video = small_video(&env, &format!("day-{post}"));
        let at = start + chrono::Duration::seconds(5 * i64::from(post + 1));
        let at = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        ids.push(env.add(&video, &["--at", &at, "--title", &format!("post {post}")]));
    }
    // On a clock this fast a token can die between two calls of one attempt; that attempt is
    // retried. What matters: every post is published and no rule is broken.
    for &id in &ids {
        wait_state(&env, &server, id, JobState::Published, PUBLISH_TIMEOUT);
    }
    // The last post is due thirty seconds (three virtual days) after `start`, rounded down to
    // the second: the server has lived at least 2.9 of its days by then.
    let virtual_days = server.now().as_secs_f64() / day;
    assert!(
        virtual_days >= 2.9,
        "the server lived {virtual_days:.1} days"
    );
    // upq refreshes when it needs a token, not on a timer: every post met an expired one.
    assert!(
        server.refresh_count() >= ids.len(),
        "each post outlived an access token and refreshed: {} refreshes",
        server.refresh_count()
    );
    assert_no_violations(&server);
}

/// kill -9 at each step of a refresh, then a restart: before the request and after the
/// store, the job goes on by itself; between TikTok's answer and the store, the rotated-away
/// token is refused, the job waits for a sign-in instead of failing, and a sign-in finishes it.
#[test]
fn a_kill_at_any_step_of_a_refresh_loses_no_job() {
    for step in [
        "refresh-before-request",
        "refresh-after-store",
        "refresh-after-response",
    ] {
        let (env, server) = signin_world(&format!("tiktok-signin-kill-{step}"));
        {
            let _daemon = env.start_daemon();
            sign_in(&env);
        }
        let video = small_video(&env, "kill");
        let mut crashing = Daemon::without_bus(&env).var("UPQ_CRASH_AT", step).start();
        let id = env.add(&video, &["--hold"]);
        wait_state(&env, &server, id, JobState::Held, PUBLISH_TIMEOUT);
        // The next API call meets an expired token and refreshes: the crash point.
        server.expire_access_tokens();
        env.ctl(["publish", &id.to_string()]).assert_ok("publish");
        let died = crashing.wait_exit(STEP);
        assert!(died.is_some(), "{step}: upqd was not killed at the step");
        let refreshes_before = server.refresh_count();

        let _daemon = env.start_daemon();
        if step == "refresh-after-response" {
            // TikTok rotated the token, upq never stored the new one.
            assert_eq!(refreshes_before, 1, "{step}");
            wait_signin_required(&env, &server, id);
            let refused: Vec<_> = server
                .token_requests()
                .into_iter()
                .filter(|r| r.grant_type == "refresh_token" && r.outcome != "ok")
                .collect();
            assert_eq!(
                refused.len(),
                1,
                "{step}: one refused refresh, then none: {refused:?}"
            );
            sign_in(&env);
        }
        let job = wait_state(&env, &server, id, JobState::Published, PUBLISH_TIMEOUT);
        assert!(job.last_error.is_none(), "{step}: {job:?}");
        // The kill can also lose the record of the final chunk's answer: its resend meets
        // 416 "already received", as in every kill test. Nothing else may be broken, and
        // before the answer or after the store no refresh token is ever refused.
        if step == "refresh-after-response" {
            assert_no_violations_but(&server, &["416", "refresh"]);
        } else {
            assert_no_violations_but(&server, &["416"]);
        }
        video.assert_unchanged();
    }
}

#[test]
fn a_revoked_grant_makes_jobs_wait_with_one_notification_that_signs_in() {
    let (env, server) = signin_world("tiktok-signin-revoked");
    // No service activation: nothing answers for the Secret Service, so tokens go to a file.
    let bus = PrivateBus::start_for_every_user(env.root());
    let notifications = NotificationServer::start(&bus, WITH_ACTIONS);
    let (bin, opened) = fake_browser(&env);
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let _daemon = Daemon::on_bus(&env, &bus).var("PATH", path).start();
    sign_in(&env);
    assert_eq!(
        account(&env)["store"],
        "file",
        "no Secret Service on this bus"
    );

    // The user removes the app in TikTok: refresh and access tokens die.
    server.revoke_grants();
    let ids: Vec<u64> = (0..3)
        .map(|n| env.add(&small_video(&env, &format!("revoked-{n}")), &[]))
        .collect();
    for &id in &ids {
        let job = wait_signin_required(&env, &server, id);
        assert_eq!(job.attempts, 0);
    }
    let shown = wait_for(STEP, "the sign-in notification for 3 uploads", || {
        notifications
            .notifies()
            .into_iter()
            .rev()
            .find(|(_, n)| n.summary == "Sign in to TikTok again to continue 3 uploads")
    });
    let (_, notification) = shown;
    assert!(
        notification.action_keys().contains(&"signin"),
        "{notification:?}"
    );
    let signin_notifications: std::collections::BTreeSet<u32> = notifications
        .notifies()
        .into_iter()
        .filter(|(_, n)| n.summary.starts_with("Sign in to TikTok"))
        .map(|(_, n)| n.id)
        .collect();
    assert_eq!(
        signin_notifications.len(),
        1,
        "one notification per account, updated in place"
    );
    assert_eq!(account(&env)["state"], "signin_required");

    // The Sign in button opens the sign-in in the browser.
    notifications.invoke_action(notification.id, "signin");
    let url = wait_for(STEP, "the browser to be opened", || {
        std::fs::read_to_string(&opened)
            .ok()
            .and_then(|text| text.lines().last().map(str::to_string))
    });
    let (_, landed) = consent(&url);
    assert_eq!(
        landed.status,
        200,
        "{}",
        String::from_utf8_lossy(&landed.body)
    );
    for &id in &ids {
        let job = wait_state(&env, &server, id, JobState::Published, PUBLISH_TIMEOUT);
        assert_eq!(job.attempts, 0, "{job:?}");
    }
    assert_eq!(account(&env)["state"], "signed_in");
    assert_no_violations(&server);
}

#[test]
fn the_secret_service_keeps_the_tokens_across_a_restart() {
    let (env, server) = signin_world("tiktok-signin-keyring");
    let bus = PrivateBus::start_for_every_user(env.root());
    let _keyring = Keyring::start(&env, &bus);
    {
        let daemon = Daemon::on_bus(&env, &bus).start();
        sign_in(&env);
        let signed = account(&env);
        assert_eq!(signed["store"], "secret_service", "{signed}");
        assert_eq!(signed["state"], "signed_in", "{signed}");
        assert!(
            !env.data_dir().join("accounts/tiktok.json").exists(),
            "with a Secret Service no token file is written"
        );
        let listed = bus.call(
            upq_proto::dbus::MANAGER_PATH,
            upq_proto::dbus::MANAGER_INTERFACE,
            "ListAccounts",
            &[],
        );
        assert!(listed.to_string().contains("secret_service"), "{listed}");
        assert_no_secret("D-Bus ListAccounts", &listed.to_string());
        assert_no_secret("the daemon's log", &daemon.log());
    }
    // A new daemon finds the account in the keyring and posts with it.
    let _daemon = Daemon::on_bus(&env, &bus).start();
    let again = account(&env);
    assert_eq!(again["state"], "signed_in", "{again}");
    assert_eq!(again["store"], "secret_service");
    let video = small_video(&env, "from-keyring");
    let id = env.add(&video, &[]);
    wait_state(&env, &server, id, JobState::Published, PUBLISH_TIMEOUT);
    assert_no_violations(&server);
}

#[test]
fn a_job_is_never_posted_to_an_account_other_than_its_own() {
    let (env, server) = signin_world("tiktok-signin-other-account");
    let _daemon = env.start_daemon();
    sign_in(&env);
    let first = OAuthApp::default().open_id;

    // Queued under the first account while the queue is paused, so nothing starts yet.
    env.ctl(["pause", "--all"]).assert_ok("pause the queue");
    let video = small_video(&env, "whose");
    let id = env.add(&video, &[]);
    assert_eq!(env.job(id).metadata.extra.get("account"), Some(&first));

    // Someone else signs in on this machine.
    server.set_user("someone-else", "Someone Else");
    sign_in(&env);
    assert_eq!(account(&env)["account_id"], "someone-else");
    env.ctl(["resume", "--all"]).assert_ok("resume the queue");
    let waiting = wait_signin_required(&env, &server, id);
    let message = waiting.last_error.unwrap().message;
    assert!(
        message.contains("someone-else") && message.contains(&first),
        "the message names both accounts: {message}"
    );
    assert!(
        server.uploads().is_empty(),
        "nothing was started for the other account"
    );

    // The right person signs in again: the job goes on and posts to its own account.
    server.set_user(&first, "upq test creator");
    sign_in(&env);
    wait_state(&env, &server, id, JobState::Published, PUBLISH_TIMEOUT);
    assert_eq!(server.uploads().len(), 1);
    assert_no_violations(&server);
}

#[test]
fn a_publish_time_that_passes_while_waiting_for_a_sign_in_publishes_at_once_after_it() {
    let (env, server) = signin_world("tiktok-signin-late");
    let _daemon = env.start_daemon();
    let video = small_video(&env, "late");
    let at = chrono::Utc::now() + chrono::Duration::seconds(2);
    let at_text = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let id = env.add(&video, &["--at", &at_text]);
    wait_signin_required(&env, &server, id);
    wait_for(STEP, "the publish time to pass", || {
        (chrono::Utc::now() > at + chrono::Duration::seconds(1)).then_some(())
    });
    sign_in(&env);
    let job = wait_state(&env, &server, id, JobState::Published, PUBLISH_TIMEOUT);
    let history = job.history.unwrap_or_default();
    assert!(
        history
            .iter()
            .any(|entry| entry.reason.contains("publish time passed while it waited")),
        "the history says the publish time passed: {history:?}"
    );
    assert_no_violations(&server);
}

/// The same sign-in from a desktop front end: `Manager.Login` gives the URL, and
/// `LoginFinished` says how it ended; `upqctl --bus` drives the same calls.
#[test]
fn a_sign_in_over_dbus_ends_with_login_finished() {
    let (env, server) = signin_world("tiktok-signin-dbus");
    let bus = PrivateBus::start_for_every_user(env.root());
    let _daemon = Daemon::on_bus(&env, &bus).start();
    let monitor = bus.monitor();
    let manager = upq_proto::dbus::MANAGER_INTERFACE;
    let answer = bus.call(
        upq_proto::dbus::MANAGER_PATH,
        manager,
        "Login",
        &["s", "tiktok"],
    );
    let url = answer[0]
        .as_str()
        .expect("Login returns the URL")
        .to_string();
    assert!(url.starts_with(&server.authorize_url()), "{url}");
    let (_, landed) = consent(&url);
    assert_eq!(landed.status, 200);
    let finished = monitor.wait_for(STEP, "LoginFinished", |m| {
        m.is_signal(manager, "LoginFinished")
    });
    assert_eq!(finished.args()[0], "tiktok");
    assert_eq!(finished.args()[1], true);
    assert_no_secret("LoginFinished", &finished.args().to_string());

    let listed = bus.call(upq_proto::dbus::MANAGER_PATH, manager, "ListAccounts", &[]);
    assert!(listed.to_string().contains("signed_in"), "{listed}");
    assert_no_secret("ListAccounts", &listed.to_string());
    // upqctl over the bus reads the same account.
    let mut cmd = Command::new(bins::upqctl());
    cmd.args(["--bus", "--json", "accounts"]);
    env.apply_env(&mut cmd);
    cmd.env("DBUS_SESSION_BUS_ADDRESS", bus.address());
    let output = cmd.output().expect("run upqctl --bus accounts");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let accounts: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(accounts[0]["state"], "signed_in", "{accounts}");

    // An unknown destination is a named error, not a hang.
    let refused = bus.try_call(
        upq_proto::dbus::MANAGER_PATH,
        manager,
        "Login",
        &["s", "nowhere"],
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("nowhere"));
}

#[test]
fn login_opens_the_browser_with_xdg_open() {
    let (env, server) = signin_world("tiktok-signin-browser");
    let _daemon = env.start_daemon();
    let (bin, opened) = fake_browser(&env);
    let mut cmd = Command::new(bins::upqctl());
    cmd.arg("--socket")
        .arg(env.socket_path())
        .args(["login", "tiktok"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    env.apply_env(&mut cmd);
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    cmd.env("PATH", path);
    let mut child = cmd.spawn().expect("spawn upqctl login");
    let url = wait_for(STEP, "xdg-open to be given the URL", || {
        std::fs::read_to_string(&opened)
            .ok()
            .and_then(|text| text.lines().next().map(str::to_string))
    });
    assert!(url.starts_with(&server.authorize_url()), "{url}");
    consent(&url);
    let status = wait_for(STEP, "upqctl login to end", || child.try_wait().unwrap());
    let output = child.wait_with_output().unwrap();
    assert!(
        status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !stdout.contains("http://"),
        "with a browser the URL is not printed: {stdout}"
    );
    assert!(stdout.contains("signed in to TikTok"), "{stdout}");
}
