//! The policies that follow the system, against python-dbusmock's NetworkManager and UPower
//! on a private system bus: `Metered`, `OnBattery` with the charge, and `Connectivity` flip
//! mid-upload, and each takes effect within a second both ways, losing nothing and counting
//! no attempt.

use std::time::Duration;

use chrono::{DateTime, Utc};
use upq_tests::bus::PrivateBus;
use upq_tests::system::{connectivity, metered, MockPortal, MockSystem, DEVICE, DISPLAY_DEVICE};
use upq_tests::tus::{tus_config, TusServer};
use upq_tests::{
    describe_history, holds_for, resume_offsets, wait_for, wait_until, Daemon, JobState, OutputExt,
    TestEnv, MIB,
};

/// How soon a flip must show in the job's history.
const WITHIN: Duration = Duration::from_secs(1);

/// Waits for job `id` to reach `state` after `flipped`, and checks the history entry that
/// says so came within a second of it.
fn changes_within_a_second(env: &TestEnv, id: u64, state: JobState, flipped: DateTime<Utc>) {
    let job = wait_for(
        Duration::from_secs(10),
        format!("job {id} to be {state}"),
        || {
            let job = env.show(id);
            (job.state == state).then_some(job)
        },
    );
    let history = job.history.as_ref().expect("show has the history");
    let entry = history
        .iter()
        .rev()
        .find(|entry| entry.to == state && entry.at >= flipped - chrono::Duration::milliseconds(5))
        .unwrap_or_else(|| {
            panic!(
                "no change to {state} after the flip:\n{}",
                describe_history(&job)
            )
        });
    let took = (entry.at - flipped).to_std().unwrap_or_default();
    assert!(
        took < WITHIN,
        "{state} came {took:?} after the flip:\n{}",
        describe_history(&job)
    );
}

/// A job held back shows why, as the kind `policy`, and no attempt counted.
fn assert_waiting(env: &TestEnv, id: u64, why: &str) {
    let job = env.show(id);
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(
        job.waiting.as_deref(),
        Some(why),
        "{}",
        describe_history(&job)
    );
    let error = job.last_error.as_ref().expect("a held-back job says why");
    assert_eq!(error.kind, "policy");
    assert_eq!(job.attempts, 0, "{}", describe_history(&job));
    let shown = env.ctl(["show", &id.to_string()]).stdout_text();
    assert!(shown.contains(&format!("waiting: {why}")), "{shown}");
    let listed = env.ctl(["list"]).stdout_text();
    assert!(listed.contains(&format!("waiting: {why}")), "{listed}");
}

/// What `status` says upq believes of the network, and who said it.
fn assert_network_belief(env: &TestEnv, metered: bool, source: &str, connectivity: &str) {
    let status = env.ctl_json(["status"]);
    let system = &status["system"];
    assert_eq!(system["metered"], metered, "{status}");
    assert_eq!(system["metered_source"], source, "{status}");
    assert_eq!(system["connectivity"], connectivity, "{status}");
}

/// Waits until job `id` has moved 2 MiB (sent, or in flight: a tus PATCH carries the
/// whole file and the server confirms it at the end).
fn under_way(env: &TestEnv, id: u64) {
    wait_until(Duration::from_secs(30), "the upload to get going", || {
        let job = env.job(id);
        let moved = job.bytes_sent + job.bytes_in_flight.unwrap_or(0);
        job.state == JobState::Uploading && moved >= 2 * MIB
    });
}

fn flip(change: impl FnOnce()) -> DateTime<Utc> {
    let at = Utc::now();
    change();
    at
}

