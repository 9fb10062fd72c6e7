//! Cancel of a tus upload: the server is told to terminate it (DELETE), at once when it is
//! reachable, in the background and across a restart when it is not; the job is a draft at
//! once either way and `recover` starts a new upload that completes.

use std::time::{Duration, Instant};

use upq_tests::proxy::Proxy;
use upq_tests::tus::{assert_stored_copy, wait_progress, FAST_RETRY};
use upq_tests::{
    describe_history, history_to, tus_config, wait_until, JobState, OutputExt, Shim, SourceFile,
    TestEnv, TusServer, MIB,
};

const TITLE: &str = "Cancel me, maybe";

/// Cancels `id`, checking the answer came within a second and the job is a draft.
fn cancel_quickly(env: &TestEnv, id: u64, video: &SourceFile) {
    let started = Instant::now();
    let output = env.ctl(["cancel", &id.to_string()]);
    let took = started.elapsed();
    output.assert_ok("upqctl cancel");
    assert!(took < Duration::from_secs(1), "cancel took {took:?}");
    assert_eq!(env.job(id).state, JobState::Canceled);
    let drafts = env.drafts();
    let draft = drafts
        .iter()
        .find(|d| d.id == id)
        .unwrap_or_else(|| panic!("job {id} is not a draft: {drafts:?}"));
    assert_eq!(draft.metadata.title.as_deref(), Some(TITLE));
    video.assert_unchanged();
}

/// `recover`, then a new upload (another URL) completes with the file's exact bytes.
fn recover_to_a_new_upload(
    env: &TestEnv,
    server: &TusServer,
    id: u64,
    old_url: &str,
    video: &SourceFile,
) {
    env.ctl(["recover", &id.to_string()])
        .assert_ok("upqctl recover");
    env.wait_published(id, 120);
    let job = env.show(id);
    let remote = job.remote.clone().expect("a published job has its remote");
    assert_ne!(
        remote,
        old_url,
        "recover must start a new upload:\n{}",
        describe_history(&job)
    );
    let stored = server
        .upload(&remote)
        .unwrap_or_else(|| panic!("{remote} is not on the server: {:#?}", server.uploads()));
    assert_stored_copy(&stored, video);
    assert_eq!(
        stored.metadata.get("title").map(String::as_str),
        Some(TITLE)
    );
    assert_eq!(
        server.upload_count(),
        1,
        "the canceled upload is gone, the new one stays"
    );
}

fn start_uploading(env: &TestEnv, video: &SourceFile) -> (u64, String) {
    let id = env.add(video, &["--to", "tus", "--title", TITLE]);
    wait_progress(env, id, 8 * MIB, Duration::from_secs(60));
    let url = env.job(id).upload_url.expect("upload_url while uploading");
    (id, url)
}

fn config(env: &TestEnv, endpoint: &str, extra: &str) {
    env.write_config(&tus_config(
        endpoint,
        "rate_limit = \"16MiB\"",
        FAST_RETRY,
        &format!("chunk_size = \"4MiB\"\n{extra}"),
    ));
}

#[test]
fn cancel_mid_upload_terminates_it_and_recover_uploads_anew() {
    let env = TestEnv::new("tus-cancel");
    let server = TusServer::start(&env);
    let shim = Shim::start(server.addr());
    config(&env, &shim.endpoint(), "");
    let video = env.source("cancel.mp4", 64 * MIB);
    let _daemon = env.start_daemon();

    let (id, url) = start_uploading(&env, &video);
    cancel_quickly(&env, id, &video);
    let path = url.trim_start_matches(&shim.url(""));
    wait_until(
        Duration::from_secs(10),
        "the DELETE to reach the server",
        || {
            shim.requests("DELETE")
                .iter()
                .any(|r| r.path == path && r.status == Some(204))
        },
    );
    assert!(
        server.is_gone(&url),
        "HEAD after termination: {:?}",
        server.head(&url)
    );
    assert_eq!(server.upload_count(), 0);
    wait_until(Duration::from_secs(5), "upload_url to be cleared", || {
        env.job(id).upload_url.is_none()
    });

    recover_to_a_new_upload(&env, &server, id, &url, &video);
    let job = env.show(id);
    assert!(
        history_to(&job, JobState::Uploading)
            .iter()
            .any(|e| e.reason.contains("upload started")),
        "{}",
        describe_history(&job)
    );
}

#[test]
fn cancel_while_the_server_hangs_deletes_after_a_restart() {
    let env = TestEnv::new("tus-cancel-hung");
    let server = TusServer::start(&env);
    let proxy = Proxy::start(server.addr());
    config(
        &env,
        &proxy.url("/files/"),
        "io_timeout = \"2s\"\nconnect_timeout = \"2s\"",
    );
    let video = env.source("hung-cancel.mp4", 64 * MIB);
    let mut daemon = env.start_daemon();

    let (id, url) = start_uploading(&env, &video);
    // The PATCH in flight hangs; cancel must not wait for it.
    proxy.blackhole();
    cancel_quickly(&env, id, &video);
    assert!(
        !server.is_gone(&url),
        "the DELETE cannot have passed the blackhole"
    );

    let started = Instant::now();
    let status = daemon.stop();
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "SIGTERM took {:?}",
        started.elapsed()
    );
    assert!(!server.is_gone(&url));

    proxy.forward();
    daemon.restart();
    wait_until(
        Duration::from_secs(30),
        "the DELETE after the restart",
        || server.is_gone(&url),
    );
    assert_eq!(env.job(id).state, JobState::Canceled);
    recover_to_a_new_upload(&env, &server, id, &url, &video);
}

#[test]
fn cancel_while_the_server_is_down_deletes_in_the_background() {
    let env = TestEnv::new("tus-cancel-down");
    let server = TusServer::start(&env);
    let proxy = Proxy::start(server.addr());
    config(
        &env,
        &proxy.url("/files/"),
        "io_timeout = \"2s\"\nconnect_timeout = \"2s\"",
    );
    let video = env.source("down-cancel.mp4", 64 * MIB);
    let _daemon = env.start_daemon();

    let (id, url) = start_uploading(&env, &video);
    proxy.refuse();
    cancel_quickly(&env, id, &video);
    // The DELETE is tried, refused, and tried again later.
    wait_until(
        Duration::from_secs(15),
        "two refused DELETE attempts",
        || proxy.refused() >= 2,
    );
    assert!(!server.is_gone(&url));

    proxy.forward();
    wait_until(
        Duration::from_secs(30),
        "the DELETE once the server is back",
        || server.is_gone(&url),
    );
    assert_eq!(server.upload_count(), 0);
    recover_to_a_new_upload(&env, &server, id, &url, &video);
}
