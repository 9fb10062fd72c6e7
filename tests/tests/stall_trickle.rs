//! A link that still moves bytes, but too few: with `min_speed` set the attempt stalls with a
//! message naming the floor, and when the link recovers the upload resumes and completes.

use std::time::{Duration, Instant};

use chrono::Utc;
use upq_proto::JobError;
use upq_tests::tus::{assert_stored_copy, wait_progress, FAST_RETRY};
use upq_tests::{
    describe_history, resume_offsets, tus_config, wait_for, EventLog, Proxy, TestEnv, TusServer,
    MIB,
};

/// The trickle: about 1 KiB/s from upqd to the server.
const TRICKLE: u64 = 1024;

fn is_stall(error: &JobError) -> bool {
    error.kind == "stalled"
}

#[test]
fn a_trickle_under_min_speed_is_a_stall_naming_the_floor() {
    let env = TestEnv::new("stall-trickle");
    let server = TusServer::start(&env);
    let proxy = Proxy::start(server.addr());
    env.write_config(&tus_config(
        &proxy.url("/files/"),
        "stall_timeout = \"2s\"\nmin_speed = \"64KiB\"\nrate_limit = \"16MiB\"",
        FAST_RETRY,
        "chunk_size = \"1MiB\"\nio_timeout = \"60s\"\nconnect_timeout = \"5s\"",
    ));
    let video = env.source("trickle.mp4", 32 * MIB);
    let _daemon = env.start_daemon();
    let events = EventLog::subscribe(&env);

    let id = env.add(&video, &["--to", "tus"]);
    wait_progress(&env, id, 2 * MIB, Duration::from_secs(60));
    let up_before = proxy.bytes_up();
    proxy.throttle_up(TRICKLE);
    let throttled_at = Instant::now();
    let throttled_at_utc = Utc::now();

    let error = events.wait_for_error(id, Duration::from_secs(30), "a stall", is_stall);
    let window = throttled_at.elapsed();
    eprintln!(
        "under a {TRICKLE} B/s trickle after {window:?}: {}",
        error.message
    );
    // The proxy really trickles: what passed since is in the order of a KiB per second
    // (plus what was already on its way when the throttle began).
    let passed = proxy.bytes_up() - up_before;
    assert!(
        passed <= 2 * MIB + TRICKLE * (window.as_secs() + 2),
        "{passed} bytes passed in {window:?} under a {TRICKLE} B/s throttle"
    );
    assert!(
        error.message.contains("min_speed")
            && error.message.contains("under the 64.0 KiB/s floor")
            && error.message.contains("over the last 2 s"),
        "a trickle under min_speed is reported as too slow, naming the floor: {error:?}\n{}",
        events.describe(id)
    );

    proxy.unthrottle();
    env.wait_published(id, 120);
    assert_stored_copy(&server.only_upload(), &video);
    let job = env.show(id);
    let history = describe_history(&job);
    assert_eq!(job.stalls, 0, "{history}");
    assert!(
        resume_offsets(&job)
            .iter()
            .any(|(at, offset)| *at >= throttled_at_utc && *offset > 0),
        "the upload resumed at the server's offset after the trickle:\n{history}"
    );
}

/// A slow link rather than a trickle: pieces still move within every `stall_timeout`, but the
/// average over the window stays under the floor.
#[test]
fn a_slow_link_under_min_speed_is_a_stall_naming_the_floor() {
    const SLOW: u64 = 128 * 1024;
    let env = TestEnv::new("stall-slow");
    let server = TusServer::start(&env);
    let proxy = Proxy::start(server.addr());
    // 64 KiB chunks move as 64 KiB pieces, several per window at 128 KiB/s; unthrottled,
    // they move several times faster than the floor.
    env.write_config(&tus_config(
        &proxy.url("/files/"),
        "stall_timeout = \"2s\"\nmin_speed = \"512KiB\"\nrate_limit = \"16MiB\"",
        FAST_RETRY,
        "chunk_size = \"64KiB\"\nio_timeout = \"60s\"\nconnect_timeout = \"5s\"",
    ));
    let video = env.source("slow.mp4", 24 * MIB);
    let _daemon = env.start_daemon();
    let events = EventLog::subscribe(&env);

    let id = env.add(&video, &["--to", "tus"]);
    wait_progress(&env, id, MIB, Duration::from_secs(60));
    proxy.throttle_up(SLOW);
    let throttled_at_utc = Utc::now();
    let sent_at_throttle = env.job(id).bytes_sent;

    let stall = wait_for(
        Duration::from_secs(30),
        "a stall under the throttle",
        || {
            events.transitions(id).into_iter().find(|t| {
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
        events.describe(id)
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
        events.describe(id)
    );

    proxy.unthrottle();
    env.wait_published(id, 120);
    assert_stored_copy(&server.only_upload(), &video);
    let job = env.show(id);
    let history = describe_history(&job);
    assert_eq!(job.stalls, 0, "{history}");
    assert!(
        resume_offsets(&job)
            .iter()
            .any(|(at, offset)| *at >= throttled_at_utc && *offset > 0),
        "the upload resumed at the server's offset:\n{history}"
    );
}