#[test]
fn a_metered_connection_pauses_uploads_and_they_go_on_when_it_ends() {
    let env = TestEnv::new("policy-metered");
    let mut system = MockSystem::start(&env.root().join("system"));
    system.network_manager(metered::NO);
    system.use_in(&env);
    let session = PrivateBus::start(env.root());
    let outbox = env.write_local_config("rate_limit = \"2MiB\"\non_metered = \"pause\"", "1MiB");
    let _daemon = Daemon::on_bus(&env, &session).start();

    assert_network_belief(&env, false, "NetworkManager", "full");

    let video = env.source("commute.mp4", 24 * MIB);
    let id = env.add(&video, &[]);
    under_way(&env, id);

    // YES and GUESS_YES hold uploads back; NO and GUESS_NO let them go.
    let why = "metered connection (on_metered = pause)";
    for (pause, go) in [
        (metered::YES, metered::GUESS_NO),
        (metered::GUESS_YES, metered::NO),
    ] {
        let flipped = flip(|| system.set_metered(pause));
        changes_within_a_second(&env, id, JobState::Queued, flipped);
        assert_waiting(&env, id, why);
        let status = env.ctl_json(["status"]);
        assert_eq!(status["system"]["metered"], true, "{status}");
        assert_eq!(
            status["policies"][0],
            format!("uploads wait: {why}"),
            "{status}"
        );
        let held = env.job(id).bytes_sent;
        holds_for(
            Duration::from_millis(1500),
            "no byte to move while metered",
            || {
                let job = env.job(id);
                job.state == JobState::Queued && job.bytes_sent == held
            },
        );
        // It could have moved: the same job goes on within a second of the change back.
        let flipped = flip(|| system.set_metered(go));
        changes_within_a_second(&env, id, JobState::Uploading, flipped);
        wait_until(Duration::from_secs(10), "bytes to move again", || {
            env.job(id).bytes_sent > held
        });
    }

    env.wait_published(id, 60);
    video.assert_same_content(&outbox.join(video.name()));
    let job = env.show(id);
    assert_eq!(job.attempts, 0, "{}", describe_history(&job));
    assert!(
        resume_offsets(&job)
            .iter()
            .filter(|(_, offset)| *offset > 0)
            .count()
            >= 2,
        "each resumption went on from the confirmed bytes:\n{}",
        describe_history(&job)
    );
    let status = env.ctl_json(["status"]);
    assert_eq!(status["policies"], serde_json::json!([]), "{status}");
}

#[test]
fn a_low_battery_pauses_uploads_and_mains_power_lets_them_go() {
    let env = TestEnv::new("policy-battery");
    let mut system = MockSystem::start(&env.root().join("system"));
    system.upower(true, 80.0);
    system.use_in(&env);
    let session = PrivateBus::start(env.root());
    let outbox = env.write_local_config(
        "rate_limit = \"2MiB\"\non_battery = \"pause\"\non_battery_below = \"50%\"",
        "1MiB",
    );
    let _daemon = Daemon::on_bus(&env, &session).start();
    let status = env.ctl_json(["status"]);
    assert_eq!(status["system"]["on_battery"], true, "{status}");
    assert_eq!(status["system"]["battery_percent"], 80.0, "{status}");
    assert_eq!(status["system"]["battery_source"], "UPower", "{status}");

    // On battery above the charge given: uploads run.
    let video = env.source("hike.mp4", 20 * MIB);
    let id = env.add(&video, &[]);
    under_way(&env, id);

    let flipped = flip(|| system.update(DISPLAY_DEVICE, DEVICE, &[("Percentage", "d", "30")]));
    changes_within_a_second(&env, id, JobState::Queued, flipped);
    assert_waiting(&env, id, "on battery (30%) (on_battery = pause)");

    let flipped = flip(|| system.set_on_battery(false));
    changes_within_a_second(&env, id, JobState::Uploading, flipped);
    env.wait_published(id, 60);
    video.assert_same_content(&outbox.join(video.name()));
    assert_eq!(env.show(id).attempts, 0);
}

