//! A source file that changes under upq: the job fails with `file_changed`, naming the file,
//! and nothing (neither a final nor a partial file) is left in the outbox.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use upq_tests::files::{append_bytes, final_files, mtime, partial_files};
use upq_tests::{wait_for, wait_until, JobState, JobView, OutputExt, TestEnv, MIB};

fn wait_failed(env: &TestEnv, id: u64) -> JobView {
    wait_for(Duration::from_secs(60), "the job to fail", || {
        let job = env.job(id);
        assert!(
            job.state != JobState::Published,
            "a changed file was published: {job:?}"
        );
        (job.state == JobState::Failed).then_some(job)
    })
}

fn check_failure(env: &TestEnv, job: &JobView, path: &Path, outbox: &Path) {
    let error = job
        .last_error
        .as_ref()
        .unwrap_or_else(|| panic!("failed without last_error: {job:?}"));
    assert_eq!(error.kind, "file_changed", "{error:?}");
    assert!(
        error.message.contains(path.to_str().unwrap()),
        "the message should name {}: {}",
        path.display(),
        error.message
    );
    wait_until(
        Duration::from_secs(5),
        "the partial file to be removed",
        || partial_files(outbox, job.id).is_empty(),
    );
    assert!(final_files(outbox).is_empty(), "{:?}", final_files(outbox));
    assert_eq!(env.show(job.id).state, JobState::Failed);
    let waited = env.ctl(["wait", &job.id.to_string(), "--timeout", "10s"]);
    assert_eq!(waited.code(), 1, "wait on a failed job: {waited:?}");
}

#[test]
fn appended_mid_upload_fails_without_publishing() {
    let env = TestEnv::new("changed-append");
    let outbox = env.write_local_config("rate_limit = \"10MiB\"", "4MiB");
    let video = env.source("growing.mp4", 40 * MIB);
    let _daemon = env.start_daemon();

    let id = env.add(&video, &[]);
    wait_until(Duration::from_secs(30), "the upload to get going", || {
        let job = env.job(id);
        job.state == JobState::Uploading && job.bytes_sent >= 4 * MIB
    });
    append_bytes(&video.path, 4096);

    let job = wait_failed(&env, id);
    check_failure(&env, &job, &video.path, &outbox);
}

#[test]
fn rewritten_while_queued_fails_without_publishing() {
    let env = TestEnv::new("changed-queued");
    let outbox = env.write_local_config("rate_limit = \"10MiB\"", "4MiB");
    let video = env.source("edited.mp4", 8 * MIB);
    let _daemon = env.start_daemon();

    env.ctl(["pause", "--all"]).assert_ok("upqctl pause --all");
    let id = env.add(&video, &[]);
    assert_eq!(env.job(id).state, JobState::Queued);

    // Same size, new bytes in the middle, and a clearly newer mtime.
    let before = mtime(&video.path);
    let mut file = OpenOptions::new().write(true).open(&video.path).unwrap();
    file.seek(SeekFrom::Start(MIB)).unwrap();
    file.write_all(&[0x5A; 4096]).unwrap();
    file.set_modified(before + Duration::from_secs(10)).unwrap();
    file.sync_all().unwrap();
    drop(file);

    env.ctl(["resume", "--all"])
        .assert_ok("upqctl resume --all");
    let job = wait_failed(&env, id);
    check_failure(&env, &job, &video.path, &outbox);
}
