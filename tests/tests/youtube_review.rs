//! YouTube's review window and faults, end to end: the Studio link and YouTube's processing
//! progress while a video waits, a held video that outlives its upload session, who made a
//! scheduled video public (YouTube's `publishAt` or upq), an upload session that expires
//! mid-upload, the channel's daily upload limit, and a sign-in without the managing scope.

use std::time::Duration;

use upq_tests::youtube::world::{
    assert_no_violations, configure, privacy, the_video, wait_job, wait_state, world,
};
use upq_tests::youtube::{Fault, YouTubeOptions, YouTubeServer, SCOPE_UPLOAD, SCOPE_YOUTUBE};
use upq_tests::{history_to, JobState, OutputExt, TestEnv, MIB};

const KIDS: [&str; 2] = ["--meta", "made_for_kids=false"];

/// The reason of the job's entry into `published`.
fn published_reason(env: &TestEnv, id: u64) -> String {
    let job = env.show(id);
    let entries = history_to(&job, JobState::Published);
    assert_eq!(entries.len(), 1, "{}", upq_tests::describe_history(&job));
    entries[0].reason.clone()
}

#[test]
fn a_held_video_shows_youtube_s_progress_then_its_studio_link() {
    let (env, server) = world(
        "youtube-review-link",
        YouTubeOptions {
            processing_polls: 3,
            ..YouTubeOptions::default()
        },
    );
    let _daemon = env.start_daemon();
    let source = env.source("review.mp4", 2 * MIB);
    let id = env.add(
        &source,
        &["--hold", "--privacy", "public", KIDS[0], KIDS[1]],
    );

    let processing = wait_job(&env, &server, id, "processing with a progress", |job| {
        job.state == JobState::Processing && job.processing_progress.is_some()
    });
    let progress = processing.processing_progress.unwrap();
    assert_eq!(
        progress.parts_total, 1000,
        "YouTube's figures: {progress:?}"
    );
    assert!(progress.parts_processed < progress.parts_total);
    assert!(progress.time_left_ms.is_some_and(|ms| ms > 0));
    let shown = env.ctl(["show", &id.to_string()]);
    shown.assert_ok("show");
    // The figures may have moved on since the view above; the line is there.
    assert!(
        shown.stdout_text().contains(" of 1000 parts"),
        "show tells how far YouTube's processing is:\n{}",
        shown.stdout_text()
    );

    let held = wait_state(&env, &server, id, JobState::Held);
    let video = the_video(&server, &source);
    let studio = format!("https://studio.youtube.com/video/{}/edit", video.id);
    assert_eq!(held.review_url.as_deref(), Some(studio.as_str()));
    assert!(held.processing_progress.is_none(), "processing is over");
    let shown = env.ctl(["show", &id.to_string()]).stdout_text();
    assert!(
        shown.contains("review at") && shown.contains(&studio),
        "{shown}"
    );

    env.ctl(["publish", &id.to_string()]).assert_ok("publish");
    let published = wait_state(&env, &server, id, JobState::Published);
    assert_eq!(privacy(&the_video(&server, &source)), "public");
    assert!(published.review_url.is_none(), "public now: {published:?}");
    let reason = published_reason(&env, id);
    assert!(reason.contains("upq made it public"), "{reason}");
    assert_no_violations(&server);
}

