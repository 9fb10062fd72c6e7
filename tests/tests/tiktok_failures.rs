//! How TikTok's refusals end a job: each class of `fail_reason`, a refused token or scope
//! (no retry storm), rate limits (pacing and 429) and the pending-share limit.

mod tiktok_common;

use std::time::Duration;

use tiktok_common::*;
use upq_tests::tiktok::{Fault, TikTokOptions, TikTokServer};
use upq_tests::{holds_for, JobState, OutputExt, TestEnv};

const TIMEOUT: Duration = Duration::from_secs(90);

fn last_error(env: &TestEnv, id: u64) -> (String, String) {
    let job = env.show(id);
    let error = job.last_error.expect("a failed job has last_error");
    (error.kind, error.message)
}

#[test]
fn each_class_of_fail_reason() {
    let env = TestEnv::new("tiktok-fail-reasons");
    let server = TikTokServer::start(options());
    configure(&env, &server, "direct", "");
    let video = small_video(&env, "reasons");
    let _daemon = env.start_daemon();

    // internal: the whole upload is done again, and then it is published.
    server.inject(Fault::FailProcessing("internal".into()));
    let id = env.add(&video, &[]);
    wait_state(&env, &server, id, JobState::Published, TIMEOUT);
    let uploads = server.uploads();
    assert_eq!(uploads.len(), 2, "uploaded again:\n{}", server.describe());
    assert_eq!(
        uploads[0].statuses.last().map(String::as_str),
        Some("FAILED")
    );
    assert_clean_upload(&server, &uploads[1], &video);
    let history = upq_tests::describe_history(&env.show(id));
    assert!(history.contains("internal"), "{history}");

    // Reasons that retrying cannot fix fail the job with an explanation.
    let cases = [
        ("spam_risk_too_many_posts", "daily post limit"),
        ("spam_risk_user_banned_from_posting", "banned"),
        ("spam_risk_text", "text as spam"),
        ("file_format_check_failed", "file format"),
        ("frame_rate_check_failed", "23 to 60 fps"),
        ("auth_removed", "authorize it again"),
    ];
    for (reason, explained) in cases {
        let before = server.uploads().len();
        server.inject(Fault::FailProcessing(reason.into()));
        let id = env.add(&video, &[]);
        wait_state(&env, &server, id, JobState::Failed, TIMEOUT);
        let (_, message) = last_error(&env, id);
        assert!(
            message.contains(explained) && message.contains(reason),
            "{reason}: the message explains it: {message}"
        );
        assert_eq!(
            server.uploads().len(),
            before + 1,
            "{reason} is not retried:\n{}",
            server.describe()
        );
    }
    assert_no_violations(&server);
}

#[test]
fn a_refused_token_fails_once_and_names_the_destination() {
    let env = TestEnv::new("tiktok-token");
    let server = TikTokServer::start(options());
    configure(&env, &server, "inbox", "");
    let video = small_video(&env, "token");
    let _daemon = env.start_daemon();

    server.set_token("act.someone-else");
    let id = env.add(&video, &[]);
    wait_state(&env, &server, id, JobState::Failed, TIMEOUT);
    let (kind, message) = last_error(&env, id);
    assert_eq!(kind, "auth");
    assert!(
        message.contains("'tiktok'") && message.contains("access_token_invalid"),
        "{message}"
    );
    assert!(
        !message.contains(&server.token()),
        "the token never appears in messages"
    );
    let inits = || {
        server
            .requests()
            .iter()
            .filter(|r| r.endpoint == "init")
            .count()
    };
    holds_for(Duration::from_secs(2), "no further init", || inits() == 1);

    // A token without the inbox scope.
    server.set_token(&server_token());
    server.set_scopes(&["video.publish"]);
    let id = env.add(&video, &[]);
    wait_state(&env, &server, id, JobState::Failed, TIMEOUT);
    let (kind, message) = last_error(&env, id);
    assert_eq!(kind, "auth");
    assert!(
        message.contains("scope_not_authorized") && message.contains("video.upload"),
        "{message}"
    );
    let log = std::fs::read_to_string(env.log_path()).unwrap_or_default();
    assert!(!log.contains(&server_token()), "the token is never logged");
}

fn server_token() -> String {
    TikTokOptions::default().token
}

#[test]
fn direct_mode_refuses_at_add_when_the_token_is_refused() {
    let env = TestEnv::new("tiktok-token-add");
    let server = TikTokServer::start(options());
    configure(&env, &server, "direct", "");
    let video = small_video(&env, "refused");
    let _daemon = env.start_daemon();
    server.set_token("act.expired");
    let output = env.ctl(["add", video.arg()]);
    assert_eq!(output.code(), 1, "add is refused");
    let stderr = output.stderr_text();
    assert!(
        stderr.contains("'tiktok'") && stderr.contains("access token"),
        "{stderr}"
    );
    assert!(server.uploads().is_empty());
    assert!(env.list(true).is_empty(), "nothing was queued");
}

