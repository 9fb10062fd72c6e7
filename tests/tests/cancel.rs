//! Cancel in each non-terminal state: quick, clean (no partial, source untouched), and
//! recoverable from the drafts with the metadata typed at add.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use upq_tests::env::toml_string;
use upq_tests::files::{final_files, partial_files};
use upq_tests::{
    describe_history, history_to, wait_for, wait_until, JobState, OutputExt, SourceFile, TestEnv,
    MIB,
};

/// A `local` outbox (returned) and a `gone` destination whose folder never exists.
fn setup(env: &TestEnv) -> PathBuf {
    let outbox = env.root().join("outbox");
    std::fs::create_dir_all(&outbox).unwrap();
    env.write_config(&format!(
        "[daemon]\nrate_limit = \"20MiB\"\n\n\
         [destinations.local]\nkind = \"dir\"\npath = {}\nchunk_size = \"4MiB\"\n\n\
         [destinations.gone]\nkind = \"dir\"\npath = {}\n",
        toml_string(&outbox),
        toml_string(&env.root().join("gone"))
    ));
    outbox
}

fn title_of(video: &SourceFile) -> String {
    format!("Title of {}", video.name())
}

const CAPTION: &str = "A caption, with \"quotes\" and ünïcode";
const PRIVACY: &str = "unlisted";

fn add_with_metadata(env: &TestEnv, video: &SourceFile, extra: &[&str]) -> u64 {
    let title = title_of(video);
    let mut args = vec![
        "--title",
        title.as_str(),
        "--caption",
        CAPTION,
        "--privacy",
        PRIVACY,
    ];
    args.extend_from_slice(extra);
    env.add(video, &args)
}

/// Cancels job `id`, checks it answered within a second, and checks everything left behind.
fn cancel_and_check(env: &TestEnv, id: u64, video: &SourceFile, outbox: &Path) {
    let started = Instant::now();
    let output = env.ctl(["cancel", &id.to_string(), "--json"]);
    let took = started.elapsed();
    output.assert_ok("upqctl cancel");
    assert!(took < Duration::from_secs(1), "cancel took {took:?}");

    let reply: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("cancel --json: {e}: {}", output.stdout_text()));
    assert_eq!(reply[0]["id"], id, "{reply}");
    assert_eq!(reply[0]["job"]["state"], "canceled", "{reply}");
    assert_eq!(env.job(id).state, JobState::Canceled);

    wait_until(
        Duration::from_secs(5),
        "the partial upload to be removed",
        || partial_files(outbox, id).is_empty(),
    );
    assert!(
        !outbox.join(video.name()).exists(),
        "a canceled upload was published"
    );
    video.assert_unchanged();

    let drafts = env.drafts();
    let draft = drafts
        .iter()
        .find(|d| d.id == id)
        .unwrap_or_else(|| panic!("job {id} is not in the drafts: {drafts:?}"));
    assert_eq!(draft.state, JobState::Canceled);
    assert_eq!(
        draft.metadata.title.as_deref(),
        Some(title_of(video).as_str())
    );
    assert_eq!(draft.metadata.caption.as_deref(), Some(CAPTION));
    assert_eq!(draft.metadata.privacy.as_deref(), Some(PRIVACY));
    assert_eq!(draft.file, video.arg());
}

/// `recover`, then the job publishes the whole file again from a fresh start.
fn recover_and_check(env: &TestEnv, id: u64, video: &SourceFile, outbox: &Path) {
    let recovered_at = Utc::now();
    env.ctl(["recover", &id.to_string()])
        .assert_ok("upqctl recover");
    assert!(
        env.drafts().iter().all(|d| d.id != id),
        "a recovered job is no longer a draft"
    );
    let state = wait_for(
        Duration::from_secs(60),
        "the recovered job to finish or hold",
        || {
            let state = env.job(id).state;
            matches!(state, JobState::Held | JobState::Published).then_some(state)
        },
    );
    if state == JobState::Held {
        env.ctl(["publish", &id.to_string()])
            .assert_ok("upqctl publish");
    }
    env.wait_published(id, 60);
    video.assert_same_content(&outbox.join(video.name()));

    let job = env.show(id);
    assert_eq!(
        job.metadata.title.as_deref(),
        Some(title_of(video).as_str())
    );
    let restart = history_to(&job, JobState::Uploading)
        .into_iter()
        .find(|e| e.at >= recovered_at)
        .map(|e| e.reason.clone())
        .unwrap_or_else(|| panic!("no upload after recover:\n{}", describe_history(&job)));
    assert!(
        restart.contains("upload started"),
        "recover should start a fresh upload, not resume: {restart}"
    );
}

