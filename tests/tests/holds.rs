//! Holds and delays: the commit point waits for `publish`, or for the delay to pass.
//!
//! A held upload has all its bytes at the destination but nothing published.

use std::fs;
use std::time::Duration;

use upq_tests::env::job_from_value;
use upq_tests::files::partial_files;
use upq_tests::{describe_history, history_to, wait_until, JobState, OutputExt, TestEnv, MIB};

#[test]
fn held_upload_waits_for_publish() {
    let env = TestEnv::new("hold");
    let outbox = env.write_local_config("max_active = 2", "4MiB");
    let held_video = env.source("review-me.mp4", 16 * MIB);
    let other_video = env.source("ship-it.mp4", 16 * MIB);
    let _daemon = env.start_daemon();

    let held = env.add(&held_video, &["--hold"]);
    wait_until(Duration::from_secs(30), "the job to be held", || {
        env.job(held).state == JobState::Held
    });
    let job = env.job(held);
    assert!(job.hold, "{job:?}");
    assert_eq!(
        job.bytes_sent, held_video.size,
        "held means every byte is uploaded"
    );
    assert!(!outbox.join(held_video.name()).exists(), "held published");
    let partials = partial_files(&outbox, held);
    assert_eq!(partials.len(), 1, "{partials:?}");
    assert_eq!(fs::metadata(&partials[0]).unwrap().len(), held_video.size);

    // Other work goes on around the held job, and it stays held.
    let other = env.add(&other_video, &[]);
    env.wait_published(other, 60);
    other_video.assert_same_content(&outbox.join(other_video.name()));
    assert_eq!(env.job(held).state, JobState::Held);
    assert!(!outbox.join(held_video.name()).exists(), "held published");

    let waited = env.ctl(["wait", &held.to_string(), "--timeout", "1s"]);
    assert_eq!(
        waited.code(),
        124,
        "wait on a held job times out: {waited:?}"
    );

    env.ctl(["publish", &held.to_string()])
        .assert_ok("upqctl publish");
    env.wait_published(held, 30);
    held_video.assert_same_content(&outbox.join(held_video.name()));
    assert!(partial_files(&outbox, held).is_empty());
}

#[test]
fn delay_commits_no_earlier_than_requested() {
    let env = TestEnv::new("delay");
    let outbox = env.write_local_config("max_active = 2", "4MiB");
    let video = env.source("later.mp4", 4 * MIB);
    let _daemon = env.start_daemon();

    let job = job_from_value(env.ctl_json(["add", video.arg(), "--delay", "2s"]));
    let id = job.id;
    let publish_at = job.publish_at.expect("a delayed job has publish_at");
    assert!(
        publish_at - job.created_at >= chrono::Duration::milliseconds(1990),
        "publish_at {publish_at} is not 2 s after created_at {}",
        job.created_at
    );

    env.wait_published(id, 30);
    video.assert_same_content(&outbox.join(video.name()));
    let job = env.show(id);
    let published = history_to(&job, JobState::Published);
    let at = published
        .first()
        .unwrap_or_else(|| panic!("no published entry:\n{}", describe_history(&job)))
        .at;
    assert!(
        at - job.created_at >= chrono::Duration::seconds(2),
        "published {} after add:\n{}",
        at - job.created_at,
        describe_history(&job)
    );
}
