//! Rates by configuration and by hand, on the real daemon: a destination's own
//! `rate_limit` under the global one, and `upqctl limit --until`, which gives way to the
//! configured rate by itself.

use std::time::Duration;

use upq_tests::env::toml_string;
use upq_tests::{describe_history, history_to, wait_until, JobState, OutputExt, TestEnv, MIB};

/// Seconds from "upload started" to the end of the upload (its commit).
fn upload_seconds(env: &TestEnv, id: u64) -> f64 {
    let job = env.show(id);
    let started = history_to(&job, JobState::Uploading)
        .first()
        .map(|entry| entry.at)
        .unwrap_or_else(|| panic!("job {id} never uploaded:\n{}", describe_history(&job)));
    let ended = history_to(&job, JobState::Processing)
        .last()
        .or(history_to(&job, JobState::Published).last())
        .map(|entry| entry.at)
        .unwrap_or_else(|| panic!("job {id} never finished:\n{}", describe_history(&job)));
    (ended - started).num_milliseconds() as f64 / 1000.0
}

#[test]
fn a_destination_s_own_rate_limit_holds_under_the_global_one() {
    let env = TestEnv::new("policy-destination-rate");
    let (fast, slow) = (env.root().join("fast"), env.root().join("slow"));
    std::fs::create_dir_all(&fast).unwrap();
    std::fs::create_dir_all(&slow).unwrap();
    env.write_config(&format!(
        "[daemon]\nrate_limit = \"8MiB\"\n\n\
         [destinations.fast]\nkind = \"dir\"\npath = {}\nchunk_size = \"1MiB\"\n\n\
         [destinations.slow]\nkind = \"dir\"\npath = {}\nchunk_size = \"1MiB\"\nrate_limit = \"1MiB\"\n",
        toml_string(&fast),
        toml_string(&slow)
    ));
    let _daemon = env.start_daemon();
    let to_slow = env.source("slow.mp4", 4 * MIB);
    let to_fast = env.source("fast.mp4", 8 * MIB);
    let slow_id = env.add(&to_slow, &["--to", "slow"]);
    let fast_id = env.add(&to_fast, &["--to", "fast"]);
    env.wait_published(fast_id, 60);
    env.wait_published(slow_id, 60);
    to_slow.assert_same_content(&slow.join(to_slow.name()));
    to_fast.assert_same_content(&fast.join(to_fast.name()));

    // 4 MiB at 1 MiB/s, less the half-second burst a bucket allows: about 3.5 s.
    let slow_took = upload_seconds(&env, slow_id);
    assert!(
        (3.2..=4.6).contains(&slow_took),
        "4 MiB under 1 MiB/s took {slow_took:.2} s"
    );
    // 8 MiB under the global 8 MiB/s, shared with the slow one: well under its time.
    let fast_took = upload_seconds(&env, fast_id);
    assert!(
        fast_took < slow_took * 0.6,
        "the other destination kept its speed: {fast_took:.2} s against {slow_took:.2} s"
    );
}

#[test]
fn a_limit_with_until_gives_way_to_the_configured_rate() {
    let env = TestEnv::new("policy-limit-until");
    env.write_local_config("rate_limit = \"08:00,2MiB 20:00,3MiB\"", "1MiB");
    let _daemon = env.start_daemon();
    let status = env.ctl_json(["status"]);
    let configured = status["rate_limit"].as_u64().expect("a rate");
    assert!(
        configured == 2 * MIB || configured == 3 * MIB,
        "the timetable's rate: {status}"
    );

    let answer = env.ctl_json(["limit", "512KiB", "--until", "3s"]);
    assert_eq!(answer["rate_limit"], 512 * 1024, "{answer}");
    assert!(answer["rate_limit_until"].is_string(), "{answer}");
    let shown = env.ctl(["status"]).stdout_text();
    assert!(
        shown.contains("512 KiB/s (set by `upqctl limit`, until"),
        "{shown}"
    );
    wait_until(Duration::from_secs(10), "the timetable's rate back", || {
        env.ctl_json(["status"])["rate_limit"].as_u64() == Some(configured)
    });
    let status = env.ctl_json(["status"]);
    assert!(status.get("rate_limit_until").is_none(), "{status}");

    // Without --until, it holds until the timetable's next change (08:00 or 20:00).
    let answer = env.ctl_json(["limit", "1MiB"]);
    let until: chrono::DateTime<chrono::Local> = answer["rate_limit_until"]
        .as_str()
        .and_then(|at| at.parse().ok())
        .unwrap_or_else(|| panic!("until the next change: {answer}"));
    let shown = until.format("%H:%M").to_string();
    assert!(shown == "08:00" || shown == "20:00", "until {shown}");
}
