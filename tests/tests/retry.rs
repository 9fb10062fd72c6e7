//! Transient destination errors: a missing folder puts the job in `retrying` with backoff;
//! once the folder is back, `retry` runs it at once and it publishes.

use std::time::Duration;

use upq_tests::env::toml_string;
use upq_tests::{wait_for, JobState, OutputExt, TestEnv, MIB};

#[test]
fn missing_folder_retries_until_it_is_back() {
    let env = TestEnv::new("retry");
    let folder = env.root().join("later");
    env.write_config(&format!(
        "[destinations.local]\nkind = \"dir\"\npath = {}\nchunk_size = \"4MiB\"\n",
        toml_string(&folder)
    ));
    let video = env.source("patience.mp4", 6 * MIB);
    let _daemon = env.start_daemon();

    let id = env.add(&video, &[]);
    let job = wait_for(Duration::from_secs(30), "the job to retry", || {
        let job = env.job(id);
        (job.state == JobState::Retrying).then_some(job)
    });
    let error = job.last_error.as_ref().expect("retrying has a last_error");
    assert_eq!(error.kind, "destination", "{error:?}");
    assert!(job.next_attempt_at.is_some(), "{job:?}");
    assert!(job.attempts >= 1, "{job:?}");
    assert!(!folder.exists(), "the daemon created a configured folder");

    std::fs::create_dir_all(&folder).unwrap();
    env.ctl(["retry", &id.to_string()])
        .assert_ok("upqctl retry");
    env.wait_published(id, 30);
    video.assert_same_content(&folder.join(video.name()));
}
