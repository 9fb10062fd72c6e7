//! The TikTok commit point: cancel before the final chunk keeps a draft and publishes
//! nothing; after it, cancel is `too_late`. A publish time far ahead delays the upload so
//! the upload_url is still alive when the final chunk goes.

mod tiktok_common;

use std::time::{Duration, Instant};

use tiktok_common::*;
use upq_tests::tiktok::{Fault, TikTokServer};
use upq_tests::{holds_for, JobState, OutputExt, TestEnv};

const TIMEOUT: Duration = Duration::from_secs(90);

#[test]
fn cancel_before_the_final_chunk_publishes_nothing_and_keeps_the_draft() {
    let env = TestEnv::new("tiktok-cancel-before");
    let server = TikTokServer::start(options());
    configure(&env, &server, "direct", "chunk_size = \"10MB\"");
    let video = mp4_of_size(&env, "draft", 70_000_000);
    let _daemon = env.start_daemon();

    let id = env.add(&video, &["--hold", "--title", "Keep me"]);
    wait_state(&env, &server, id, JobState::Held, TIMEOUT);
    let started = Instant::now();
    env.ctl(["cancel", &id.to_string()])
        .assert_ok("upqctl cancel");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "cancel is quick"
    );
    assert_eq!(env.show(id).state, JobState::Canceled);

    let drafts = env.drafts();
    assert!(
        drafts
            .iter()
            .any(|d| d.id == id && d.metadata.title.as_deref() == Some("Keep me")),
        "the draft keeps its title: {drafts:?}"
    );
    let puts = || server.uploads()[0].chunks.len();
    let before = puts();
    holds_for(Duration::from_secs(1), "no PUT after cancel", || {
        puts() == before
    });
    let record = &server.uploads()[0];
    assert!(!record.complete, "the final chunk never went");
    assert!(record.statuses.is_empty(), "nothing to follow");
    assert_eq!(server.uploads().len(), 1);
    assert_no_violations(&server);
}

#[test]
fn cancel_after_the_final_chunk_is_too_late() {
    let env = TestEnv::new("tiktok-cancel-after");
    let server = TikTokServer::start(options());
    configure(&env, &server, "direct", "");
    let video = small_video(&env, "posted");
    let _daemon = env.start_daemon();

    server.inject(Fault::SlowProcessing(8));
    let id = env.add(&video, &[]);
    wait_state(&env, &server, id, JobState::Processing, TIMEOUT);
    let output = env.ctl(["cancel", &id.to_string()]);
    assert_eq!(output.code(), 1, "{}", output.stderr_text());
    assert!(
        output.stderr_text().contains("commit point"),
        "{}",
        output.stderr_text()
    );
    wait_state(&env, &server, id, JobState::Published, TIMEOUT);
    assert!(env.drafts().is_empty());
    assert_no_violations(&server);
}

/// A committed job answers `too_late` to pause and to cancel (nothing is left to upload,
/// and nothing can stop it going public), before and after a restart, and is posted once.
#[test]
fn a_committed_job_is_too_late_to_pause_or_cancel_across_a_restart() {
    let env = TestEnv::new("tiktok-committed-restart");
    let server = TikTokServer::start(options());
    configure(&env, &server, "direct", "");
    let video = small_video(&env, "committed");
    let mut daemon = env.start_daemon();

    server.inject(Fault::SlowProcessing(8));
    let id = env.add(&video, &[]);
    wait_state(&env, &server, id, JobState::Processing, TIMEOUT);
    let assert_too_late = |when: &str| {
        for command in ["pause", "cancel"] {
            let output = env.ctl([command, &id.to_string()]);
            assert_eq!(
                output.code(),
                1,
                "{command} {when}: {}",
                output.stderr_text()
            );
            assert!(
                output.stderr_text().contains("commit point"),
                "{command} of a committed job {when} is too late: {}",
                output.stderr_text()
            );
            let json = env.ctl_plain([command, &id.to_string(), "--json"]);
            assert!(
                json.stdout_text().contains("too_late"),
                "{command} --json {when} names the error: {}",
                json.stdout_text()
            );
            let state = env.show(id).state;
            assert!(
                matches!(
                    state,
                    JobState::Processing | JobState::Queued | JobState::Retrying
                ),
                "{command} {when} changed nothing: {state:?}"
            );
        }
    };
    assert_too_late("while processing");
    daemon.kill9();
    daemon.restart();
    assert_too_late("after a restart");
    wait_state(&env, &server, id, JobState::Published, TIMEOUT);
    assert!(env.drafts().is_empty());
    assert_eq!(
        server.uploads().len(),
        1,
        "posted once: {}",
        server.describe()
    );
    assert_no_violations(&server);
}

#[test]
fn a_far_publish_time_starts_the_upload_late_enough() {
    let env = TestEnv::new("tiktok-schedule");
    let server = TikTokServer::start(options());
    // An upload_url living 6 s: upqd starts 5 s (five sixths) before the publish time.
    configure(&env, &server, "direct", "upload_url_lifetime = \"6s\"");
    let video = small_video(&env, "later");
    let _daemon = env.start_daemon();

    let added = Instant::now();
    let output = env.ctl(["add", video.arg(), "--delay", "8s"]);
    output.assert_ok("upqctl add --delay");
    assert!(
        output.stderr_text().contains("upload starts at"),
        "{}",
        output.stderr_text()
    );
    let id: u64 = output.stdout_text().trim().parse().unwrap();
    let job = env.show(id);
    assert_eq!(job.state, JobState::Queued);
    assert!(job.next_attempt_at.is_some(), "the start time is shown");
    // Pausing and resuming does not make it start early.
    env.ctl(["pause", &id.to_string()]).assert_ok("pause");
    env.ctl(["resume", &id.to_string()]).assert_ok("resume");
    holds_for(
        Duration::from_secs(2),
        "no init before the start time",
        || server.uploads().is_empty() && env.job(id).state == JobState::Queued,
    );
    let job = wait_state(&env, &server, id, JobState::Published, TIMEOUT);
    let record = &server.uploads()[0];
    assert!(
        added.elapsed() >= Duration::from_secs(8),
        "published at its time"
    );
    // The final chunk went within the upload_url's life (the server would have said 403).
    assert_clean_upload(&server, record, &video);
    assert!(job.publish_at.is_some());
    assert_no_violations(&server);
}
