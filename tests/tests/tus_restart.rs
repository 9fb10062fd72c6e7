//! `kill -9` of upqd in the middle of a tus upload: after the restart it asks the server
//! (HEAD) where the upload stands and goes on from there, creating no second upload.
//!
//! upqd talks to @tus/server through the recording shim, so the HEAD is seen on the wire;
//! SIGTERM during a PATCH that hangs exits at once all the same.

use std::time::{Duration, Instant};

use chrono::Utc;
use upq_tests::tus::{assert_stored_copy, FAST_RETRY};
use upq_tests::{describe_history, resume_offsets, TestEnv, MIB};
use upq_tests::{TusKeys, TusRig};

const CHUNK: u64 = 4 * MIB;

#[test]
fn kill9_mid_upload_resumes_at_the_servers_offset() {
    let env = TestEnv::new("tus-kill9");
    let keys = TusKeys {
        daemon: "rate_limit = \"16MiB\"",
        retry: FAST_RETRY,
        tus: "chunk_size = \"4MiB\"",
    };
    let (run, mut daemon) = TusRig::shimmed(&env, keys).start("crash.mp4", 64 * MIB);

    let (id, progress) = run.add_until(16 * MIB);
    let seen = progress.bytes_sent;
    let upload_url = env.job(id).upload_url.expect("upload_url while uploading");
    daemon.kill9();
    let killed_at = Utc::now();
    let stored_at_kill = run.server.only_upload().received();
    assert!(
        stored_at_kill < run.video.size,
        "finished before the kill; the rate limit is too loose"
    );

    daemon.restart();
    env.wait_published(id, 120);

    let job = env.show(id);
    let history = describe_history(&job);
    let resumed: Vec<u64> = resume_offsets(&job)
        .into_iter()
        .filter(|(at, _)| *at >= killed_at)
        .map(|(_, offset)| offset)
        .collect();
    let Some(&offset) = resumed.first() else {
        panic!("no 'resuming at byte N' after the restart:\n{history}");
    };
    assert!(offset > 0, "resumed at byte 0:\n{history}");
    assert!(
        offset >= seen,
        "resumed at {offset}, below the {seen} bytes acknowledged before the kill:\n{history}"
    );

    let heads_after: Vec<_> = run
        .shim()
        .requests("HEAD")
        .into_iter()
        .filter(|r| r.at >= killed_at && upload_url.ends_with(&r.path))
        .collect();
    assert!(
        !heads_after.is_empty(),
        "no HEAD of {upload_url} after the restart:\n{}",
        run.shim().describe()
    );
    let first_patch_after = run
        .shim()
        .requests("PATCH")
        .into_iter()
        .find(|r| r.at >= killed_at)
        .expect("a PATCH after the restart");
    assert_eq!(
        first_patch_after.upload_offset(),
        Some(offset),
        "the first PATCH after the restart starts where the server said:\n{}",
        run.shim().describe()
    );
    assert!(
        heads_after[0].at <= first_patch_after.at,
        "HEAD comes first"
    );
    assert_eq!(
        run.shim().requests("POST").len(),
        1,
        "{}",
        run.shim().describe()
    );
    assert_eq!(
        run.server.upload_count(),
        1,
        "exactly one upload on the server"
    );
    assert_eq!(job.remote.as_deref(), Some(upload_url.as_str()));
    assert_stored_copy(&run.server.only_upload(), &run.video);
    assert!(
        job.bytes_transferred <= job.size + CHUNK,
        "{} bytes transferred for {}: more than one chunk sent again",
        job.bytes_transferred,
        job.size
    );
    run.video.assert_unchanged();
}

#[test]
fn sigterm_during_a_hung_patch_exits_promptly_and_resumes() {
    let env = TestEnv::new("tus-term-hung");
    // The default io_timeout (30 s) is far longer than the 5 s a stop may take.
    let keys = TusKeys {
        daemon: "rate_limit = \"16MiB\"",
        retry: FAST_RETRY,
        tus: "chunk_size = \"4MiB\"",
    };
    let (run, mut daemon) = TusRig::proxied(&env, keys).start("term.mp4", 48 * MIB);

    let (id, progress) = run.add_until(8 * MIB);
    let seen = progress.bytes_sent;
    run.proxy().blackhole();
    let started = Instant::now();
    let status = daemon.stop();
    let took = started.elapsed();
    let stopped_at = Utc::now();
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(
        took < Duration::from_secs(5),
        "SIGTERM during a hung PATCH took {took:?}"
    );

    run.proxy().forward();
    daemon.restart();
    env.wait_published(id, 120);
    let job = env.show(id);
    let offset = resume_offsets(&job)
        .into_iter()
        .find(|(at, _)| *at >= stopped_at)
        .map(|(_, offset)| offset)
        .unwrap_or_else(|| panic!("no resume after the restart:\n{}", describe_history(&job)));
    assert!(
        offset >= seen,
        "resumed at {offset}, {seen} were acknowledged before"
    );
    assert_eq!(run.server.upload_count(), 1);
    assert_stored_copy(&run.server.only_upload(), &run.video);
}
