//! `upqctl --bus` against the real `upqd` on a private session bus, compared with the socket:
//! the same stdout, stderr and exit code for every command, except values that change with time.

mod support;

use std::process::Output;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{digits_masked, next_line, run, without_volatile, Running, Via, World, DEADLINE};

/// Fields that change with time even when nothing happens to a job.
const VOLATILE: &[&str] = &["updated_at", "speed", "uptime_secs"];
/// Fields in which twin jobs (one per door) differ.
const TWIN: &[&str] = &[
    "id",
    "file",
    "created_at",
    "updated_at",
    "publish_at",
    "speed",
];

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("upqctl exited by itself")
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", stdout(output)))
}

/// The status text without its uptime, which moves on between the two runs.
fn without_uptime(text: &str) -> String {
    text.lines()
        .map(|line| match line.split_once(", up ") {
            Some((before, _)) if line.starts_with("upqd ") => before.to_owned(),
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `args` over both doors; asserts the same exit code, stdout and stderr; returns the code.
fn same(world: &World, args: &[&str]) -> i32 {
    let socket = world.ctl(Via::Socket, args);
    let bus = world.ctl(Via::Bus, args);
    let what = format!("upqctl {}", args.join(" "));
    assert_eq!(code(&socket), code(&bus), "{what}: {socket:?} / {bus:?}");
    if args.contains(&"--json") && !socket.stdout.is_empty() {
        assert_eq!(
            without_volatile(&json(&socket), VOLATILE),
            without_volatile(&json(&bus), VOLATILE),
            "{what}"
        );
    } else {
        assert_eq!(
            without_uptime(&stdout(&socket)),
            without_uptime(&stdout(&bus)),
            "{what}"
        );
    }
    assert_eq!(stderr(&socket), stderr(&bus), "{what}");
    code(&socket)
}

/// Runs `args` on twin jobs, `{}` standing for the job's id: the socket's job over the socket
/// and the bus's job over the bus; the outputs must match up to ids, names and times.
fn twins(world: &World, (socket_job, bus_job): (u64, u64), args: &[&str]) -> i32 {
    let with = |id: u64| -> Vec<String> {
        args.iter()
            .map(|arg| arg.replace("{}", &id.to_string()))
            .collect()
    };
    let socket_args = with(socket_job);
    let bus_args = with(bus_job);
    let socket = world.ctl(
        Via::Socket,
        &socket_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let bus = world.ctl(
        Via::Bus,
        &bus_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let what = format!("upqctl {}", args.join(" "));
    assert_eq!(code(&socket), code(&bus), "{what}: {socket:?} / {bus:?}");
    let named = |text: String| digits_masked(&text.replace("twin-bus", "twin-socket"));
    if args.contains(&"--json") {
        assert_eq!(
            without_volatile(&json(&socket), TWIN),
            without_volatile(&json(&bus), TWIN),
            "{what}"
        );
    } else {
        assert_eq!(named(stdout(&socket)), named(stdout(&bus)), "{what}");
    }
    assert_eq!(named(stderr(&socket)), named(stderr(&bus)), "{what}");
    code(&socket)
}

#[test]
fn reads_errors_and_waits_match_over_both_doors() {
    let world = World::start();
    let held = world.add(
        &world.file("held.mp4", 3000),
        &[
            "--hold",
            "--title",
            "Trip",
            "--caption",
            "line one\nline two",
            "--privacy",
            "private",
            "--meta",
            "tag=sea",
            "--priority",
            "3",
        ],
    );
    let published = world.add(&world.file("published.mp4", 2000), &[]);
    let canceled = world.add(&world.file("canceled.mp4", 1000), &["--hold"]);
    let (held, published, canceled) = (
        held.to_string(),
        published.to_string(),
        canceled.to_string(),
    );
    let waited = world.ctl(Via::Socket, &["wait", &published]);
    assert_eq!(code(&waited), 0, "{waited:?}");
    world.wait_for_state(held.parse().expect("id"), "held");
    world.wait_for_state(canceled.parse().expect("id"), "held");
    assert_eq!(code(&world.ctl(Via::Socket, &["cancel", &canceled])), 0);

    for args in [
        vec!["list"],
        vec!["list", "--all"],
        vec!["drafts"],
        vec!["status"],
        vec!["show", held.as_str()],
        vec!["show", published.as_str()],
        vec!["show", canceled.as_str()],
    ] {
        assert_eq!(same(&world, &args), 0, "{args:?}");
        let with_json = [args.as_slice(), &["--json"]].concat();
        assert_eq!(same(&world, &with_json), 0, "{with_json:?}");
    }
    let listed = world.json(&["list", "--all"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(3), "{listed}");

    // Refusals: the same message and exit code over both doors.
    assert_eq!(same(&world, &["show", "999"]), 4);
    assert_eq!(same(&world, &["show", "999", "--json"]), 4);
    assert_eq!(same(&world, &["publish", &published]), 1);
    assert_eq!(same(&world, &["publish", &published, "--json"]), 1);
    assert_eq!(same(&world, &["cancel", &published]), 1);
    assert_eq!(same(&world, &["discard", &held]), 1);
    assert_eq!(same(&world, &["recover", &held]), 1);
    assert_eq!(same(&world, &["retry", &held]), 1);
    assert_eq!(same(&world, &["pause", "999", &held, "--json"]), 4);
    assert_eq!(same(&world, &["resume", &published, "999"]), 4);

    // Waiting: published 0, canceled 1, still held 124, unknown 4.
    let over_bus = world.ctl(Via::Bus, &["wait", &published]);
    assert_eq!(code(&over_bus), 0, "{over_bus:?}");
    assert_eq!(same(&world, &["wait", &published]), 0);
    assert_eq!(same(&world, &["wait", &published, "--json"]), 0);
    assert_eq!(same(&world, &["wait", &canceled]), 1);
    assert_eq!(same(&world, &["wait", &held, "--timeout", "1s"]), 124);
    assert_eq!(same(&world, &["wait", "999", "--timeout", "5s"]), 4);

    // The daemon itself.
    assert_eq!(same(&world, &["limit", "4MiB"]), 0);
    assert_eq!(same(&world, &["limit", "none", "--json"]), 0);
    // Only held and finished jobs: --all touches no job, only the queue.
    assert_eq!(same(&world, &["pause", "--all"]), 0);
    assert_eq!(world.json(&["status"])["queue_paused"], true);
    assert_eq!(same(&world, &["status", "--json"]), 0);
    assert_eq!(same(&world, &["resume", "--all", "--json"]), 0);
    assert_eq!(world.json(&["status"])["queue_paused"], false);
}

#[test]
fn batch_commands_match_on_twin_jobs() {
    let world = World::start();
    // A paused queue keeps new jobs queued, so both twins stay in step.
    assert_eq!(code(&world.ctl(Via::Socket, &["pause", "--all"])), 0);
    let flags = [
        "--hold",
        "--title",
        "Trip",
        "--delay",
        "90s",
        "--meta",
        "k=v",
        "--priority",
        "2",
    ];
    let add = |via: Via, name: &str| -> Value {
        let file = world.file(name, 4000);
        let path = file.to_str().expect("UTF-8 temp path");
        let output = world.ctl(via, &[&["add", path, "--json"][..], &flags].concat());
        assert_eq!(code(&output), 0, "{output:?}");
        json(&output)
    };
    let socket_job = add(Via::Socket, "twin-socket.mp4");
    let bus_job = add(Via::Bus, "twin-bus.mp4");
    assert_eq!(
        without_volatile(&socket_job, TWIN),
        without_volatile(&bus_job, TWIN)
    );
    assert_eq!(bus_job["state"], "queued");
    assert!(bus_job["publish_at"].is_string(), "{bus_job}");
    let pair = (
        socket_job["id"].as_u64().expect("id"),
        bus_job["id"].as_u64().expect("id"),
    );

    assert_eq!(twins(&world, pair, &["show", "{}"]), 0);
    assert_eq!(twins(&world, pair, &["pause", "{}"]), 0);
    assert_eq!(twins(&world, pair, &["pause", "{}"]), 1);
    assert_eq!(twins(&world, pair, &["resume", "{}", "--json"]), 0);
    assert_eq!(twins(&world, pair, &["pause", "{}", "--json"]), 0);
    assert_eq!(twins(&world, pair, &["resume", "{}"]), 0);
    assert_eq!(twins(&world, pair, &["retry", "{}"]), 1);
    assert_eq!(twins(&world, pair, &["publish", "{}"]), 0);
    assert_eq!(twins(&world, pair, &["cancel", "{}"]), 0);
    assert_eq!(twins(&world, pair, &["recover", "{}", "--json"]), 0);
    assert_eq!(twins(&world, pair, &["cancel", "{}", "--json"]), 0);
    assert_eq!(twins(&world, pair, &["recover", "{}"]), 0);
    assert_eq!(twins(&world, pair, &["cancel", "{}"]), 0);
    assert_eq!(twins(&world, pair, &["discard", "{}", "--json"]), 0);
    assert_eq!(twins(&world, pair, &["discard", "{}"]), 4);
    assert_eq!(same(&world, &["drafts"]), 0);

    // pause --all: the same jobs reported, paused, over either door.
    let queued = world.add(&world.file("queued.mp4", 500), &[]);
    let socket_all = world.ctl(Via::Socket, &["pause", "--all", "--json"]);
    assert_eq!(
        code(&world.ctl(Via::Socket, &["resume", &queued.to_string()])),
        0
    );
    let bus_all = world.ctl(Via::Bus, &["pause", "--all", "--json"]);
    assert_eq!(
        without_volatile(&json(&socket_all), VOLATILE),
        without_volatile(&json(&bus_all), VOLATILE)
    );
    assert_eq!(json(&bus_all)[0]["job"]["state"], "paused");
    // resume --all starts the paused job, so it is run once, over the bus.
    let resumed = world.ctl(Via::Bus, &["resume", "--all"]);
    assert_eq!(code(&resumed), 0, "{resumed:?}");
    let text = stdout(&resumed);
    assert!(text.starts_with(&format!("{queued} resumed")), "{text}");
    assert!(text.ends_with("queue resumed\n"), "{text}");
    assert_eq!(world.json(&["status"])["queue_paused"], false);
}

/// Makes sure a `watch --json` has subscribed: pause and resume its job until an event shows.
fn until_watching(world: &World, id: u64, lines: &Receiver<String>) {
    let id = id.to_string();
    let deadline = Instant::now() + DEADLINE;
    loop {
        assert!(
            Instant::now() < deadline,
            "watch --json never reported job {id}"
        );
        assert_eq!(code(&world.ctl(Via::Socket, &["pause", &id])), 0);
        let seen = lines.recv_timeout(Duration::from_secs(1)).is_ok();
        assert_eq!(code(&world.ctl(Via::Socket, &["resume", &id])), 0);
        if seen || lines.recv_timeout(Duration::from_secs(1)).is_ok() {
            return;
        }
    }
}

#[test]
fn wait_and_watch_follow_jobs_over_both_doors() {
    let mut world = World::start();
    let socket_job = world.add(&world.file("twin-socket.mp4", 2500), &["--hold"]);
    let bus_job = world.add(&world.file("twin-bus.mp4", 2500), &["--hold"]);
    world.wait_for_state(socket_job, "held");
    world.wait_for_state(bus_job, "held");

    // `watch ID` prints its snapshot once subscribed; publishing then ends it.
    let spawn = |via: Via, args: &[&str]| Running::spawn(world.command(via, args));
    let socket_watch = spawn(Via::Socket, &["watch", &socket_job.to_string()]);
    let bus_watch = spawn(Via::Bus, &["watch", &bus_job.to_string()]);
    let socket_first = next_line(&socket_watch.stdout, "watch over the socket");
    let bus_first = next_line(&bus_watch.stdout, "watch over the bus");
    let named = |text: &str| digits_masked(&text.replace("twin-bus", "twin-socket"));
    assert_eq!(named(&socket_first), named(&bus_first));
    for id in [socket_job, bus_job] {
        assert_eq!(
            code(&world.ctl(Via::Socket, &["publish", &id.to_string()])),
            0
        );
    }
    let socket_end = socket_watch.finish();
    let bus_end = bus_watch.finish();
    assert_eq!(socket_end.0, 0, "{socket_end:?}");
    assert_eq!(bus_end.0, 0, "{bus_end:?}");
    assert_eq!(
        named(&socket_end.1.join("\n")),
        named(&bus_end.1.join("\n")),
        "watch lines"
    );
    let over_bus = world.ctl(Via::Bus, &["wait", &bus_job.to_string()]);
    assert_eq!(code(&over_bus), 0, "{over_bus:?}");

    // `watch ID --json`: events shaped as on the socket, down to the last one.
    assert_eq!(code(&world.ctl(Via::Socket, &["pause", "--all"])), 0);
    let socket_job = world.add(&world.file("json-socket.mp4", 700), &[]);
    let bus_job = world.add(&world.file("json-bus.mp4", 700), &[]);
    let watch_json = |via: Via, id: u64| spawn(via, &["watch", &id.to_string(), "--json"]);
    let socket_watch = watch_json(Via::Socket, socket_job);
    let bus_watch = watch_json(Via::Bus, bus_job);
    until_watching(&world, socket_job, &socket_watch.stdout);
    until_watching(&world, bus_job, &bus_watch.stdout);
    for id in [socket_job, bus_job] {
        assert_eq!(
            code(&world.ctl(Via::Socket, &["cancel", &id.to_string()])),
            0
        );
    }
    let socket_end = socket_watch.finish();
    let bus_end = bus_watch.finish();
    assert_eq!(
        (socket_end.0, bus_end.0),
        (1, 1),
        "{socket_end:?} {bus_end:?}"
    );
    let last = |lines: &[String]| -> Value {
        let line = lines.last().expect("the cancel event");
        serde_json::from_str(line).expect("one JSON event a line")
    };
    let (socket_event, bus_event) = (last(&socket_end.1), last(&bus_end.1));
    assert_eq!(bus_event["kind"], "state");
    assert_eq!(bus_event["to"], "canceled");
    assert_eq!(bus_event["id"], bus_job);
    assert_eq!(
        without_volatile(&socket_event, TWIN),
        without_volatile(&bus_event, TWIN)
    );
    for line in &bus_end.1 {
        let event: Value = serde_json::from_str(line).expect("one JSON event a line");
        assert!(
            ["state", "progress", "removed"].contains(&event["kind"].as_str().unwrap_or("")),
            "{line}"
        );
    }

    // A watch ends with exit 1 when the daemon goes away, over either door.
    let socket_watch = spawn(Via::Socket, &["watch"]);
    let bus_watch = spawn(Via::Bus, &["watch"]);
    // A new job shows in both watches (in their snapshot or as events): both are listening.
    world.add(&world.file("kept.mp4", 300), &["--hold"]);
    next_line(&socket_watch.stdout, "watch over the socket");
    next_line(&bus_watch.stdout, "watch over the bus");
    world.stop_upqd();
    let socket_end = socket_watch.finish();
    let bus_end = bus_watch.finish();
    assert_eq!(socket_end.0, 1, "{socket_end:?}");
    assert_eq!(bus_end.0, 1, "{bus_end:?}");
    assert_eq!(
        bus_end.2.last().map(String::as_str),
        Some("upqctl: upqd left the session bus"),
        "{bus_end:?}"
    );
}

#[test]
fn without_upqd_both_doors_exit_3_and_say_how_to_start_it() {
    let world = World::bus_only();
    for args in [
        vec!["list"],
        vec!["show", "1", "--json"],
        vec!["wait", "1"],
        vec!["watch"],
    ] {
        for via in [Via::Socket, Via::Bus] {
            let output = world.ctl(via, &args);
            assert_eq!(code(&output), 3, "{via:?} {args:?}: {output:?}");
            assert!(stderr(&output).contains("upqd &"), "{output:?}");
            assert!(output.stdout.is_empty(), "{output:?}");
        }
    }
    let mut no_bus = world.command(Via::Bus, &["status"]);
    no_bus.env(
        "DBUS_SESSION_BUS_ADDRESS",
        format!("unix:path={}", world.dir.path().join("no-bus").display()),
    );
    let output = run(no_bus);
    assert_eq!(code(&output), 3, "{output:?}");
    assert!(stderr(&output).contains("session bus"), "{output:?}");
    assert!(stderr(&output).contains("upqd &"), "{output:?}");
}

#[test]
fn a_held_job_hint_and_outcome_match_for_wait() {
    let world = World::start();
    let socket_job = world.add(&world.file("twin-socket.mp4", 1200), &["--hold"]);
    let bus_job = world.add(&world.file("twin-bus.mp4", 1200), &["--hold"]);
    world.wait_for_state(socket_job, "held");
    world.wait_for_state(bus_job, "held");
    let start = |via: Via, id: u64| Running::spawn(world.command(via, &["wait", &id.to_string()]));
    let socket_wait = start(Via::Socket, socket_job);
    let bus_wait = start(Via::Bus, bus_job);
    // Each prints the held hint once it has read the job, which is after subscribing.
    let socket_hint = next_line(&socket_wait.stderr, "wait over the socket");
    let bus_hint = next_line(&bus_wait.stderr, "wait over the bus");
    assert!(bus_hint.contains("upqctl publish"), "{bus_hint:?}");
    assert_eq!(digits_masked(&socket_hint), digits_masked(&bus_hint));
    for id in [socket_job, bus_job] {
        assert_eq!(
            code(&world.ctl(Via::Socket, &["publish", &id.to_string()])),
            0
        );
    }
    let socket_end = socket_wait.finish();
    let bus_end = bus_wait.finish();
    assert_eq!(socket_end.0, 0, "{socket_end:?}");
    assert_eq!(bus_end.0, 0, "{bus_end:?}");
    let named =
        |lines: &[String]| digits_masked(&lines.join("\n").replace("twin-bus", "twin-socket"));
    assert_eq!(named(&socket_end.1), named(&bus_end.1));
    assert_eq!(socket_end.2, bus_end.2);
}
