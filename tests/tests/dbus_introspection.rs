//! The committed introspection XML (`daemon/dbus/dev.upq.upq1.xml`) against the running
//! service: the same methods, signals and properties, with the same signatures.
//!
//! Compares normalized member sets (order, comments and annotations ignored); `busctl
//! introspect` shows the same members with their current values.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::time::Duration;

use upq_tests::bins::workspace_root;
use upq_tests::bus::{interface_members, job_path, PrivateBus, JOB, MANAGER, MANAGER_PATH, POST};
use upq_tests::Daemon;
use upq_tests::{wait_until, JobState, OutputExt, TestEnv, MIB};

fn committed() -> BTreeMap<String, BTreeSet<String>> {
    let path = workspace_root().join("daemon/dbus/dev.upq.upq1.xml");
    let xml = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    interface_members(&xml)
}

/// Panics with what is missing and what is extra unless the two sets are equal.
fn assert_same_members(interface: &str, expected: &BTreeSet<String>, live: &BTreeSet<String>) {
    let missing: Vec<&String> = expected.difference(live).collect();
    let extra: Vec<&String> = live.difference(expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{interface}: the running daemon differs from daemon/dbus/dev.upq.upq1.xml\n  \
         in the file only: {missing:#?}\n  in the daemon only: {extra:#?}"
    );
}

#[test]
fn the_committed_xml_matches_the_live_manager_and_job_objects() {
    let expected = committed();
    let names: Vec<&str> = expected.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [JOB, MANAGER, POST],
        "the committed XML declares the three upq interfaces"
    );
    for (interface, members) in &expected {
        assert!(
            members.len() >= 5,
            "{interface} was read with too few members: {members:?}"
        );
    }

    let env = TestEnv::new("dbus-introspect");
    env.write_local_config("", "1MiB");
    let bus = PrivateBus::start(env.root());
    let _daemon = Daemon::on_bus(&env, &bus).start();
    let video = env.source("introspected.mp4", MIB);
    let id = env.add(&video, &["--hold"]);
    wait_until(Duration::from_secs(30), "the job to be held", || {
        env.job(id).state == JobState::Held
    });

    let manager_xml = bus.introspect_xml(MANAGER_PATH);
    let manager = interface_members(&manager_xml);
    let live_manager = manager
        .get(MANAGER)
        .unwrap_or_else(|| panic!("{MANAGER_PATH} does not offer {MANAGER}:\n{manager_xml}"));
    assert_same_members(MANAGER, &expected[MANAGER], live_manager);
    assert!(
        manager.contains_key("org.freedesktop.DBus.ObjectManager"),
        "{MANAGER_PATH} offers an ObjectManager:\n{manager_xml}"
    );
    assert!(
        !manager.contains_key(JOB),
        "the manager object is no job:\n{manager_xml}"
    );

    let job_xml = bus.introspect_xml(&job_path(id));
    let job = interface_members(&job_xml);
    let live_job = job
        .get(JOB)
        .unwrap_or_else(|| panic!("{} does not offer {JOB}:\n{job_xml}", job_path(id)));
    assert_same_members(JOB, &expected[JOB], live_job);
    assert!(
        !job.contains_key(MANAGER),
        "a job object is no manager:\n{job_xml}"
    );
}

/// `busctl introspect` rows of one interface: member → (type, signature, value, flags).
fn busctl_rows(table: &str, interface: &str) -> BTreeMap<String, (String, String, String, String)> {
    let mut rows = BTreeMap::new();
    let mut inside = false;
    for line in table.lines().skip(1) {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        if tokens.len() < 5 {
            continue;
        }
        if tokens[1] == "interface" {
            inside = tokens[0] == interface;
            continue;
        }
        if inside {
            let name = tokens[0].trim_start_matches('.').to_string();
            let value = tokens[3..tokens.len() - 1].join(" ");
            let flags = tokens[tokens.len() - 1].to_string();
            rows.insert(
                name,
                (tokens[1].to_string(), tokens[2].to_string(), value, flags),
            );
        }
    }
    rows
}

#[test]
fn busctl_introspect_shows_members_and_current_values() {
    let env = TestEnv::new("dbus-busctl-introspect");
    env.write_local_config("", "1MiB");
    let bus = PrivateBus::start(env.root());
    let _daemon = Daemon::on_bus(&env, &bus).start();
    let video = env.source("shown.mp4", MIB);
    let id = env.add(&video, &["--hold", "--title", "Shown"]);
    wait_until(Duration::from_secs(30), "the job to be held", || {
        env.job(id).state == JobState::Held
    });

    let output = bus.busctl(["introspect", "dev.upq.upq1", &job_path(id)]);
    output.assert_ok("busctl introspect of a job");
    let table = output.stdout_text();
    let rows = busctl_rows(&table, JOB);
    let row = |name: &str| {
        rows.get(name)
            .cloned()
            .unwrap_or_else(|| panic!("busctl introspect has no .{name}:\n{table}"))
    };
    let state = row("State");
    assert_eq!(
        (state.0.as_str(), state.1.as_str(), state.2.as_str()),
        ("property", "s", "\"held\""),
        "{table}"
    );
    assert_eq!(row("Title").2, "\"Shown\"", "{table}");
    assert_eq!(row("BytesSent").2, video.size.to_string(), "{table}");
    assert_eq!(row("Publish").0, "method", "{table}");
    for (name, (kind, _, _, flags)) in &rows {
        if kind == "property" {
            assert_eq!(
                flags, "emits-change",
                "property {name} announces its changes:\n{table}"
            );
        }
    }

    let output = bus.busctl(["introspect", "dev.upq.upq1", MANAGER_PATH, MANAGER]);
    output.assert_ok("busctl introspect of the manager");
    let table = output.stdout_text();
    // Filtered to one interface, busctl prints the members without the interface row.
    let manager = busctl_rows(
        &format!("header\n{MANAGER} interface - - -\n{table}"),
        MANAGER,
    );
    let add = manager
        .get("Add")
        .unwrap_or_else(|| panic!("no .Add in:\n{table}"));
    assert_eq!(
        (add.0.as_str(), add.1.as_str(), add.2.as_str()),
        ("method", "sa{sv}", "t")
    );
    let progress = manager
        .get("Progress")
        .unwrap_or_else(|| panic!("no .Progress in:\n{table}"));
    assert_eq!(
        (progress.0.as_str(), progress.1.as_str()),
        ("signal", "ttt")
    );
}
