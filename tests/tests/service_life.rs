//! The daemon's own life: one daemon per socket, stale sockets, JSON logs, and the
//! scheduler's order (priority, then first in first out, never more than `max_active`).
//!
//! Each test runs the real binaries in its own temporary environment.

use upq_tests::{history_to, Daemon, JobState, OutputExt, TestEnv, MIB};

#[test]
fn a_second_daemon_on_the_same_socket_refuses_to_start() {
    let env = TestEnv::new("second-daemon");
    let mut first = env.start_daemon();

    let second = Daemon::run_to_exit(
        &env,
        &[
            "--data-dir",
            &env.root().join("other-data").display().to_string(),
        ],
    );
    assert_ne!(second.status.code(), Some(0), "{second:?}");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("already serving")
            && stderr.contains(&env.socket_path().display().to_string()),
        "the refusal should say another upqd serves this socket: {stderr}"
    );
    assert!(first.is_running(), "the first daemon must keep running");
    env.ctl(["status"])
        .assert_ok("status after a refused second daemon");
}

#[test]
fn a_stale_socket_left_by_a_crash_is_replaced() {
    let env = TestEnv::new("stale-socket");
    let mut daemon = env.start_daemon();
    daemon.kill9();
    assert!(
        env.socket_path().exists(),
        "kill -9 leaves the socket file behind"
    );
    daemon.restart();
    env.ctl(["status"])
        .assert_ok("status after replacing a stale socket");
}

#[test]
fn json_logs_are_one_object_a_line() {
    let env = TestEnv::new("json-logs");
    let video = env.source("logged.mp4", MIB);
    let daemon = env.start_daemon_with(&["--log-format", "json"]);
    let id = env.add(&video, &[]);
    env.wait_published(id, 30);

    let log = daemon.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 3, "expected several log lines, got:\n{log}");
    for line in &lines {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        assert!(value.get("level").is_some(), "no level in {line}");
    }
    assert!(
        log.contains("\"to\":\"published\""),
        "the publication is logged with its state:\n{log}"
    );
}

#[test]
fn jobs_run_by_priority_then_in_order_one_slot_at_a_time() {
    let env = TestEnv::new("priority");
    let outbox = env.write_local_config("max_active = 1", "1MiB");
    let _daemon = env.start_daemon();
    env.ctl(["pause", "--all"]).assert_ok("pause --all");

    // Added in this order; expected to run as: urgent, soon, first, second.
    let plan = [("first", 0), ("urgent", 5), ("second", 0), ("soon", 1)];
    let mut ids = Vec::new();
    for (name, priority) in plan {
        let video = env.source(&format!("{name}.mp4"), 3 * MIB);
        ids.push((
            name,
            env.add(&video, &["--priority", &priority.to_string()]),
        ));
    }
    let states: Vec<JobState> = env.list(false).iter().map(|job| job.state).collect();
    assert_eq!(
        states,
        [JobState::Queued; 4],
        "a paused queue starts nothing"
    );
    env.ctl(["resume", "--all"]).assert_ok("resume --all");
    for (_, id) in &ids {
        env.wait_published(*id, 60);
    }

    let mut runs: Vec<(
        &str,
        chrono::DateTime<chrono::Utc>,
        chrono::DateTime<chrono::Utc>,
    )> = ids
        .iter()
        .map(|(name, id)| {
            let job = env.show(*id);
            let started = history_to(&job, JobState::Uploading)[0].at;
            let published = history_to(&job, JobState::Published)[0].at;
            (*name, started, published)
        })
        .collect();
    runs.sort_by_key(|(_, started, _)| *started);
    let order: Vec<&str> = runs.iter().map(|(name, _, _)| *name).collect();
    assert_eq!(order, ["urgent", "soon", "first", "second"]);
    for pair in runs.windows(2) {
        assert!(
            pair[1].1 >= pair[0].2,
            "{} started at {} before {} was published at {} with max_active = 1",
            pair[1].0,
            pair[1].1,
            pair[0].0,
            pair[0].2
        );
    }
    assert_eq!(upq_tests::files::final_files(&outbox).len(), 4);
}
