//! No view, event, bus message or log line carries a platform's credentials: every output
//! of a full TikTok job (held, then published) is collected and searched for its tokens.

mod tiktok_common;

use std::time::Duration;

use tiktok_common::*;
use upq_tests::bus::{job_path, PrivateBus, MANAGER, MANAGER_PATH};
use upq_tests::events::EventLog;
use upq_tests::tiktok::TikTokServer;
use upq_tests::Daemon;
use upq_tests::{JobState, OutputExt, TestEnv};

const TIMEOUT: Duration = Duration::from_secs(90);

/// Everything a person or a client can read about job `id` right now, through every door.
fn every_view(env: &TestEnv, bus: &PrivateBus, id: u64) -> String {
    let id_arg = id.to_string();
    let mut seen = String::new();
    for args in [
        vec!["show", &id_arg],
        vec!["show", &id_arg, "--json"],
        vec!["list", "--all"],
        vec!["list", "--all", "--json"],
        vec!["status", "--json"],
        vec!["drafts", "--json"],
    ] {
        let output = env.ctl(&args);
        output.assert_ok(&args.join(" "));
        seen.push_str(&output.stdout_text());
        seen.push_str(&output.stderr_text());
    }
    for (path, method, args) in [
        (
            MANAGER_PATH.to_string(),
            format!("{MANAGER}.GetJob"),
            vec![id_arg.clone()],
        ),
        (
            MANAGER_PATH.to_string(),
            format!("{MANAGER}.ListJobs"),
            vec![],
        ),
        (
            job_path(id),
            "org.freedesktop.DBus.Properties.GetAll".to_string(),
            vec!["dev.upq.upq1.Job".to_string()],
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = bus.gdbus_call(&path, &method, &args);
        output.assert_ok(&method);
        seen.push_str(&output.stdout_text());
    }
    seen
}

#[test]
fn a_full_tiktok_job_never_shows_its_tokens() {
    let env = TestEnv::new("secrets-tiktok");
    let bus = PrivateBus::start_for(&env);
    let server = TikTokServer::start(options());
    configure(&env, &server, "direct", "");
    let video = small_video(&env, "secret");
    // Debug logging: the daemon's most talkative level must not leak either.
    let upqd = Daemon::on_bus(&env, &bus).var("RUST_LOG", "debug").start();
    let monitor = bus.monitor();
    let events = EventLog::subscribe(&env);

    let id = env.add(&video, &["--hold", "--title", "Secret"]);
    wait_state(&env, &server, id, JobState::Held, TIMEOUT);
    let mut seen = every_view(&env, &bus, id);
    env.ctl(["publish", &id.to_string()])
        .assert_ok("upqctl publish");
    wait_state(&env, &server, id, JobState::Published, TIMEOUT);
    seen.push_str(&every_view(&env, &bus, id));
    seen.push_str(&events.raw_text());
    seen.push_str(&monitor.describe());
    seen.push_str(&upqd.log());

    let record = &server.uploads()[0];
    let upload_token = record
        .upload_url
        .split(['?', '&'])
        .find_map(|pair| pair.strip_prefix("upload_token="))
        .expect("the upload_url carries an upload_token");
    assert!(upload_token.len() >= 16, "a real token: {upload_token}");
    // The search can find what it looks for: the upload URL is shown, masked.
    assert!(
        seen.contains("upload_token=REDACTED"),
        "the masked upload URL appears in the views"
    );
    assert!(
        seen.contains("Secret"),
        "the collected output covers the job"
    );
    for (what, secret) in [
        ("upload token", upload_token),
        ("access token", server.token().as_str()),
    ] {
        if let Some(at) = seen.find(secret) {
            let start = at.saturating_sub(200);
            panic!(
                "the {what} leaked: …{}…",
                &seen[start..(at + secret.len() + 50).min(seen.len())]
            );
        }
    }
    assert_no_violations(&server);
}
