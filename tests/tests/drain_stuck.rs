//! The shutdown drain: a worker stuck past it (waiting on a notification server that never
//! answers) is aborted and named in the log, and `upqd` still exits 0 within 5 s of SIGTERM.
//!
//! Real upqd, @tus/server behind a throttling proxy, a private bus with a wedged server.

use std::time::{Duration, Instant};

use upq_tests::bus::PrivateBus;
use upq_tests::fixture::STALL_LINK;
use upq_tests::notifications::{NotificationServer, WITH_ACTIONS};
use upq_tests::tus::{wait_state, FAST_RETRY};
use upq_tests::{JobState, TestEnv, TusKeys, TusRig, MIB};

#[test]
fn a_worker_stuck_past_the_drain_is_aborted_named_and_upqd_exits_in_time() {
    let env = TestEnv::new("drain-stuck");
    let bus = PrivateBus::start_for(&env);
    let notifications = NotificationServer::start(&bus, WITH_ACTIONS);
    let keys = TusKeys {
        daemon: "stall_timeout = \"1s\"\nrate_limit = \"16MiB\"",
        retry: FAST_RETRY,
        tus: STALL_LINK,
    };
    let rig = TusRig::proxied(&env, keys).on_bus(&bus);
    let (run, mut daemon) = rig.start("stuck.mp4", 16 * MIB);
    let proxy = run.proxy();
    let (id, _) = run.add_until(2 * MIB);
    // The stall's notification is what the worker will wait on, for ever.
    notifications.stop_answering_notify();
    proxy.throttle_up(1024);
    notifications.wait_for_notify(Duration::from_secs(30), "a stall notification", |n| {
        n.summary.starts_with("Upload stalled")
    });
    wait_state(&env, id, JobState::Retrying, Duration::from_secs(10));
    let worker = format!("job {id}: upload worker");
    assert!(
        !daemon.log().contains(&worker),
        "nothing named the worker before the drain"
    );

    let started = Instant::now();
    daemon.signal(libc::SIGTERM);
    let status = daemon
        .wait_exit(Duration::from_secs(10))
        .expect("upqd exits after SIGTERM");
    let took = started.elapsed();
    eprintln!("upqd exited {took:?} after SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(5), "exit took {took:?}");

    let log = daemon.log();
    let aborted = log
        .lines()
        .find(|line| line.contains("did not stop within the drain"))
        .unwrap_or_else(|| panic!("no task was reported aborted:\n{log}"));
    assert!(
        aborted.contains(&worker),
        "the aborted task is named: {aborted}"
    );
    assert!(aborted.contains("WARN"), "logged as a warning: {aborted}");

    // Nothing was lost: the job resumes after a restart once the link is back.
    proxy.unthrottle();
    daemon.restart();
    env.wait_published(id, 60);
}

#[test]
fn a_wedged_notification_server_does_not_hold_an_upload() {
    let env = TestEnv::new("notify-wedged");
    let bus = PrivateBus::start_for(&env);
    let notifications = NotificationServer::start(&bus, WITH_ACTIONS);
    let keys = TusKeys {
        daemon: "stall_timeout = \"1s\"\nrate_limit = \"16MiB\"",
        retry: FAST_RETRY,
        tus: STALL_LINK,
    };
    let rig = TusRig::proxied(&env, keys).on_bus(&bus);
    let (run, daemon) = rig.start("wedged.mp4", 8 * MIB);
    let proxy = run.proxy();
    let (id, _) = run.add_until(2 * MIB);
    notifications.stop_answering_notify();
    proxy.throttle_up(1024);
    notifications.wait_for_notify(Duration::from_secs(30), "a stall notification", |n| {
        n.summary.starts_with("Upload stalled")
    });
    // The link is fine again; only the notification server is wedged.
    proxy.unthrottle();
    env.wait_published(id, 60);
    let log = daemon.wait_log(Duration::from_secs(5), "did not answer within 10 s");
    assert!(
        log.contains("showing a desktop notification failed"),
        "the wedged server is logged"
    );
}