/// A session URI lives about a week; a video held longer is still released, and a cancel
/// still deletes it, by its video id alone: nothing is uploaded twice.
#[test]
fn a_video_held_past_its_upload_session_is_released_or_deleted_by_its_id() {
    let (env, server) = world("youtube-review-week", YouTubeOptions::default());
    let _daemon = env.start_daemon();
    let kept = env.source("kept.mp4", MIB + 7);
    let dropped = env.source("dropped.mp4", MIB + 11);
    let kept_id = env.add(
        &kept,
        &["--hold", "--privacy", "unlisted", KIDS[0], KIDS[1]],
    );
    let dropped_id = env.add(&dropped, &["--hold", KIDS[0], KIDS[1]]);
    wait_state(&env, &server, kept_id, JobState::Held);
    wait_state(&env, &server, dropped_id, JobState::Held);
    let starts = |server: &YouTubeServer| {
        server
            .requests()
            .iter()
            .filter(|r| r.endpoint == "start")
            .count()
    };
    assert_eq!(starts(&server), 2);

    server.advance(Duration::from_secs(8 * 24 * 3600));
    env.ctl(["publish", &kept_id.to_string()])
        .assert_ok("publish");
    env.ctl(["cancel", &dropped_id.to_string()])
        .assert_ok("cancel");
    wait_state(&env, &server, kept_id, JobState::Published);
    wait_state(&env, &server, dropped_id, JobState::Canceled);
    upq_tests::wait_for(
        upq_tests::youtube::world::TIMEOUT,
        "the canceled video's deletion",
        || server.videos().iter().any(|v| v.deleted).then_some(()),
    );
    let videos = server.videos();
    assert_eq!(videos.len(), 2, "{}", server.describe());
    let kept_video = videos.iter().find(|v| v.size == kept.size).unwrap();
    let dropped_video = videos.iter().find(|v| v.size == dropped.size).unwrap();
    assert_eq!(privacy(kept_video), "unlisted");
    assert!(!kept_video.deleted);
    assert!(dropped_video.deleted, "the canceled video is deleted");
    assert_eq!(starts(&server), 2, "nothing was uploaded again");
    assert!(
        !server
            .requests()
            .iter()
            .any(|r| r.endpoint == "status_query" && r.status == 404),
        "the expired session was never asked:\n{}",
        server.describe()
    );
    assert_no_violations(&server);
}

/// With the server's clock on real time, YouTube's own `publishAt` makes the video public
/// while upq is stopped; started again, upq finds it so and says who released it.
#[test]
fn youtube_releases_a_scheduled_video_while_upq_is_off_and_the_history_says_so() {
    let (env, server) = world(
        "youtube-review-publish-at",
        YouTubeOptions {
            start_utc: chrono::Utc::now(),
            processing_polls: 1,
            ..YouTubeOptions::default()
        },
    );
    let mut daemon = env.start_daemon();
    let source = env.source("evening.mp4", MIB);
    let at = chrono::Utc::now() + chrono::Duration::seconds(8);
    let at_text = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let id = env.add(
        &source,
        &["--at", &at_text, "--privacy", "public", KIDS[0], KIDS[1]],
    );
    wait_state(&env, &server, id, JobState::Held);
    assert_eq!(the_video(&server, &source).status["publishAt"], at_text);
    daemon.stop();

    upq_tests::youtube::world::wait_until_public(&server, &source);
    let video = the_video(&server, &source);
    assert!(video.published_by_publish_at, "{}", server.describe());

    let _daemon = env.start_daemon();
    wait_state(&env, &server, id, JobState::Published);
    let reason = published_reason(&env, id);
    assert!(
        reason.contains("YouTube made it public itself at its publishAt"),
        "{reason}"
    );
    assert!(reason.contains(&at_text), "{reason}");
    assert_no_violations(&server);
}

#[test]
fn an_upload_session_that_expires_mid_upload_starts_over_and_says_so() {
    let env = TestEnv::new("youtube-review-expired");
    let server = YouTubeServer::start(YouTubeOptions::default());
    // Slow enough that the expiry meets a session that already holds bytes.
    configure(
        &env,
        &server,
        "rate_limit = \"1MiB\"",
        "chunk_size = \"1MiB\"",
    );
    let _daemon = env.start_daemon();
    let source = env.source("expiring.mp4", 3 * MIB + 5);
    let id = env.add(&source, &KIDS);
    wait_job(&env, &server, id, "past its first chunk", |job| {
        job.bytes_sent >= MIB
    });
    server.inject(Fault::ExpireSession);
    wait_state(&env, &server, id, JobState::Published);
    let history = upq_tests::describe_history(&env.show(id));
    assert!(
        history.contains("no longer knows this upload"),
        "the history says the upload started over:\n{history}"
    );
    the_video(&server, &source);
    assert_eq!(
        server
            .requests()
            .iter()
            .filter(|r| r.endpoint == "start")
            .count(),
        2,
        "a new upload after the expiry:\n{}",
        server.describe()
    );
    assert!(server.pending_faults().is_empty());
    assert_no_violations(&server);
}