fn wait_uploading(env: &TestEnv, id: u64) {
    wait_until(Duration::from_secs(30), "the upload to get going", || {
        let job = env.job(id);
        job.state == JobState::Uploading && job.bytes_sent >= 4 * MIB
    });
}

#[test]
fn cancel_while_uploading() {
    let env = TestEnv::new("cancel-uploading");
    let outbox = setup(&env);
    let video = env.source("uploading.mp4", 60 * MIB);
    let _daemon = env.start_daemon();

    let id = add_with_metadata(&env, &video, &[]);
    wait_uploading(&env, id);
    cancel_and_check(&env, id, &video, &outbox);
    recover_and_check(&env, id, &video, &outbox);
}

#[test]
fn cancel_while_paused() {
    let env = TestEnv::new("cancel-paused");
    let outbox = setup(&env);
    let video = env.source("paused.mp4", 60 * MIB);
    let _daemon = env.start_daemon();

    let id = add_with_metadata(&env, &video, &[]);
    wait_uploading(&env, id);
    env.ctl(["pause", &id.to_string()])
        .assert_ok("upqctl pause");
    wait_until(Duration::from_secs(10), "the job to be paused", || {
        env.job(id).state == JobState::Paused
    });
    assert_eq!(
        partial_files(&outbox, id).len(),
        1,
        "paused keeps its partial"
    );
    cancel_and_check(&env, id, &video, &outbox);
    recover_and_check(&env, id, &video, &outbox);
}

#[test]
fn cancel_while_held() {
    let env = TestEnv::new("cancel-held");
    let outbox = setup(&env);
    let video = env.source("held.mp4", 8 * MIB);
    let _daemon = env.start_daemon();

    let id = add_with_metadata(&env, &video, &["--hold"]);
    wait_until(Duration::from_secs(30), "the job to be held", || {
        env.job(id).state == JobState::Held
    });
    assert_eq!(
        partial_files(&outbox, id).len(),
        1,
        "held keeps its partial"
    );
    assert!(final_files(&outbox).is_empty(), "held publishes nothing");
    cancel_and_check(&env, id, &video, &outbox);
    recover_and_check(&env, id, &video, &outbox);
}

#[test]
fn cancel_while_retrying_then_discard() {
    let env = TestEnv::new("cancel-retrying");
    let outbox = setup(&env);
    let gone = env.root().join("gone");
    let video = env.source("retrying.mp4", 4 * MIB);
    let _daemon = env.start_daemon();

    let id = add_with_metadata(&env, &video, &["--to", "gone"]);
    wait_until(
        Duration::from_secs(30),
        "the job to retry a missing folder",
        || {
            let job = env.job(id);
            job.state == JobState::Retrying
                && job
                    .last_error
                    .as_ref()
                    .is_some_and(|e| e.kind == "destination")
        },
    );
    cancel_and_check(&env, id, &video, &gone);
    assert!(final_files(&outbox).is_empty());
    assert!(!gone.exists(), "the daemon created a configured folder");

    env.ctl(["discard", &id.to_string()])
        .assert_ok("upqctl discard");
    let output = env.ctl(["show", &id.to_string()]);
    assert_eq!(output.code(), 4, "a discarded job is gone: {output:?}");
    assert!(env.drafts().iter().all(|d| d.id != id));
    video.assert_unchanged();
}
