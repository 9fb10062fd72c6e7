//! YouTube end to end: the real upqd and upqctl against the YouTube conformance server —
//! direct uploads, the review window (private, held, released by a privacy change), cancel
//! that deletes, the quota wait, processing failures, partial persistence and kill -9.

use std::path::Path;

use upq_tests::env::toml_string;
use upq_tests::signin::{self, query_param};
use upq_tests::tus::FAST_RETRY;
use upq_tests::youtube::world::{
    assert_no_violations, configure, privacy, signin_destination, the_video, wait_state, world,
    TIMEOUT,
};
use upq_tests::youtube::{Fault, GoogleApp, YouTubeOptions, YouTubeServer};
use upq_tests::{wait_for, Daemon, JobState, OutputExt, TestEnv, MIB};

#[test]
fn a_direct_upload_is_published_with_its_privacy_and_metadata() {
    let (env, server) = world("youtube-direct", YouTubeOptions::default());
    let _daemon = env.start_daemon();
    let source = env.source("clip.mp4", 3 * MIB + 12_345);
    let id = env.add(
        &source,
        &[
            "--title",
            "First video",
            "--caption",
            "A day out",
            "--privacy",
            "public",
            "--meta",
            "made_for_kids=false",
            "--meta",
            "tags=travel,sea",
        ],
    );
    let job = wait_state(&env, &server, id, JobState::Published);
    let video = the_video(&server, &source);
    assert_eq!(privacy(&video), "public");
    assert_eq!(video.snippet["title"], "First video");
    assert_eq!(video.snippet["description"], "A day out");
    assert_eq!(video.status["selfDeclaredMadeForKids"], false);
    assert_eq!(video.upload_status, "processed");
    assert_eq!(
        job.remote.as_deref(),
        Some(format!("https://www.youtube.com/watch?v={}", video.id).as_str())
    );
    assert_no_violations(&server);
    source.assert_unchanged();
}

#[test]
fn a_held_upload_is_private_until_released_and_cancel_then_is_too_late() {
    let (env, server) = world("youtube-hold", YouTubeOptions::default());
    let _daemon = env.start_daemon();
    let source = env.source("held.mp4", 2 * MIB);
    let id = env.add(
        &source,
        &[
            "--hold",
            "--privacy",
            "public",
            "--meta",
            "made_for_kids=false",
        ],
    );
    wait_state(&env, &server, id, JobState::Held);
    let video = the_video(&server, &source);
    assert_eq!(
        privacy(&video),
        "private",
        "a review window uploads as private"
    );
    assert_eq!(
        video.upload_status, "processed",
        "held once YouTube processed it, so the review is of the real result"
    );
    let history = upq_tests::describe_history(&env.show(id));
    assert!(
        history.contains("processes it before the review"),
        "{history}"
    );
    env.ctl(["publish", &id.to_string()]).assert_ok("publish");
    wait_state(&env, &server, id, JobState::Published);
    let video = the_video(&server, &source);
    assert_eq!(privacy(&video), "public");
    assert!(
        video.status.get("madeForKids").is_some()
            || video.status["selfDeclaredMadeForKids"] == false
    );
    let cancel = env.ctl(["cancel", &id.to_string()]);
    assert!(
        !cancel.status.success() && cancel.stderr_text().contains("commit point"),
        "cancel after the release is too late: {} {}",
        cancel.stdout_text(),
        cancel.stderr_text()
    );
    assert!(!server.videos()[0].deleted);
    assert_no_violations(&server);
}

#[test]
fn cancel_before_the_release_deletes_the_uploaded_video() {
    let (env, server) = world("youtube-cancel", YouTubeOptions::default());
    let _daemon = env.start_daemon();
    let source = env.source("cancel.mp4", 2 * MIB);
    let id = env.add(&source, &["--hold", "--meta", "made_for_kids=false"]);
    wait_state(&env, &server, id, JobState::Held);
    env.ctl(["cancel", &id.to_string()]).assert_ok("cancel");
    wait_state(&env, &server, id, JobState::Canceled);
    wait_for(TIMEOUT, "the video to be deleted on YouTube", || {
        server.videos().iter().any(|v| v.deleted).then_some(())
    });
    let drafts = env.ctl_json(["drafts"]);
    assert_eq!(drafts.as_array().map(Vec::len), Some(1), "{drafts}");
    assert_no_violations(&server);
}