#[test]
fn rate_limits_pace_the_queue_and_429_waits() {
    let env = TestEnv::new("tiktok-rates");
    let server = TikTokServer::start(TikTokOptions {
        max_pending_shares: 100,
        ..options()
    });
    configure_with(&env, &server, "inbox", "max_active = 8", "");
    let video = small_video(&env, "paced");
    let _daemon = env.start_daemon();

    // A 429 from TikTok makes the first job wait, then go on.
    server.inject(Fault::respond(
        "init",
        429,
        "rate_limit_exceeded",
        "too many requests",
    ));
    let ids: Vec<u64> = (0..9).map(|_| env.add(&video, &[])).collect();
    for &id in &ids {
        wait_state(&env, &server, id, JobState::Published, TIMEOUT);
    }
    assert_eq!(
        server.rate_limited(),
        0,
        "upqd kept to 6 inits per window by itself:\n{}",
        server.describe()
    );
    let limited: Vec<u64> = ids
        .iter()
        .copied()
        .filter(|&id| {
            env.show(id)
                .history
                .unwrap_or_default()
                .iter()
                .any(|e| e.reason.contains("rate limit"))
        })
        .collect();
    assert_eq!(limited.len(), 1, "one job met the injected 429");
    // Nine inits in windows of 3 s with at most 6 per window: the last came a window later.
    let inits: Vec<Duration> = server
        .requests()
        .iter()
        .filter(|r| r.endpoint == "init" && r.status == 200)
        .map(|r| r.at)
        .collect();
    assert_eq!(inits.len(), 9);
    for (i, at) in inits.iter().enumerate() {
        let in_window = inits[i..].iter().filter(|t| **t < *at + WINDOW).count();
        assert!(
            in_window <= 6,
            "{in_window} inits within {WINDOW:?}: {inits:?}"
        );
    }
    assert_no_violations(&server);
}

#[test]
fn too_many_pending_inbox_shares_is_explained() {
    let env = TestEnv::new("tiktok-shares");
    let server = TikTokServer::start(TikTokOptions {
        max_pending_shares: 1,
        ..options()
    });
    configure(&env, &server, "inbox", "");
    let video = small_video(&env, "share");
    let _daemon = env.start_daemon();
    let first = env.add(&video, &[]);
    wait_state(&env, &server, first, JobState::Published, TIMEOUT);
    let second = env.add(&video, &[]);
    wait_state(&env, &server, second, JobState::Failed, TIMEOUT);
    let (_, message) = last_error(&env, second);
    assert!(
        message.contains("at most 5 pending inbox shares in any 24 hours"),
        "{message}"
    );
}

#[test]
fn an_unaudited_app_may_only_post_privately() {
    let env = TestEnv::new("tiktok-unaudited");
    let server = TikTokServer::start(TikTokOptions {
        unaudited: true,
        ..options()
    });
    configure(&env, &server, "direct", "");
    let video = small_video(&env, "unaudited");
    let _daemon = env.start_daemon();

    let public = env.add(&video, &["--privacy", "public"]);
    wait_state(&env, &server, public, JobState::Failed, TIMEOUT);
    let (kind, message) = last_error(&env, public);
    assert_eq!(kind, "unaudited");
    assert!(
        message.contains("SELF_ONLY")
            && message.contains("unaudited_client_can_only_post_to_private_accounts"),
        "{message}"
    );
    // The default privacy is private, which an unaudited app may post.
    let private = env.add(&video, &[]);
    wait_state(&env, &server, private, JobState::Published, TIMEOUT);
    assert_eq!(
        server.uploads()[0].post_info.as_ref().unwrap()["privacy_level"],
        "SELF_ONLY"
    );
}

#[test]
fn server_errors_on_a_chunk_resend_it() {
    let env = TestEnv::new("tiktok-5xx");
    let server = TikTokServer::start(options());
    configure(&env, &server, "inbox", "chunk_size = \"5MB\"");
    let video = mp4_of_size(&env, "flaky", 66_000_000);
    let _daemon = env.start_daemon();
    server.inject(Fault::respond("put", 503, "internal_error", "try again"));
    server.inject(Fault::respond("put", 500, "internal_error", "try again"));
    let id = env.add(&video, &[]);
    wait_state(&env, &server, id, JobState::Published, TIMEOUT);
    let uploads = server.uploads();
    assert_eq!(uploads.len(), 1, "the same upload went on");
    assert!(uploads[0].complete);
    assert_eq!(uploads[0].blake3.as_deref(), Some(video.hash.as_str()));
    let puts: Vec<u16> = server
        .requests()
        .iter()
        .filter(|r| r.endpoint == "put")
        .map(|r| r.status)
        .collect();
    assert_eq!(&puts[..3], &[503, 500, 206], "{puts:?}");
    assert_no_violations(&server);
}

#[test]
fn status_polls_of_many_jobs_stay_within_tiktoks_limit() {
    let env = TestEnv::new("tiktok-status-rate");
    let server = TikTokServer::start(TikTokOptions {
        max_pending_shares: 100,
        ..options()
    });
    configure_with(&env, &server, "inbox", "max_active = 18", "");
    let video = small_video(&env, "polled");
    let _daemon = env.start_daemon();
    // Eighteen uploads that each stay in processing for a while, polling at least every
    // half window: together they ask about 36 times a window, over TikTok's 30.
    for _ in 0..18 {
        server.inject(Fault::SlowProcessing(12));
    }
    let ids: Vec<u64> = (0..18).map(|_| env.add(&video, &[])).collect();
    for &id in &ids {
        wait_state(&env, &server, id, JobState::Published, TIMEOUT);
    }
    assert_eq!(server.rate_limited(), 0, "{}", server.describe());
    let polls: Vec<Duration> = server
        .requests()
        .iter()
        .filter(|r| r.endpoint == "status")
        .map(|r| r.at)
        .collect();
    assert!(
        polls.len() >= 12 * 14,
        "every job polled to the end: {}",
        polls.len()
    );
    let busiest = (0..polls.len())
        .map(|i| {
            polls[i..]
                .iter()
                .filter(|t| **t < polls[i] + WINDOW)
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(busiest <= 30, "{busiest} status calls within {WINDOW:?}");
    assert!(
        busiest >= 27,
        "the limiter was reached ({busiest} in the busiest window), so it was tested"
    );
    assert_no_violations(&server);
}
