//! A `dir` destination that fills up: the job waits in `retrying` with `no_space`, keeps
//! its confirmed offset past `max_attempts`, and completes byte-identical once space is freed.
//!
//! Runs on a small tmpfs mounted for the test (root only; skipped with a reason elsewhere).

use std::time::Duration;

use upq_tests::files::partial_files;
use upq_tests::{wait_for, JobState, TestEnv, MIB};

#[test]
fn a_full_folder_waits_for_space_and_then_completes() {
    let env = TestEnv::new("dir-full");
    let outbox = env.root().join("outbox");
    let _mount = upq_tests::tmpfs_or_skip!(&outbox, &(8 * MIB).to_string(), "");
    // Leaves about 3 MiB free: the 5 MiB video cannot fit until the filler goes.
    let filler = outbox.join("filler.bin");
    std::fs::write(&filler, vec![0u8; 5 * MIB as usize]).expect("write filler");
    env.write_local_config(
        "[daemon.retry]\nmax_attempts = 2\nbase_delay = \"100ms\"\nmax_delay = \"500ms\"",
        "1MiB",
    );
    let video = env.source("big.mp4", 5 * MIB);
    let mut daemon = env.start_daemon();
    let id = env.add(&video, &[]);

    let full = wait_for(
        Duration::from_secs(30),
        "the job to wait in retrying with no_space",
        || {
            let job = env.show(id);
            (job.state == JobState::Retrying
                && job
                    .last_error
                    .as_ref()
                    .is_some_and(|e| e.kind == "no_space"))
            .then_some(job)
        },
    );
    let error = full.last_error.as_ref().expect("checked above");
    assert!(
        error
            .message
            .starts_with("no space left on the destination"),
        "{error:?}"
    );

    // Past max_attempts (2) the job still waits; it could have failed here, and did not.
    let waited = wait_for(
        Duration::from_secs(30),
        "more no_space attempts than max_attempts",
        || {
            let job = env.show(id);
            assert_ne!(job.state, JobState::Failed, "a full folder failed the job");
            (job.attempts > 3 && job.state == JobState::Retrying).then_some(job)
        },
    );
    // The confirmed offset is kept: whole chunks, durably in the partial file, nothing more.
    assert!(waited.bytes_sent >= MIB, "{} bytes kept", waited.bytes_sent);
    assert_eq!(waited.bytes_sent % MIB, 0, "only whole acknowledged chunks");
    let partial = partial_files(&outbox, id);
    assert_eq!(partial.len(), 1, "{partial:?}");
    let staged = std::fs::read(&partial[0]).expect("read partial");
    assert_eq!(
        staged.len() as u64,
        waited.bytes_sent,
        "the partial file holds the confirmed offset"
    );
    let source = std::fs::read(video.arg()).expect("read source");
    assert!(
        source.starts_with(&staged),
        "the partial file is a prefix of the source"
    );
    assert!(
        !outbox.join(video.name()).exists(),
        "nothing half-written is moved into place"
    );

    std::fs::remove_file(&filler).expect("free space");
    env.wait_published(id, 60);
    video.assert_same_content(&outbox.join(video.name()));
    assert!(
        partial_files(&outbox, id).is_empty(),
        "the staged copy moved"
    );
    let job = env.show(id);
    let history = job.history.unwrap_or_default();
    let resumed_at = format!("resuming at byte {} ", waited.bytes_sent);
    assert!(
        history
            .iter()
            .any(|entry| entry.reason.contains(&resumed_at)),
        "the upload resumed from its confirmed offset {}: {history:?}",
        waited.bytes_sent
    );
    daemon.stop();
}
