//! FIFOs, sockets and devices named to upqd by a raw client: every door refuses them at once
//! with `bad_request`, and none of them leaves a thread of the daemon waiting for good.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use upq_proto::JobState;
use upq_tests::bus::{assert_dbus_error, PrivateBus, BUS_NAME, MANAGER, MANAGER_PATH};
use upq_tests::wait::wait_for;
use upq_tests::Daemon;
use upq_tests::{Client, OutputExt, TestEnv};

/// How long a refusal may take, measured around one request.
const REFUSAL_LIMIT: Duration = Duration::from_millis(100);
/// Rounds of refused requests before a normal upload must still go through.
const ROUNDS: usize = 20;

fn mkfifo(path: &Path) {
    let c_path = CString::new(path.as_os_str().as_encoded_bytes()).expect("no NUL in path");
    // SAFETY: a valid NUL-terminated path; mkfifo has no other preconditions.
    let rc = unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) };
    assert_eq!(
        rc,
        0,
        "mkfifo {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// A FIFO, a listening Unix socket and a device; the listener must outlive the test's requests.
fn special_files(dir: &Path) -> (Vec<PathBuf>, UnixListener) {
    let fifo = dir.join("pipe.mp4");
    mkfifo(&fifo);
    let socket = dir.join("socket.mp4");
    let listener = UnixListener::bind(&socket).expect("bind a Unix socket");
    (vec![fifo, socket, PathBuf::from("/dev/zero")], listener)
}

/// Proves nobody holds the FIFO open for reading: a non-blocking open for writing then fails.
fn assert_no_reader(fifo: &Path) {
    let opened = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo);
    let error = opened.expect_err("no process may be reading the FIFO");
    assert_eq!(error.raw_os_error(), Some(libc::ENXIO), "{error}");
}

fn connect(env: &TestEnv) -> Client {
    let client = Client::connect(&env.socket_path()).expect("connect");
    // A hung request fails the test in seconds rather than hanging it.
    client
        .stream()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set a read timeout");
    client
}

fn assert_bad_request(response: &Value, path: &Path) {
    assert_eq!(response["error"]["code"], "bad_request", "{response}");
    let message = response["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&path.display().to_string()) && message.contains("not a regular file"),
        "the refusal names the file and says why: {response}"
    );
}

#[test]
fn special_files_are_refused_at_once_over_the_socket() {
    let env = TestEnv::with_socket_flag("special-socket");
    let _daemon = env.start_daemon();
    let (paths, _listener) = special_files(&env.root().join("videos"));
    let mut client = connect(&env);

    let mut slowest = Duration::ZERO;
    for _ in 0..ROUNDS {
        for path in &paths {
            let started = Instant::now();
            let response = client
                .request("add", Some(json!({"file": path})))
                .unwrap_or_else(|e| panic!("add {} got no answer: {e}", path.display()));
            let took = started.elapsed();
            assert_bad_request(&response, path);
            assert!(took < REFUSAL_LIMIT, "add {} took {took:?}", path.display());
            slowest = slowest.max(took);
        }
    }
    eprintln!(
        "{} refusals over the socket, slowest {slowest:?}",
        ROUNDS * paths.len()
    );
    assert_no_reader(&paths[0]);
    assert!(env.list(true).is_empty(), "nothing was queued");

    // The daemon's file work still runs: a real file is queued and uploaded.
    let video = env.source("after.mp4", 3 * 1024 * 1024);
    let id = env.add(&video, &[]);
    env.wait_published(id, 60);
}

/// Calls `Manager.Add(file, {})` on the bus and returns the D-Bus error name and the time taken.
async fn bus_add(connection: &zbus::Connection, file: &Path) -> (Option<String>, Duration) {
    let options: HashMap<String, zbus::Variant<'_>> = HashMap::new();
    let file = file.to_str().expect("UTF-8 path");
    let started = Instant::now();
    let reply = connection
        .call_method(
            Some(BUS_NAME),
            MANAGER_PATH,
            Some(MANAGER),
            "Add",
            &(file, options),
        )
        .await;
    let took = started.elapsed();
    let name = match reply {
        Ok(_) => None,
        Err(zbus::Error::MethodError(name, _, _)) => Some(name.to_string()),
        Err(other) => panic!("Add {file}: {other}"),
    };
    (name, took)
}

