//! An upload that disappears from the server (expired, cleaned up, deleted): upqd notices
//! the 404/410, records that the upload is gone, and starts a fresh one that completes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use upq_tests::http::tus_delete;
use upq_tests::tus::{
    assert_stored_copy, wait_progress, wait_state, StoredUpload, TusOptions, FAST_RETRY,
};
use upq_tests::{
    describe_history, tus_config, wait_until, JobState, JobView, OutputExt, TestEnv, TusServer, MIB,
};

/// The history after `since` has a `retrying` entry saying the upload is gone, followed by
/// an `uploading` entry starting a new upload.
fn assert_gone_then_started(job: &JobView, since: DateTime<Utc>) {
    let history = job.history.as_deref().unwrap();
    let text = describe_history(job);
    let gone = history
        .iter()
        .position(|e| {
            let reason = e.reason.to_lowercase();
            e.at >= since
                && e.to == JobState::Retrying
                && (reason.contains("gone")
                    || reason.contains("expired")
                    || reason.contains("no longer"))
        })
        .unwrap_or_else(|| panic!("no retrying entry saying the upload is gone:\n{text}"));
    assert!(
        history[gone..]
            .iter()
            .any(|e| e.to == JobState::Uploading && e.reason.contains("upload started")),
        "no fresh upload after the old one was gone:\n{text}"
    );
}

/// Pauses a job mid-upload; returns the upload's URL and its stored files.
fn pause_mid_upload(env: &TestEnv, server: &TusServer, id: u64) -> (String, StoredUpload) {
    wait_progress(env, id, 8 * MIB, Duration::from_secs(60));
    env.ctl(["pause", &id.to_string()])
        .assert_ok("upqctl pause");
    let paused = wait_state(env, id, JobState::Paused, Duration::from_secs(10));
    let url = paused
        .upload_url
        .expect("a paused job keeps its upload_url");
    let stored = server
        .upload(&url)
        .expect("the paused upload is on the server");
    (url, stored)
}

fn setup(env: &TestEnv, server: &TusServer) {
    env.write_config(&tus_config(
        &server.endpoint,
        "rate_limit = \"16MiB\"",
        FAST_RETRY,
        "chunk_size = \"4MiB\"",
    ));
}

#[test]
fn files_removed_behind_the_servers_back_while_paused() {
    let env = TestEnv::new("tus-expiry-files");
    let server = TusServer::start(&env);
    setup(&env, &server);
    let video = env.source("expired.mp4", 40 * MIB);
    let _daemon = env.start_daemon();

    let id = env.add(&video, &["--to", "tus"]);
    let (url, stored) = pause_mid_upload(&env, &server, id);
    server.remove_files(&stored);
    assert!(server.is_gone(&url));
    let resumed_at = Utc::now();
    env.ctl(["resume", &id.to_string()])
        .assert_ok("upqctl resume");
    env.wait_published(id, 120);

    let job = env.show(id);
    assert_gone_then_started(&job, resumed_at);
    let remote = job.remote.clone().unwrap();
    assert_ne!(remote, url, "a new upload was made");
    assert_stored_copy(&server.only_upload(), &video);
}

#[test]
fn terminated_by_someone_else_while_paused() {
    let env = TestEnv::new("tus-expiry-delete");
    let server = TusServer::start(&env);
    setup(&env, &server);
    let video = env.source("deleted.mp4", 40 * MIB);
    let _daemon = env.start_daemon();

    let id = env.add(&video, &["--to", "tus"]);
    let (url, _) = pause_mid_upload(&env, &server, id);
    let deleted = tus_delete(&url).unwrap();
    assert_eq!(deleted.status, 204, "{deleted:?}");
    let resumed_at = Utc::now();
    env.ctl(["resume", &id.to_string()])
        .assert_ok("upqctl resume");
    env.wait_published(id, 120);

    let job = env.show(id);
    assert_gone_then_started(&job, resumed_at);
    assert_ne!(job.remote.as_deref(), Some(url.as_str()));
    assert_stored_copy(&server.only_upload(), &video);
}

#[test]
fn expired_by_the_server_while_held_starts_over_on_publish() {
    let env = TestEnv::new("tus-expiry-held");
    // Uploads expire 3 s after creation; the whole file takes well under a second.
    let server = TusServer::start_with(
        &env,
        TusOptions {
            expiration: Some(Duration::from_secs(3)),
            ..TusOptions::default()
        },
    );
    env.write_config(&tus_config(
        &server.endpoint,
        "",
        FAST_RETRY,
        "chunk_size = \"4MiB\"",
    ));
    let video = env.source("held-too-long.mp4", 10 * MIB);
    let _daemon = env.start_daemon();

    let id = env.add(&video, &["--to", "tus", "--hold"]);
    let held = wait_state(&env, id, JobState::Held, Duration::from_secs(30));
    let url = held.upload_url.expect("a held job keeps its upload_url");
    wait_until(
        Duration::from_secs(20),
        "the server to expire the upload",
        || matches!(server.head(&url).status, 404 | 410),
    );
    let published_at = Utc::now();
    env.ctl(["publish", &id.to_string()])
        .assert_ok("upqctl publish");
    env.wait_published(id, 60);

    let job = env.show(id);
    assert_gone_then_started(&job, published_at);
    let remote = job.remote.clone().unwrap();
    assert_ne!(remote, url);
    let stored = server
        .upload(&remote)
        .expect("the new upload is on the server");
    assert_stored_copy(&stored, &video);
}
