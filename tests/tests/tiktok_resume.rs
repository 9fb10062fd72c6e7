//! TikTok uploads that break on the way: a restart mid-upload, a lost acknowledgement
//! (416 and the server's Content-Range), an expired upload_url and a new publish_id.

mod tiktok_common;

use std::time::Duration;

use tiktok_common::*;
use upq_tests::tiktok::{Fault, TikTokServer};
use upq_tests::{describe_history, wait_until, Daemon, JobState, OutputExt, SourceFile, TestEnv};

const TIMEOUT: Duration = Duration::from_secs(120);

/// Every PUT the server answered for the first upload, as `(first, last, status)`.
fn puts(server: &TikTokServer) -> Vec<(u64, u64, u16)> {
    server
        .uploads()
        .first()
        .map(|u| u.chunks.clone())
        .unwrap_or_default()
}

/// Configures upqd for `server` in `mode` with 5 MB chunks and `rate_limit`, makes the MP4
/// `video` (name, size) and starts the daemon.
fn start<'e>(
    env: &'e TestEnv,
    server: &TikTokServer,
    mode: &str,
    rate_limit: &str,
    video: (&str, u64),
) -> (SourceFile, Daemon<'e>) {
    let daemon_keys = format!("rate_limit = \"{rate_limit}\"");
    configure_with(env, server, mode, &daemon_keys, "chunk_size = \"5MB\"");
    let video = mp4_of_size(env, video.0, video.1);
    (video, env.start_daemon())
}

#[test]
fn restart_mid_upload_resumes_from_the_servers_content_range() {
    let env = TestEnv::new("tiktok-restart");
    let server = TikTokServer::start(options());
    // Slow retries: after the dropped answer the job sits in `retrying` while it is killed.
    let (video, mut daemon) = start(&env, &server, "direct", "40MiB", ("restart", 70_000_000));
    let id = env.add(&video, &["--privacy", "SELF_ONLY"]);

    // The server stores the third chunk but the answer never arrives.
    wait_until(TIMEOUT, "two chunks acknowledged", || {
        puts(&server).iter().filter(|c| c.2 == 206).count() >= 2
    });
    server.inject(Fault::AcceptThenDrop);
    wait_until(TIMEOUT, "a chunk stored without an answer", || {
        puts(&server).iter().any(|c| c.2 == 0)
    });
    daemon.kill9();
    let dropped = puts(&server).into_iter().find(|c| c.2 == 0).unwrap();
    let stored = server.uploads()[0].received;
    assert_eq!(stored, dropped.1 + 1, "the server kept the dropped chunk");

    env.disconnect();
    daemon.restart();
    let job = wait_state(&env, &server, id, JobState::Published, TIMEOUT);

    let uploads = server.uploads();
    assert_eq!(
        uploads.len(),
        1,
        "the same upload resumed:\n{}",
        server.describe()
    );
    let record = &uploads[0];
    assert!(record.complete);
    assert_eq!(record.blake3.as_deref(), Some(video.hash.as_str()));
    // After the drop the client resent from what it had recorded (the dropped chunk, or
    // an earlier one if its last record was lost in the kill), met a 416, and went on
    // from the server's Content-Range.
    let chunks = &record.chunks;
    let drop_at = chunks.iter().position(|c| c.2 == 0).unwrap();
    let refused = drop_at
        + chunks[drop_at..]
            .iter()
            .position(|c| c.2 == 416)
            .unwrap_or_else(|| panic!("no 416 after the drop: {chunks:?}"));
    assert!(
        chunks[refused].0 <= dropped.0,
        "the client resent at most from the unacknowledged chunk: {chunks:?}"
    );
    assert_eq!(
        chunks[refused + 1].0,
        stored,
        "then continued from the server's Content-Range: {chunks:?}"
    );
    // Nothing before the drop was sent twice.
    let before: Vec<u64> = chunks[..drop_at].iter().map(|c| c.0).collect();
    let mut unique = before.clone();
    unique.dedup();
    assert_eq!(before, unique, "{chunks:?}");
    let history = describe_history(&env.show(id));
    assert!(history.contains("416"), "{history}");
    assert_eq!(job.bytes_sent, video.size);
    // A resend from an earlier chunk than the dropped one (its record lost in the kill)
    // also meets 416: that is the recovery, not a broken rule.
    assert_no_violations_but(&server, &["416 range_not_satisfiable"]);
}

