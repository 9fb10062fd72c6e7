//! `upload_hours` on the real daemon and the wall clock: outside them a job waits as
//! `queued` saying when they open; `add --now`, and `resume --now` over the socket and the
//! bus, let one job past them.

use chrono::{Local, Timelike};
use upq_tests::bus::PrivateBus;
use upq_tests::{describe_history, wait_for, Daemon, JobState, OutputExt, TestEnv, MIB};

/// A half-hour window twelve hours from now, so it is closed for the whole test; and how
/// `waiting` says when it opens.
fn closed_hours() -> (String, String) {
    let opens = (Local::now().hour() + 12) % 24;
    (
        format!("{opens:02}:00-{opens:02}:30"),
        format!("outside upload_hours (opens {opens:02}:00)"),
    )
}

#[test]
fn outside_the_upload_hours_jobs_wait_and_now_lets_one_go() {
    let env = TestEnv::new("policy-hours");
    let (hours, why) = closed_hours();
    let outbox = env.write_local_config(&format!("upload_hours = \"{hours}\""), "1MiB");
    let bus = PrivateBus::start(env.root());
    let _daemon = Daemon::on_bus(&env, &bus).start();
    env.set_var("DBUS_SESSION_BUS_ADDRESS", bus.address());

    let waits = env.source("evening.mp4", MIB);
    let over_bus = env.source("bus.mp4", MIB);
    let urgent = env.source("urgent.mp4", MIB);
    let waiting = env.add(&waits, &[]);
    let bus_job = env.add(&over_bus, &[]);
    let now_job = env.add(&urgent, &["--now"]);
    env.wait_published(now_job, 30);
    urgent.assert_same_content(&outbox.join(urgent.name()));
    assert!(env.show(now_job).ignore_policies);

    // The other two could have gone as the --now one did; they wait, saying why.
    for id in [waiting, bus_job] {
        let job = wait_for(
            std::time::Duration::from_secs(10),
            "the job to say why it waits",
            || {
                let job = env.show(id);
                job.waiting.is_some().then_some(job)
            },
        );
        assert_eq!(job.state, JobState::Queued, "{}", describe_history(&job));
        assert_eq!(job.waiting.as_deref(), Some(why.as_str()));
        assert_eq!(
            job.last_error.as_ref().map(|e| e.kind.as_str()),
            Some("policy")
        );
        assert_eq!(job.attempts, 0);
    }
    let listed = env.ctl(["list"]).stdout_text();
    assert!(listed.contains(&format!("waiting: {why}")), "{listed}");
    let status = env.ctl_json(["status"]);
    assert_eq!(
        status["policies"][0],
        format!("uploads wait: {why}"),
        "{status}"
    );

    env.ctl(["--bus", "resume", "--now", &bus_job.to_string()])
        .assert_ok("upqctl --bus resume --now");
    env.wait_published(bus_job, 30);
    over_bus.assert_same_content(&outbox.join(over_bus.name()));
    let refused = env.ctl(["--bus", "resume", "--all", "--now"]);
    assert!(!refused.status.success());
    assert!(
        refused
            .stderr_text()
            .contains("`resume --all --now` is not on the bus"),
        "{}",
        refused.stderr_text()
    );

    env.ctl(["resume", "--now", &waiting.to_string()])
        .assert_ok("upqctl resume --now");
    env.wait_published(waiting, 30);
    waits.assert_same_content(&outbox.join(waits.name()));
}