#[test]
fn a_used_up_quota_waits_without_counting_attempts() {
    let (env, server) = world("youtube-quota", YouTubeOptions::default());
    let _daemon = env.start_daemon();
    server.set_inserts_used(upq_tests::youtube::limits::INSERT_CALLS_PER_DAY);
    let source = env.source("quota.mp4", MIB);
    let id = env.add(&source, &["--meta", "made_for_kids=false"]);
    let waiting = upq_tests::wait::wait_for_explained(
        TIMEOUT,
        || format!("job {id} to wait for the quota:\n{}", server.describe()),
        || {
            let job = env.job(id);
            (job.state == JobState::Retrying
                && job.last_error.as_ref().map(|e| e.kind.as_str()) == Some("quota"))
            .then_some(job)
        },
    );
    assert_eq!(waiting.attempts, 0);
    assert!(
        waiting
            .last_error
            .unwrap()
            .message
            .contains("midnight Pacific"),
        "the wait says when the quota resets"
    );
    let next = waiting.next_attempt_at.expect("a time to look again");
    assert!(
        next > chrono::Utc::now() + chrono::Duration::minutes(1),
        "{next}"
    );
    // The quota day ends on the server's clock; the user retries without waiting.
    server.advance_to_quota_reset();
    env.ctl(["retry", &id.to_string()]).assert_ok("retry");
    wait_state(&env, &server, id, JobState::Published);
    the_video(&server, &source);
    assert_no_violations(&server);
}

#[test]
fn a_processing_failure_fails_the_job_with_youtube_s_reason() {
    let (env, server) = world("youtube-processing", YouTubeOptions::default());
    let _daemon = env.start_daemon();
    server.inject(Fault::FailProcessing("codec".to_string()));
    let source = env.source("broken.mp4", MIB);
    let id = env.add(&source, &["--meta", "made_for_kids=false"]);
    let job = wait_state(&env, &server, id, JobState::Failed);
    let error = job.last_error.expect("an error");
    assert!(error.message.contains("codec"), "{error:?}");
    assert_no_violations(&server);
}

#[test]
fn fixed_chunks_and_a_partial_persist_resume_from_youtube_s_range() {
    let env = TestEnv::new("youtube-partial");
    let server = YouTubeServer::start(YouTubeOptions {
        persist_granularity: Some(256 * 1024),
        ..YouTubeOptions::default()
    });
    configure(&env, &server, "", "chunk_size = \"1MiB\"");
    let _daemon = env.start_daemon();
    server.inject(Fault::PersistPartially(300_000));
    let source = env.source("partial.mp4", 4 * MIB + 1000);
    let id = env.add(&source, &["--meta", "made_for_kids=false"]);
    wait_state(&env, &server, id, JobState::Published);
    let video = the_video(&server, &source);
    for (first, last) in &video.chunks[..video.chunks.len() - 1] {
        assert_eq!((last - first + 1) % (256 * 1024), 0, "{:?}", video.chunks);
    }
    assert_no_violations(&server);
}

#[test]
fn kill_9_mid_upload_resumes_through_the_status_query() {
    let env = TestEnv::new("youtube-kill");
    let server = YouTubeServer::start(YouTubeOptions::default());
    configure(&env, &server, "rate_limit = \"4MiB\"", "");
    let source = env.source("kill.mp4", 48 * MIB);
    let mut daemon = Daemon::without_bus(&env).start();
    let id = env.add(&source, &["--meta", "made_for_kids=false"]);
    // One request carries the rest of the file: kill while its bytes are on the way.
    wait_for(TIMEOUT, "4 MiB on the way to YouTube", || {
        let job = env.job(id);
        (job.bytes_sent + job.bytes_in_flight.unwrap_or(0) >= 4 * MIB).then_some(())
    });
    daemon.kill9();
    let held = server.videos()[0].received;
    assert!(held < source.size, "killed before the end");
    let _daemon = env.start_daemon();
    wait_state(&env, &server, id, JobState::Published);
    the_video(&server, &source);
    let queries = server
        .requests()
        .iter()
        .filter(|r| r.endpoint == "status_query")
        .count();
    assert!(queries >= 1, "the restart asked YouTube what it kept");
    assert_no_violations(&server);
}

