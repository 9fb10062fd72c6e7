//! No session bus at all (and no `--no-dbus`), or a bus without a notification server: upqd
//! warns once and still detects, retries and recovers from a stall.

use std::time::{Duration, Instant};

use chrono::Utc;
use upq_tests::bus::PrivateBus;
use upq_tests::daemon::warn_lines;
use upq_tests::tus::{assert_stored_copy, wait_progress, FAST_RETRY};
use upq_tests::Daemon;
use upq_tests::{
    describe_history, resume_offsets, tus_config, wait_for, EventLog, JobState, Proxy, TestEnv,
    TusServer, MIB,
};

/// Writes a config for a tus server behind `proxy` with a 2 s stall timeout.
fn stall_config(env: &TestEnv, proxy: &Proxy) {
    env.write_config(&tus_config(
        &proxy.url("/files/"),
        "stall_timeout = \"2s\"\nrate_limit = \"16MiB\"",
        FAST_RETRY,
        "chunk_size = \"1MiB\"\nio_timeout = \"60s\"\nconnect_timeout = \"5s\"",
    ));
}

/// Uploads a file, hangs the server once it moves, checks the stall, then lets it recover.
fn stall_and_recover(env: &TestEnv, server: &TusServer, proxy: &Proxy, name: &str) {
    let video = env.source(name, 24 * MIB);
    let events = EventLog::subscribe(env);
    let id = env.add(&video, &["--to", "tus"]);
    wait_progress(env, id, 2 * MIB, Duration::from_secs(60));
    proxy.blackhole();
    let hung_at = Instant::now();
    let hung_at_utc = Utc::now();
    let error = events.wait_for_error(id, Duration::from_secs(30), "a stall", |e| {
        e.kind == "stalled"
    });
    assert!(
        hung_at.elapsed() < Duration::from_secs(10),
        "the stall took {:?} to be seen",
        hung_at.elapsed()
    );
    assert!(error.message.contains("no progress for 2 s"), "{error:?}");
    proxy.forward();
    env.wait_published(id, 120);
    assert_stored_copy(&server.only_upload(), &video);
    let job = env.show(id);
    assert!(
        resume_offsets(&job)
            .iter()
            .any(|(at, offset)| *at >= hung_at_utc && *offset > 0),
        "resumed after the stall:\n{}",
        describe_history(&job)
    );
    assert_eq!(job.state, JobState::Published);
}

#[test]
fn without_any_session_bus_upqd_warns_once_and_still_handles_stalls() {
    let env = TestEnv::new("notify-no-bus");
    let server = TusServer::start(&env);
    let proxy = Proxy::start(server.addr());
    stall_config(&env, &proxy);
    let upqd = Daemon::missing_bus(&env).start();

    stall_and_recover(&env, &server, &proxy, "no-bus.mp4");

    let warnings = upqd.warnings();
    assert_eq!(
        warnings.len(),
        1,
        "exactly one warning that D-Bus and notifications are off; the log:\n{}",
        upqd.log()
    );
    let warning = warnings[0].to_lowercase();
    assert!(
        warning.contains("d-bus") || warning.contains("notification"),
        "the warning says D-Bus or notifications are off: {}",
        warnings[0]
    );
}

#[test]
fn with_a_bus_but_no_notification_server_upqd_warns_once_and_still_handles_stalls() {
    let env = TestEnv::new("notify-no-server");
    let server = TusServer::start(&env);
    let proxy = Proxy::start(server.addr());
    stall_config(&env, &proxy);
    let bus = PrivateBus::start_for(&env);
    let upqd = Daemon::on_bus(&env, &bus).start();
    // The bus works: upqd's own service is on it.
    wait_for(
        Duration::from_secs(10),
        "upqd to serve dev.upq.upq1 on the bus",
        || {
            upqd.log()
                .contains("serving on the session bus")
                .then_some(())
        },
    );

    stall_and_recover(&env, &server, &proxy, "no-server.mp4");

    let log = upqd.log();
    let warnings = warn_lines(&log);
    assert_eq!(
        warnings.len(),
        1,
        "exactly one warning that no notification server answers; the log:\n{log}"
    );
    assert!(
        warnings[0].to_lowercase().contains("notification"),
        "the warning is about notifications: {}",
        warnings[0]
    );
}
