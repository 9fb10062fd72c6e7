//! Crash and restart: `kill -9` or SIGTERM mid-upload, then the job resumes where the
//! destination says it stopped, re-sending at most the chunk that was in flight.

use std::time::{Duration, Instant};

use chrono::Utc;
use upq_tests::files::partial_files;
use upq_tests::{describe_history, resume_offsets, wait_for, JobState, TestEnv, MIB};

const CHUNK: u64 = 4 * MIB;

/// Polls until `bytes_sent` reaches `threshold`; returns the last value seen.
fn wait_for_progress(env: &TestEnv, id: u64, threshold: u64) -> u64 {
    wait_for(
        Duration::from_secs(60),
        format!("job {id} to send {threshold} bytes"),
        || {
            let job = env.job(id);
            assert!(
                matches!(job.state, JobState::Queued | JobState::Uploading),
                "job {id} left the upload early: {job:?}"
            );
            (job.bytes_sent >= threshold).then_some(job.bytes_sent)
        },
    )
}

/// The resume offset recorded after `since`, checked against what was seen before the stop.
fn check_resume_after(env: &TestEnv, id: u64, since: chrono::DateTime<Utc>, seen: u64) {
    let job = env.show(id);
    assert_eq!(job.state, JobState::Published);
    let resumes: Vec<u64> = resume_offsets(&job)
        .into_iter()
        .filter(|(at, _)| *at >= since)
        .map(|(_, offset)| offset)
        .collect();
    let history = describe_history(&job);
    let Some(&offset) = resumes.first() else {
        panic!("no 'resuming at byte N' entry after the restart:\n{history}");
    };
    eprintln!(
        "job {id}: last bytes_sent seen {seen}, resumed at byte {offset}, {} bytes transferred for {}",
        job.bytes_transferred, job.size
    );
    assert!(offset > 0, "resumed at byte 0:\n{history}");
    assert!(
        offset >= seen,
        "resumed at byte {offset}, below the {seen} bytes acknowledged before the stop:\n{history}"
    );
    assert!(
        job.bytes_transferred <= job.size + CHUNK,
        "{} bytes transferred for a {}-byte file: more than one chunk was re-sent",
        job.bytes_transferred,
        job.size
    );
    assert_eq!(job.bytes_sent, job.size);
}

#[test]
fn kill9_mid_upload_resumes_from_confirmed_offset() {
    let env = TestEnv::new("restart-kill9");
    let outbox = env.write_local_config("max_active = 2\nrate_limit = \"40MiB\"", "4MiB");
    let video = env.source("long-take.mp4", 200 * MIB);
    let mut daemon = env.start_daemon();

    let id = env.add(&video, &[]);
    let seen = wait_for_progress(&env, id, video.size / 4);
    daemon.kill9();
    let killed_at = Utc::now();
    assert!(
        !outbox.join(video.name()).exists(),
        "published before the kill; the rate limit is not slowing the upload"
    );

    daemon.restart();
    env.wait_published(id, 120);

    video.assert_same_content(&outbox.join(video.name()));
    video.assert_unchanged();
    check_resume_after(&env, id, killed_at, seen);
    assert!(partial_files(&outbox, id).is_empty());
}

#[test]
fn sigterm_mid_upload_exits_promptly_and_resumes() {
    let env = TestEnv::new("restart-term");
    let outbox = env.write_local_config("rate_limit = \"16MiB\"", "4MiB");
    let video = env.source("interview.mp4", 64 * MIB);
    let mut daemon = env.start_daemon();

    let id = env.add(&video, &[]);
    let seen = wait_for_progress(&env, id, video.size / 4);
    let started = Instant::now();
    let status = daemon.stop();
    let took = started.elapsed();
    let stopped_at = Utc::now();
    assert_eq!(status.code(), Some(0), "SIGTERM should exit 0: {status:?}");
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");

    daemon.restart();
    env.wait_published(id, 60);

    video.assert_same_content(&outbox.join(video.name()));
    check_resume_after(&env, id, stopped_at, seen);
    // A clean stop persists everything, so no pushed byte goes uncounted.
    let job = env.show(id);
    assert!(
        job.bytes_transferred >= job.size,
        "bytes_transferred counts every byte pushed, yet it is {} for a published {}-byte file",
        job.bytes_transferred,
        job.size
    );
}
