//! D-Bus signals seen by a bus monitor during one rate-limited upload: `JobChanged` in order,
//! `Progress` at most four times a second, `PropertiesChanged` for the job's State.
//!
//! Each test runs its own `dbus-daemon`, `upqd` and `busctl monitor`.

use std::time::Duration;

use upq_tests::bus::{job_path, BusMessage, PrivateBus, MANAGER, MANAGER_PATH};
use upq_tests::Daemon;
use upq_tests::{TestEnv, MIB};

const PROPERTIES: &str = "org.freedesktop.DBus.Properties";
const OBJECT_MANAGER: &str = "org.freedesktop.DBus.ObjectManager";

/// The order states go through on the way to publication (a `dir` destination).
const FORWARD: [&str; 5] = [
    "queued",
    "uploading",
    "processing",
    "publishing",
    "published",
];

fn job_changes(messages: &[BusMessage], id: u64) -> Vec<(Duration, String)> {
    messages
        .iter()
        .filter(|m| m.is_signal(MANAGER, "JobChanged") && m.path() == MANAGER_PATH)
        .filter(|m| m.args()[0] == id)
        .map(|m| {
            let state = m.args()[1].as_str().expect("JobChanged carries a string");
            (m.at, state.to_string())
        })
        .collect()
}

/// `(seen at, sent, size)` of every Progress signal for job `id`.
fn progress(messages: &[BusMessage], id: u64) -> Vec<(Duration, u64, u64)> {
    messages
        .iter()
        .filter(|m| m.is_signal(MANAGER, "Progress") && m.path() == MANAGER_PATH)
        .filter(|m| m.args()[0] == id)
        .map(|m| {
            let number = |i: usize| {
                m.args()[i]
                    .as_u64()
                    .unwrap_or_else(|| panic!("Progress(t, t, t) expected, got {}", m.args()))
            };
            (m.at, number(1), number(2))
        })
        .collect()
}

/// The State values announced by PropertiesChanged on the job's object, in order.
fn state_properties(messages: &[BusMessage], id: u64) -> Vec<String> {
    let path = job_path(id);
    messages
        .iter()
        .filter(|m| m.is_signal(PROPERTIES, "PropertiesChanged") && m.path() == path)
        .filter(|m| m.args()[0] == "dev.upq.upq1.Job")
        .filter_map(|m| m.args()[1]["State"]["data"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn one_upload_signals_job_changed_progress_and_properties_changed() {
    let env = TestEnv::new("dbus-signals");
    let outbox = env.write_local_config("rate_limit = \"2MiB\"", "1MiB");
    let bus = PrivateBus::start(env.root());
    let _daemon = Daemon::on_bus(&env, &bus).start();
    let monitor = bus.monitor();
    let video = env.source("signals.mp4", 6 * MIB);

    let id = env.add(&video, &["--title", "Signals"]);
    monitor.wait_for(
        Duration::from_secs(60),
        "JobChanged(id, \"published\")",
        |m| m.is_signal(MANAGER, "JobChanged") && m.args()[0] == id && m.args()[1] == "published",
    );
    video.assert_same_content(&outbox.join(video.name()));
    let messages = monitor.messages();
    let describe = monitor.describe();

    // JobChanged: queued → uploading → ... → published, never backwards.
    let changes = job_changes(&messages, id);
    let states: Vec<&str> = changes.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(
        states.first(),
        Some(&"queued"),
        "JobChanged starts at queued: {states:?}\n{describe}"
    );
    assert_eq!(
        states.get(1),
        Some(&"uploading"),
        "then uploading: {states:?}"
    );
    assert_eq!(
        states.last(),
        Some(&"published"),
        "and ends published: {states:?}"
    );
    let ranks: Vec<usize> = states
        .iter()
        .map(|s| {
            FORWARD
                .iter()
                .position(|f| f == s)
                .unwrap_or_else(|| panic!("unexpected state {s} in {states:?}"))
        })
        .collect();
    assert!(
        ranks.windows(2).all(|w| w[0] < w[1]),
        "JobChanged goes forward one change at a time: {states:?}"
    );

    // PropertiesChanged follows the same states on the job object.
    let properties = state_properties(&messages, id);
    assert!(
        properties.iter().any(|s| s == "uploading")
            && properties.last().map(String::as_str) == Some("published"),
        "PropertiesChanged(State) on {}: {properties:?}\n{describe}",
        job_path(id)
    );
    eprintln!("JobChanged: {states:?}; PropertiesChanged(State): {properties:?}");
    let mut rest = states.iter();
    assert!(
        properties.iter().all(|p| rest.any(|s| s == p)),
        "PropertiesChanged(State) {properties:?} should follow JobChanged {states:?} in order"
    );

    // The object appeared through the ObjectManager.
    assert!(
        messages
            .iter()
            .any(|m| m.is_signal(OBJECT_MANAGER, "InterfacesAdded")
                && m.args()[0] == job_path(id).as_str()),
        "no InterfacesAdded for {}:\n{describe}",
        job_path(id)
    );

    // Progress: some, growing to the size, at most four a second.
    let ticks = progress(&messages, id);
    assert!(!ticks.is_empty(), "no Progress signals:\n{describe}");
    assert!(
        ticks.iter().all(|(_, _, size)| *size == video.size),
        "Progress carries the file size: {ticks:?}"
    );
    assert!(
        ticks.windows(2).all(|w| w[0].1 <= w[1].1),
        "Progress never goes back: {ticks:?}"
    );
    assert_eq!(
        ticks.last().map(|t| t.1),
        Some(video.size),
        "the last Progress is at 100%: {ticks:?}"
    );
    let span = ticks.last().unwrap().0 - ticks[0].0;
    let allowed = 4.0 * span.as_secs_f64() + 2.0;
    eprintln!(
        "{} Progress signals over {span:?} (at most {allowed:.1} allowed)",
        ticks.len()
    );
    assert!(
        span >= Duration::from_secs(1),
        "a 6 MiB upload at 2 MiB/s should take seconds; Progress spanned {span:?}"
    );
    assert!(
        ticks.len() as f64 <= allowed,
        "{} Progress signals in {span:?}: more than four a second (+ the first and the last)",
        ticks.len()
    );
}
