//! The data folder full, read-only or impossible: upqd says so, by name and exit code, and
//! a full folder refuses `add` with `no_space` while everything queued stays and resumes.
//!
//! Mounts small tmpfs file systems (root, as in CI); skips with a printed reason elsewhere.

use std::fs;

use serde_json::json;
use upq_tests::{tmpfs_or_skip, wait_until, Client, Daemon, OutputExt, TestEnv};

#[test]
fn a_full_data_folder_refuses_add_with_no_space_keeps_the_queue_and_resumes() {
    let env = TestEnv::new("store-full");
    let outbox = env.write_local_config("", "4MiB");
    let data = tmpfs_or_skip!(&env.data_dir(), "24m", "");
    let videos: Vec<_> = (0..3)
        .map(|i| env.source(&format!("v{i}.mp4"), 256 * 1024))
        .collect();
    let mut daemon = env.start_daemon();
    env.ctl(["pause", "--all"]).assert_ok("pause --all");
    let queued: Vec<u64> = videos.iter().map(|v| env.add(v, &[])).collect();

    let filler = data.fill();
    let mut client = Client::connect(&env.socket_path()).expect("connect");
    let refused = client
        .call("add", Some(json!({"file": videos[0].arg()})))
        .expect("the daemon answers")
        .expect_err("add on a full data folder is refused");
    assert_eq!(refused["code"], "no_space", "{refused}");
    let message = refused["message"].as_str().expect("a message");
    assert!(
        message.contains(&env.data_dir().display().to_string()) && message.contains("no space"),
        "{message}"
    );
    let cli = env.ctl(["add", videos[0].arg()]);
    assert_ne!(cli.code(), 0);
    assert!(
        cli.stderr_text().contains("no space left"),
        "{}",
        cli.stderr_text()
    );
    // Still answering, with every queued job.
    let status = env.ctl_json(["status"]);
    assert_eq!(status["counts"]["queued"], 3, "{status}");
    let listed: Vec<u64> = env.list(false).iter().map(|job| job.id).collect();
    assert_eq!(listed, queued);
    assert!(daemon.is_running());

    // Work goes on while the disk is full: state changes still reach the database.
    env.ctl(["resume", "--all"])
        .assert_ok("resume --all on a full data folder");
    for id in &queued {
        env.wait_published(*id, 60);
    }
    assert!(
        daemon.log().contains("gave back upq's space reserve"),
        "{}",
        daemon.log()
    );

    fs::remove_file(&filler).expect("free the space");
    let later = env.add(&videos[0], &[]);
    assert_eq!(later, queued[2] + 1);
    env.wait_published(later, 60);
    wait_until(
        std::time::Duration::from_secs(10),
        "four copies in the outbox",
        || upq_tests::files::final_files(&outbox).len() == 4,
    );
    let status = env.ctl_json(["status"]);
    assert_eq!(status["counts"]["published"], 4, "{status}");
    assert_eq!(daemon.stop().code(), Some(0));
    drop(data);
}

#[test]
fn a_data_folder_that_cannot_be_created_exits_73_naming_it() {
    let env = TestEnv::new("store-nodir");
    env.write_local_config("", "4MiB");
    let blocker = env.root().join("not-a-folder");
    fs::write(&blocker, b"a file where a folder should be").expect("write");
    let data_dir = blocker.join("upq");
    let output = Daemon::run_to_exit(&env, &["--data-dir", data_dir.to_str().expect("utf-8")]);
    assert_eq!(output.code(), 73, "{}", output.stderr_text());
    assert!(
        output.stderr_text().contains(&format!(
            "the data folder {} cannot be created",
            data_dir.display()
        )),
        "{}",
        output.stderr_text()
    );
    assert!(!output.stderr_text().contains("panicked"));
}

#[test]
fn a_read_only_data_folder_exits_73_naming_it() {
    let env = TestEnv::new("store-ro");
    env.write_local_config("", "4MiB");
    let _ro = tmpfs_or_skip!(&env.data_dir(), "1m", "ro");
    // Root ignores permission bits, so only a read-only mount proves the refusal.
    assert!(fs::File::create(env.data_dir().join("probe")).is_err());
    let output = Daemon::run_to_exit(&env, &[]);
    assert_eq!(output.code(), 73, "{}", output.stderr_text());
    assert!(
        output.stderr_text().contains(&format!(
            "the data folder {} cannot be written",
            env.data_dir().display()
        )),
        "{}",
        output.stderr_text()
    );
    assert!(!output.stderr_text().contains("panicked"));
}