/// Signing in to Google through the flow (PKCE S256 in base64url, space-separated scopes,
/// offline access) and uploading with the account; `--at` with `public` also sets YouTube's
/// own `publishAt`, and the release at that time makes the video public.
#[test]
fn a_google_sign_in_uploads_and_at_releases_on_time() {
    let env = TestEnv::new("youtube-signin");
    let app = GoogleApp::default();
    let server = YouTubeServer::start(YouTubeOptions {
        oauth: Some(app.clone()),
        processing_polls: 1,
        ..YouTubeOptions::default()
    });
    env.write_config(&format!(
        "[daemon]\ndefault_destination = \"youtube\"\n\n[daemon.retry]\n{FAST_RETRY}\n\n{}",
        signin_destination(&server, &app)
    ));
    let daemon = env.start_daemon();
    let login = signin::Login::start(&env, "youtube", &[]);
    let challenge = query_param(&login.url, "code_challenge").expect("a challenge");
    assert_eq!(
        challenge.len(),
        43,
        "Google takes S256 in base64url: {challenge}"
    );
    assert_eq!(
        query_param(&login.url, "access_type").as_deref(),
        Some("offline")
    );
    let scope = query_param(&login.url, "scope").expect("scopes");
    assert!(
        scope.contains("youtube.upload") && scope.contains(' '),
        "{scope}"
    );
    let (_, landed) = signin::consent(&login.url);
    assert_eq!(
        landed.status,
        200,
        "{}",
        String::from_utf8_lossy(&landed.body)
    );
    let (status, stderr) = login.finish();
    assert_eq!(status.code(), Some(0), "login: {stderr}");
    let accounts = env.ctl_json(["accounts"]);
    assert_eq!(accounts[0]["state"], "signed_in", "{accounts}");
    assert_eq!(accounts[0]["provider"], "Google");

    let source = env.source("scheduled.mp4", 2 * MIB);
    // Far enough for the upload and YouTube's processing to end first: then it is held.
    let at = chrono::Utc::now() + chrono::Duration::seconds(8);
    let at_text = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let id = env.add(
        &source,
        &[
            "--at",
            &at_text,
            "--privacy",
            "public",
            "--meta",
            "made_for_kids=false",
        ],
    );
    wait_state(&env, &server, id, JobState::Held);
    let held = the_video(&server, &source);
    assert_eq!(privacy(&held), "private");
    assert_eq!(
        held.status["publishAt"], at_text,
        "YouTube's own schedule is set"
    );
    let job = wait_state(&env, &server, id, JobState::Published);
    let publish_at = chrono::DateTime::parse_from_rfc3339(&at_text).unwrap();
    assert!(job.updated_at >= publish_at, "released at its time");
    // The server's clock is in January 2025 here: its publishAt could not act, upq did.
    let shown = env.show(id);
    let reason = &upq_tests::history_to(&shown, JobState::Published)[0].reason;
    assert!(
        reason.contains("upq made it public") && reason.contains("publishAt had not acted"),
        "{reason}"
    );
    assert_eq!(privacy(&the_video(&server, &source)), "public");
    assert!(server.valid_access_tokens() >= 1);
    assert!(!daemon.log().contains("ya29."), "no token in the log");
    assert_no_violations(&server);
}

/// Through the fault proxy: connections cut in the middle of the body, then a trickle slow
/// enough to be a stall. Each time upq asks the session what it kept and goes on from there;
/// the bytes YouTube holds are the file's, and no rule is broken.
#[test]
fn cuts_and_a_stall_on_the_way_resume_from_what_youtube_kept() {
    let env = TestEnv::new("youtube-proxy");
    let server = YouTubeServer::start(YouTubeOptions::default());
    let proxy = upq_tests::Proxy::start(server.addr());
    env.write_config(&format!(
        "[daemon]\ndefault_destination = \"youtube\"\nstall_timeout = \"1s\"\nrate_limit = \"2MiB\"\n\n\
         [daemon.retry]\n{FAST_RETRY}\n\n\
         [destinations.youtube]\nkind = \"youtube\"\napi_base = {}\naccess_token = \"{}\"\n",
        toml_string(Path::new(&proxy.url(""))),
        server.token(),
    ));
    let _daemon = env.start_daemon();
    proxy.cut_after(3 * MIB, 2);
    let source = env.source("proxied.mp4", 12 * MIB);
    let id = env.add(&source, &["--meta", "made_for_kids=false"]);
    wait_for(TIMEOUT, "both cuts", || {
        (proxy.cuts_done() >= 2).then_some(())
    });
    // A trickle: the stall detector ends the attempt, the next one resumes.
    proxy.throttle_up(2048);
    // The upload is paced at 2 MiB/s, so the rest of the file is still on its way.
    upq_tests::wait::wait_for_explained(
        TIMEOUT,
        || {
            format!(
                "a stall of job {id}: {}",
                upq_tests::describe_history(&env.show(id))
            )
        },
        || {
            let job = env.job(id);
            assert_ne!(
                job.state,
                JobState::Published,
                "finished before the trickle"
            );
            (job.last_error.as_ref().map(|e| e.kind.as_str()) == Some("stalled")).then_some(())
        },
    );
    proxy.unthrottle();
    wait_state(&env, &server, id, JobState::Published);
    the_video(&server, &source);
    let history = upq_tests::describe_history(&env.show(id));
    assert!(
        history.contains("resuming at byte"),
        "attempts resumed from YouTube's answer:\n{history}"
    );
    assert_no_violations(&server);
}