#[test]
fn special_files_are_refused_at_once_over_dbus() {
    let env = TestEnv::new("special-dbus");
    let bus = PrivateBus::start_for(&env);
    let _upqd = Daemon::on_bus(&env, &bus).start();
    let (paths, _listener) = special_files(&env.root().join("videos"));

    // The command-line clients see the named error.
    for path in &paths {
        let output = bus.gdbus_call(
            MANAGER_PATH,
            &format!("{MANAGER}.Add"),
            &[path.to_str().expect("UTF-8 path"), "@a{sv} {}"],
        );
        let stderr = assert_dbus_error(&output, "dev.upq.upq1.Error.BadRequest", "Add");
        assert!(stderr.contains("not a regular file"), "{stderr}");
    }

    // Timed from a client already on the bus, so only the daemon's answer is measured.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let slowest = runtime.block_on(async {
        let connection = zbus::connection::Builder::address(bus.address())
            .build()
            .await
            .expect("connect to the private bus");
        let mut slowest = Duration::ZERO;
        for _ in 0..ROUNDS {
            for path in &paths {
                let (name, took) =
                    tokio::time::timeout(Duration::from_secs(5), bus_add(&connection, path))
                        .await
                        .unwrap_or_else(|_| panic!("Add {} got no answer", path.display()));
                assert_eq!(
                    name.as_deref(),
                    Some("dev.upq.upq1.Error.BadRequest"),
                    "Add {}",
                    path.display()
                );
                assert!(took < REFUSAL_LIMIT, "Add {} took {took:?}", path.display());
                slowest = slowest.max(took);
            }
        }
        slowest
    });
    eprintln!(
        "{} refusals over D-Bus, slowest {slowest:?}",
        ROUNDS * paths.len()
    );
    assert_no_reader(&paths[0]);

    let video = env.source("after.mp4", 3 * 1024 * 1024);
    let id = env.add(&video, &[]);
    env.wait_published(id, 60);
}

#[test]
fn files_replaced_by_fifos_fail_jobs_and_refuse_retry_and_recover_without_hanging() {
    let env = TestEnv::with_socket_flag("special-swap");
    let _daemon = env.start_daemon();
    // Jobs added while the queue is paused stay queued, so the swap happens before any upload.
    env.ctl(["pause", "--all"]).assert_ok("upqctl pause --all");
    let video = env.source("swapped.mp4", 2 * 1024 * 1024);
    let id = env.add(&video, &[]);
    let path = PathBuf::from(video.arg());
    std::fs::remove_file(&path).expect("remove the queued file");
    mkfifo(&path);
    env.ctl(["resume", "--all"])
        .assert_ok("upqctl resume --all");

    let failed = wait_for(Duration::from_secs(30), "the job to fail", || {
        let job = env.show(id);
        (job.state == JobState::Failed).then_some(job)
    });
    let error = failed.last_error.expect("a failed job says why");
    assert!(
        error.message.contains("not a regular file"),
        "the error names the problem: {error:?}"
    );
    assert_no_reader(&path);

    // `retry` reopens the file: refused at once too.
    let mut client = connect(&env);
    let started = Instant::now();
    let response = client
        .request("retry", Some(json!({"ids": [id]})))
        .expect("retry gets an answer");
    let took = started.elapsed();
    let item = &response["result"]["data"][0];
    assert_eq!(item["error"]["code"], "bad_request", "{response}");
    assert!(took < REFUSAL_LIMIT, "retry took {took:?}");

    // `recover` reopens a draft's file: refused at once, and the draft is kept.
    env.ctl(["pause", "--all"]).assert_ok("upqctl pause --all");
    let draft = env.source("draft.mp4", 2 * 1024 * 1024);
    let draft_id = env.add(&draft, &[]);
    env.ctl(["cancel", &draft_id.to_string()])
        .assert_ok("upqctl cancel");
    wait_for(Duration::from_secs(30), "the job to become a draft", || {
        env.drafts()
            .iter()
            .any(|job| job.id == draft_id)
            .then_some(())
    });
    let draft_path = PathBuf::from(draft.arg());
    std::fs::remove_file(&draft_path).expect("remove the draft's file");
    mkfifo(&draft_path);
    let started = Instant::now();
    let response = client
        .request("recover", Some(json!({"ids": [draft_id]})))
        .expect("recover gets an answer");
    let took = started.elapsed();
    let item = &response["result"]["data"][0];
    assert_eq!(item["error"]["code"], "bad_request", "{response}");
    assert!(took < REFUSAL_LIMIT, "recover took {took:?}");
    assert!(
        env.drafts().iter().any(|job| job.id == draft_id),
        "the draft is kept"
    );
    assert_no_reader(&draft_path);
    env.ctl(["resume", "--all"])
        .assert_ok("upqctl resume --all");

    // The worker pool is free: another file goes through.
    let other = env.source("other.mp4", 2 * 1024 * 1024);
    let other_id = env.add(&other, &[]);
    env.wait_published(other_id, 60);
}
