//! A link that still moves bytes, but too few: with `min_speed` set the attempt stalls with a
//! message naming the floor, and when the link recovers the upload resumes and completes.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use upq_proto::JobError;
use upq_tests::fixture::STALL_LINK;
use upq_tests::tus::{assert_stored_copy, FAST_RETRY};
use upq_tests::{describe_history, resume_offsets, wait_for, TestEnv, MIB};
use upq_tests::{TusKeys, TusRig, TusRun};

/// The trickle: about 1 KiB/s from upqd to the server.
const TRICKLE: u64 = 1024;

fn is_stall(error: &JobError) -> bool {
    error.kind == "stalled"
}

/// Lifts the throttle; the job then completes with the exact file and no stall counted,
/// resuming at the server's offset after `since`.
fn assert_recovers(env: &TestEnv, run: &TusRun, id: u64, since: DateTime<Utc>, after: &str) {
    run.proxy().unthrottle();
    env.wait_published(id, 120);
    assert_stored_copy(&run.server.only_upload(), &run.video);
    let job = env.show(id);
    let history = describe_history(&job);
    assert_eq!(job.stalls, 0, "{history}");
    assert!(
        resume_offsets(&job)
            .iter()
            .any(|(at, offset)| *at >= since && *offset > 0),
        "the upload resumed at the server's offset{after}:\n{history}"
    );
}

#[test]
fn a_trickle_under_min_speed_is_a_stall_naming_the_floor() {
    let env = TestEnv::new("stall-trickle");
    let keys = TusKeys {
        daemon: "stall_timeout = \"2s\"\nmin_speed = \"64KiB\"\nrate_limit = \"16MiB\"",
        retry: FAST_RETRY,
        tus: STALL_LINK,
    };
    let (run, _daemon) = TusRig::proxied(&env, keys)
        .with_events()
        .start("trickle.mp4", 32 * MIB);

    let (id, _) = run.add_until(2 * MIB);
    let up_before = run.proxy().bytes_up();
    run.proxy().throttle_up(TRICKLE);
    let throttled_at = Instant::now();
    let throttled_at_utc = Utc::now();

    let error = run
        .events()
        .wait_for_error(id, Duration::from_secs(30), "a stall", is_stall);
    let window = throttled_at.elapsed();
    eprintln!(
        "under a {TRICKLE} B/s trickle after {window:?}: {}",
        error.message
    );
    // The proxy really trickles: what passed since is in the order of a KiB per second
    // (plus what was already on its way when the throttle began).
    let passed = run.proxy().bytes_up() - up_before;
    assert!(
        passed <= 2 * MIB + TRICKLE * (window.as_secs() + 2),
        "{passed} bytes passed in {window:?} under a {TRICKLE} B/s throttle"
    );
    assert!(
        error.message.contains("min_speed")
            && error.message.contains("under the 64.0 KiB/s floor")
            && error.message.contains("over the last 2 s"),
        "a trickle under min_speed is reported as too slow, naming the floor: {error:?}\n{}",
        run.events().describe(id)
    );

    assert_recovers(&env, &run, id, throttled_at_utc, " after the trickle");
}

/// A slow link rather than a trickle: pieces still move within every `stall_timeout`, but the
/// average over the window stays under the floor.
#[test]
fn a_slow_link_under_min_speed_is_a_stall_naming_the_floor() {
    const SLOW: u64 = 128 * 1024;
    let env = TestEnv::new("stall-slow");
    // 64 KiB chunks move as 64 KiB pieces, several per window at 128 KiB/s; unthrottled,
    // they move several times faster than the floor.
    let keys = TusKeys {
        daemon: "stall_timeout = \"2s\"\nmin_speed = \"512KiB\"\nrate_limit = \"16MiB\"",
        retry: FAST_RETRY,
        tus: "chunk_size = \"64KiB\"\nio_timeout = \"60s\"\nconnect_timeout = \"5s\"",
    };
    let (run, _daemon) = TusRig::proxied(&env, keys)
        .with_events()
        .start("slow.mp4", 24 * MIB);

    let (id, _) = run.add_until(MIB);
    run.proxy().throttle_up(SLOW);
    let throttled_at_utc = Utc::now();
    let sent_at_throttle = env.job(id).bytes_sent;

    let stall = wait_for(
        Duration::from_secs(30),
        "a stall under the throttle",
        || {
            run.events().transitions(id).into_iter().find(|t| {
                t.received_at >= throttled_at_utc && t.job.last_error.as_ref().is_some_and(is_stall)
            })
        },
    );
    let error = stall.job.last_error.clone().expect("checked above");
    let stalled = stall.job;
    eprintln!("under a {SLOW} B/s link: {}", error.message);
    assert!(
        error.message.contains("min_speed")
            && error.message.contains("under the 512.0 KiB/s floor"),
        "a slow link under min_speed is reported as too slow, naming the floor: {error:?}\n{}",
        run.events().describe(id)
    );
    assert!(
        error.message.starts_with("only "),
        "the message gives the measured speed: {error:?}"
    );
    assert!(
        stalled.bytes_sent > sent_at_throttle,
        "chunks still moved under the throttle (a slow link, not a hang): {} then {}\n{}",
        sent_at_throttle,
        stalled.bytes_sent,
        run.events().describe(id)
    );

    assert_recovers(&env, &run, id, throttled_at_utc, "");
}