#[test]
fn the_channel_s_daily_upload_limit_waits_a_day_without_counting_attempts() {
    let (env, server) = world("youtube-review-limit", YouTubeOptions::default());
    let _daemon = env.start_daemon();
    server.inject(Fault::respond(
        "start",
        400,
        "uploadLimitExceeded",
        "The user has exceeded the number of videos they may upload.",
    ));
    let source = env.source("limit.mp4", MIB);
    let id = env.add(&source, &KIDS);
    let added = chrono::Utc::now();
    let waiting = wait_job(&env, &server, id, "waiting for the upload limit", |job| {
        job.state == JobState::Retrying
            && job.last_error.as_ref().map(|e| e.kind.as_str()) == Some("quota")
    });
    assert_eq!(waiting.attempts, 0, "a limit is not a failed attempt");
    assert!(
        waiting
            .last_error
            .as_ref()
            .unwrap()
            .message
            .contains("daily upload limit"),
        "{:?}",
        waiting.last_error
    );
    let next = waiting.next_attempt_at.expect("a time to try again");
    let day = chrono::Duration::hours(24);
    assert!(
        next >= added + day - chrono::Duration::minutes(1)
            && next <= chrono::Utc::now() + day + chrono::Duration::minutes(1),
        "a day later: {next}"
    );
    env.ctl(["retry", &id.to_string()]).assert_ok("retry");
    wait_state(&env, &server, id, JobState::Published);
    the_video(&server, &source);
    assert_no_violations(&server);
}

/// Signed in with `youtube.upload` only: the upload goes through, but a review window needs
/// the managing scope, and the job fails saying which and how to grant it.
#[test]
fn a_sign_in_without_the_managing_scope_fails_a_held_job_with_what_to_grant() {
    let (env, server) = world("youtube-review-scope", YouTubeOptions::default());
    server.set_scopes(&[SCOPE_UPLOAD]);
    let _daemon = env.start_daemon();
    let source = env.source("scoped.mp4", MIB);
    let id = env.add(
        &source,
        &["--hold", "--privacy", "public", KIDS[0], KIDS[1]],
    );
    let failed = wait_state(&env, &server, id, JobState::Failed);
    let error = failed.last_error.expect("why");
    assert_eq!(error.kind, "auth");
    assert!(
        error.message.contains("upqctl login youtube")
            && error
                .message
                .contains("https://www.googleapis.com/auth/youtube"),
        "{error:?}"
    );
    assert_eq!(the_video(&server, &source).received, source.size);

    // Granted, a retry goes on with the video already up: nothing is uploaded twice.
    server.set_scopes(&[SCOPE_UPLOAD, SCOPE_YOUTUBE]);
    env.ctl(["retry", &id.to_string()]).assert_ok("retry");
    wait_state(&env, &server, id, JobState::Held);
    env.ctl(["publish", &id.to_string()]).assert_ok("publish");
    wait_state(&env, &server, id, JobState::Published);
    assert_eq!(privacy(&the_video(&server, &source)), "public");
    let starts = server
        .requests()
        .iter()
        .filter(|r| r.endpoint == "start")
        .count();
    assert_eq!(starts, 1, "{}", server.describe());
}

/// With `youtube.upload` alone a job without a review window still publishes: the video is
/// up with its final privacy; the history says its processing could not be followed.
#[test]
fn a_sign_in_that_grants_uploading_only_still_publishes_a_direct_upload() {
    let (env, server) = world("youtube-review-upload-only", YouTubeOptions::default());
    server.set_scopes(&[SCOPE_UPLOAD]);
    let _daemon = env.start_daemon();
    let source = env.source("direct.mp4", MIB);
    let id = env.add(&source, &["--privacy", "unlisted", KIDS[0], KIDS[1]]);
    let job = wait_state(&env, &server, id, JobState::Published);
    let video = the_video(&server, &source);
    assert_eq!(privacy(&video), "unlisted");
    assert_eq!(
        job.remote.as_deref(),
        Some(format!("https://www.youtube.com/watch?v={}", video.id).as_str())
    );
    let reason = published_reason(&env, id);
    assert!(reason.contains("processing was not followed"), "{reason}");
}
