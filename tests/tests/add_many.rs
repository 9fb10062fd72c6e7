//! Many files in one `add`: `upqctl add FILE…`, `upqctl add -` (paths on stdin) and D-Bus
//! `AddMany`. Each file is queued or refused alone over the socket, in the order given; the
//! bus's AddMany stores all or none.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;
use upq_tests::bins;
use upq_tests::bus::{PrivateBus, MANAGER, MANAGER_PATH};
use upq_tests::{Daemon, OutputExt, TestEnv};

fn ids(stdout: &str) -> Vec<u64> {
    stdout
        .lines()
        .map(|line| {
            line.trim()
                .parse()
                .unwrap_or_else(|_| panic!("not an id: {line:?}"))
        })
        .collect()
}

fn listed_ids(env: &TestEnv) -> Vec<u64> {
    env.list(true).iter().map(|job| job.id).collect()
}

#[test]
fn several_files_are_queued_in_order_and_the_refused_are_named() {
    let env = TestEnv::new("add-many");
    env.write_local_config("", "1MiB");
    let _daemon = env.start_daemon();
    env.ctl(["pause", "--all"]).assert_ok("pause --all");
    let a = env.source("a.mp4", 4096);
    let b = env.source("b.mp4", 4096);
    let c = env.source("c.mp4", 4096);
    let missing = env.root().join("missing.mp4");
    let folder = env.root().to_str().unwrap().to_string();

    let out = env.ctl([
        "add",
        a.arg(),
        b.arg(),
        missing.to_str().unwrap(),
        &folder,
        c.arg(),
        "--title",
        "Same for all",
    ]);
    assert_eq!(out.code(), 1, "a refusal makes the exit code 1: {out:?}");
    let queued = ids(&out.stdout_text());
    assert_eq!(queued.len(), 3, "{out:?}");
    assert!(
        queued.windows(2).all(|w| w[0] < w[1]),
        "ids in the order given"
    );
    let stderr = out.stderr_text();
    assert!(stderr.contains("missing.mp4: no such file"), "{stderr}");
    assert!(stderr.contains("is a directory"), "{stderr}");
    assert_eq!(listed_ids(&env), queued);
    let files: Vec<String> = env.list(true).iter().map(|job| job.file.clone()).collect();
    assert_eq!(files, [a.arg(), b.arg(), c.arg()]);
    assert!(env
        .list(true)
        .iter()
        .all(|job| job.metadata.title.as_deref() == Some("Same for all")));

    // --json: one entry per file, in the order given.
    let out = env.ctl(["--json", "add", a.arg(), missing.to_str().unwrap()]);
    assert_eq!(out.code(), 1, "{out:?}");
    let json: Value = serde_json::from_str(&out.stdout_text()).expect("one JSON document");
    let items = json.as_array().unwrap_or_else(|| panic!("{json}"));
    assert_eq!(items.len(), 2, "{json}");
    assert_eq!(items[0]["file"], a.arg());
    assert!(items[0]["job"]["id"].as_u64().is_some(), "{json}");
    assert_eq!(items[1]["error"]["code"], "file", "{json}");
    assert!(items[1]["job"].is_null(), "{json}");
}

#[test]
fn a_dash_reads_the_paths_from_stdin() {
    let env = TestEnv::new("add-stdin");
    env.write_local_config("", "1MiB");
    let _daemon = env.start_daemon();
    env.ctl(["pause", "--all"]).assert_ok("pause --all");
    let videos: Vec<_> = (0..40)
        .map(|i| env.source(&format!("clip {i}.mp4"), 2048))
        .collect();
    let list: String = videos.iter().map(|v| format!("{}\n", v.arg())).collect();

    let mut cmd = Command::new(bins::upqctl());
    cmd.arg("--socket")
        .arg(env.socket_path())
        .args(["add", "-"]);
    env.apply_env(&mut cmd);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("upqctl runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(list.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    out.assert_ok("upqctl add -");
    let queued = ids(&out.stdout_text());
    assert_eq!(queued.len(), videos.len());
    assert_eq!(listed_ids(&env), queued);
    let files: Vec<String> = env.list(true).iter().map(|job| job.file.clone()).collect();
    let expected: Vec<&str> = videos.iter().map(|v| v.arg()).collect();
    assert_eq!(files, expected, "the order of stdin");
}

#[test]
fn add_many_on_the_bus_stores_all_or_none() {
    let env = TestEnv::new("add-many-bus");
    env.write_local_config("", "1MiB");
    let bus = PrivateBus::start(env.root());
    let _daemon = Daemon::on_bus(&env, &bus).start();
    env.ctl(["pause", "--all"]).assert_ok("pause --all");
    let a = env.source("a.mp4", 4096);
    let b = env.source("b.mp4", 4096);

    let data = bus.call(
        MANAGER_PATH,
        MANAGER,
        "AddMany",
        &["asa{sv}", "2", a.arg(), b.arg(), "1", "hold", "b", "true"],
    );
    let added: Vec<u64> = data[0]
        .as_array()
        .unwrap_or_else(|| panic!("AddMany answers at: {data}"))
        .iter()
        .map(Value::as_u64)
        .map(Option::unwrap)
        .collect();
    assert_eq!(added.len(), 2, "{data}");
    assert_eq!(listed_ids(&env), added);
    assert!(env.list(true).iter().all(|job| job.hold));

    // One file refused: nothing stored, and the error names it.
    let missing = env.root().join("gone.mp4");
    let refused = bus.try_call(
        MANAGER_PATH,
        MANAGER,
        "AddMany",
        &["asa{sv}", "2", a.arg(), missing.to_str().unwrap(), "0"],
    );
    assert_ne!(refused.code(), 0, "{refused:?}");
    assert!(refused.stderr_text().contains("gone.mp4"), "{refused:?}");
    assert_eq!(listed_ids(&env), added, "nothing more was stored");

    // upqctl over the bus queues several files too.
    env.set_var("DBUS_SESSION_BUS_ADDRESS", bus.address());
    let out = env.ctl(["--bus", "add", a.arg(), b.arg()]);
    out.assert_ok("upqctl --bus add a b");
    assert_eq!(ids(&out.stdout_text()).len(), 2);
    assert_eq!(listed_ids(&env).len(), 4);
}