#[test]
fn a_battery_limit_slows_uploads_and_mains_power_lifts_it() {
    let env = TestEnv::new("policy-battery-limit");
    let mut system = MockSystem::start(&env.root().join("system"));
    system.upower(false, 90.0);
    system.use_in(&env);
    let session = PrivateBus::start(env.root());
    env.write_local_config(
        "rate_limit = \"4MiB\"\non_battery = \"limit:512KiB\"",
        "1MiB",
    );
    let _daemon = Daemon::on_bus(&env, &session).start();
    let rate = || env.ctl_json(["status"])["rate_limit"].as_u64();
    assert_eq!(rate(), Some(4 * MIB));

    let flipped = flip(|| system.set_on_battery(true));
    wait_until(Duration::from_secs(5), "the battery's limit", || {
        rate() == Some(512 * 1024)
    });
    let took = (Utc::now() - flipped).to_std().unwrap_or_default();
    assert!(took < WITHIN, "the limit came {took:?} after the flip");
    let status = env.ctl_json(["status"]);
    assert_eq!(
        status["policies"][0],
        "uploads at most 512 KiB/s: on battery (90%) (on_battery = limit:512KiB)",
        "{status}"
    );

    let flipped = flip(|| system.set_on_battery(false));
    wait_until(Duration::from_secs(5), "the limit lifted", || {
        rate() == Some(4 * MIB)
    });
    let took = (Utc::now() - flipped).to_std().unwrap_or_default();
    assert!(took < WITHIN, "the limit went {took:?} after the flip");
}

/// Without any policy configured, no connectivity holds network uploads back instead of
/// spending their attempts, and its return lets them go at once.
#[test]
fn without_connectivity_network_uploads_wait_without_spending_attempts() {
    let env = TestEnv::new("policy-offline");
    let mut system = MockSystem::start(&env.root().join("system"));
    system.network_manager(metered::NO);
    system.use_in(&env);
    let session = PrivateBus::start(env.root());
    let server = TusServer::start(&env);
    env.write_config(&tus_config(
        &server.endpoint,
        "rate_limit = \"2MiB\"",
        "",
        "",
    ));
    let _daemon = Daemon::on_bus(&env, &session).start();

    let video = env.source("ferry.mp4", 16 * MIB);
    let id = env.add(&video, &["--to", "tus"]);
    under_way(&env, id);
    for lost in [connectivity::NONE, connectivity::LIMITED] {
        let flipped = flip(|| system.set_connectivity(lost));
        changes_within_a_second(&env, id, JobState::Queued, flipped);
        let why = match lost {
            connectivity::NONE => "no connectivity (NetworkManager)",
            _ => "limited connectivity (NetworkManager)",
        };
        assert_waiting(&env, id, why);
        let flipped = flip(|| system.set_connectivity(connectivity::FULL));
        changes_within_a_second(&env, id, JobState::Uploading, flipped);
    }
    env.wait_published(id, 60);
    let done = env.show(id);
    assert_eq!(done.attempts, 0, "{}", describe_history(&done));
    let uploads = server.uploads();
    assert_eq!(uploads.len(), 1, "one upload, resumed, not started again");
    video.assert_same_content(&uploads[0].data_path);
}

/// Without NetworkManager, the desktop portal says whether the connection is metered, and
/// its `changed` signal is followed; without either, upq says what it assumes.
#[test]
fn the_desktop_portal_answers_where_network_manager_is_absent() {
    let env = TestEnv::new("policy-portal");
    let system = MockSystem::start(&env.root().join("system"));
    system.use_in(&env);
    let session = PrivateBus::start(env.root());
    let portal = MockPortal::start(&session, true);
    let outbox = env.write_local_config("on_metered = \"pause\"", "1MiB");
    let mut daemon = Daemon::on_bus(&env, &session).start();
    assert_network_belief(&env, true, "desktop portal", "unknown");

    let video = env.source("train.mp4", 2 * MIB);
    let id = env.add(&video, &[]);
    wait_until(
        Duration::from_secs(10),
        "the job to say what it waits for",
        || env.job(id).waiting.is_some(),
    );
    assert_waiting(&env, id, "metered connection (on_metered = pause)");
    portal.set_metered(false);
    env.wait_published(id, 30);
    video.assert_same_content(&outbox.join(video.name()));

    // Nobody to ask: not metered, and status says it is an assumption.
    drop(portal);
    daemon.stop();
    let _daemon = Daemon::on_bus(&env, &session).start();
    let status = env.ctl_json(["status"]);
    assert_eq!(status["system"]["metered"], false, "{status}");
    assert_eq!(
        status["system"]["metered_source"],
        "assumed: neither NetworkManager nor the desktop portal answers",
        "{status}"
    );
    let shown = env.ctl(["status"]).stdout_text();
    assert!(
        shown.contains(
            "metered       no (assumed: neither NetworkManager nor the desktop portal answers)"
        ),
        "{shown}"
    );
}