#[test]
fn a_lost_acknowledgement_is_recovered_through_416() {
    let env = TestEnv::new("tiktok-416");
    let server = TikTokServer::start(options());
    let (video, _daemon) = start(&env, &server, "inbox", "60MiB", ("ack", 66_000_000));
    server.inject(Fault::AcceptThenFail);
    let id = env.add(&video, &[]);
    wait_state(&env, &server, id, JobState::Published, TIMEOUT);

    let record = &server.uploads()[0];
    let chunks = &record.chunks;
    let failed = chunks.iter().position(|c| c.2 == 500).expect("the 500");
    assert_eq!(
        chunks[failed + 1].2,
        416,
        "the resend meets 416: {chunks:?}"
    );
    assert_eq!(chunks[failed + 1].0, chunks[failed].0);
    assert_eq!(
        chunks[failed + 2].0,
        chunks[failed].1 + 1,
        "and the next PUT starts where the server is: {chunks:?}"
    );
    assert!(record.complete);
    assert_eq!(record.blake3.as_deref(), Some(video.hash.as_str()));
    assert_eq!(server.uploads().len(), 1);
    assert_no_violations(&server);
}

#[test]
fn an_expired_upload_url_starts_over_with_a_new_publish_id() {
    let env = TestEnv::new("tiktok-expiry");
    let server = TikTokServer::start(options());
    configure(&env, &server, "direct", "chunk_size = \"10MB\"");
    let video = mp4_of_size(&env, "expiry", 70_000_000);
    let _daemon = env.start_daemon();

    let output = env.ctl(["add", video.arg(), "--hold"]);
    output.assert_ok("upqctl add --hold");
    let warning = output.stderr_text();
    assert!(
        warning.contains("upload_url") && warning.contains("inbox"),
        "a hold on a direct post warns and suggests inbox mode: {warning}"
    );
    let id: u64 = output.stdout_text().trim().parse().unwrap();
    wait_state(&env, &server, id, JobState::Held, TIMEOUT);
    let first = server.uploads()[0].clone();
    assert!(!first.complete, "held before the final chunk");
    assert_eq!(first.received, 60_000_000, "everything but the final chunk");

    // An hour and a bit passes while the job is held.
    server.advance(Duration::from_secs(3601));
    env.ctl(["publish", &id.to_string()])
        .assert_ok("upqctl publish");
    wait_state(&env, &server, id, JobState::Published, TIMEOUT);
    let job = env.show(id);

    let uploads = server.uploads();
    assert_eq!(uploads.len(), 2, "a second init:\n{}", server.describe());
    let (old, new) = (&uploads[0], &uploads[1]);
    assert_ne!(old.publish_id, new.publish_id);
    assert!(!old.complete);
    assert_eq!(
        old.chunks.last().map(|c| c.2),
        Some(403),
        "{:?}",
        old.chunks
    );
    assert_clean_upload(&server, new, &video);
    let history = job.history.clone().unwrap_or_default();
    let text = describe_history(&job);
    let expired = history
        .iter()
        .position(|e| e.reason.contains("expired"))
        .unwrap_or_else(|| panic!("the expiry is in the history:\n{text}"));
    assert!(
        history[expired..]
            .iter()
            .any(|e| e.reason.contains(&new.publish_id)),
        "the new publish_id is in the history:\n{text}"
    );
    assert_no_violations_but(&server, &["403 url_expired"]);
}

#[test]
fn a_201_before_the_final_chunk_is_not_believed() {
    let env = TestEnv::new("tiktok-lie");
    let server = TikTokServer::start(options());
    configure(&env, &server, "inbox", "chunk_size = \"5MB\"");
    let video = mp4_of_size(&env, "lie", 66_000_000);
    let _daemon = env.start_daemon();
    // The first PUT is answered "all received" without storing anything.
    server.inject(Fault::respond("put", 201, "ok", ""));
    let id = env.add(&video, &[]);
    wait_state(&env, &server, id, JobState::Published, TIMEOUT);
    let record = &server.uploads()[0];
    assert!(record.complete);
    assert_eq!(record.blake3.as_deref(), Some(video.hash.as_str()));
    let history = describe_history(&env.show(id));
    assert!(
        history.contains("201"),
        "the lie is in the history: {history}"
    );
    assert_no_violations(&server);
}
