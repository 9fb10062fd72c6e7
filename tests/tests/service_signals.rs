//! Signals and the service manager: SIGTERM drains and exits 0 within 5 s, a second signal
//! exits at once, SIGHUP reloads the config, sd_notify sends READY/STATUS/WATCHDOG/STOPPING.
//!
//! Each test runs its own `upqd` (signalled by its PID) in its own temporary environment;
//! a config broken on reload is logged and kept out.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::Utc;
use upq_tests::env::toml_string;
use upq_tests::wait::POLL_INTERVAL;
use upq_tests::Daemon;
use upq_tests::{
    describe_history, history_to, resume_offsets, wait_for, wait_until, JobState, OutputExt,
    TestEnv, MIB,
};

const WAIT: Duration = Duration::from_secs(30);

/// Waits until job `id` is uploading with at least `bytes` acknowledged; returns them.
fn wait_uploading(env: &TestEnv, id: u64, bytes: u64) -> u64 {
    wait_for(WAIT, format!("job {id} to upload {bytes} bytes"), || {
        let job = env.job(id);
        assert!(
            matches!(job.state, JobState::Queued | JobState::Uploading),
            "job {id} left the upload early: {job:?}"
        );
        (job.state == JobState::Uploading && job.bytes_sent >= bytes).then_some(job.bytes_sent)
    })
}

#[test]
fn sigterm_mid_upload_exits_0_within_5_s_and_the_job_resumes() {
    let env = TestEnv::new("sig-term");
    let outbox = env.write_local_config("rate_limit = \"4MiB\"", "1MiB");
    let video = env.source("take.mp4", 16 * MIB);
    let mut daemon = Daemon::without_bus(&env).start();

    let id = env.add(&video, &[]);
    let seen = wait_uploading(&env, id, 3 * MIB);
    let (status, took) = daemon.stop_timed();
    let stopped_at = Utc::now();
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0: {status:?}");
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
    assert!(
        !outbox.join(video.name()).exists(),
        "stopped mid-upload, nothing published yet"
    );

    daemon.restart();
    env.wait_published(id, 60);
    video.assert_same_content(&outbox.join(video.name()));
    let job = env.show(id);
    let history = describe_history(&job);
    let offset = resume_offsets(&job)
        .into_iter()
        .find(|(at, _)| *at >= stopped_at)
        .map(|(_, offset)| offset)
        .unwrap_or_else(|| panic!("no 'resuming at byte N' after the restart:\n{history}"));
    assert!(
        offset > 0 && offset >= seen,
        "resumed at byte {offset}, {seen} were acknowledged before SIGTERM:\n{history}"
    );
}

/// A control client that sends many requests and reads none of the answers: the daemon's
/// writes to it block, so its connection task keeps the shutdown drain waiting.
struct StuckClient {
    stream: UnixStream,
}

impl StuckClient {
    fn connect(env: &TestEnv) -> StuckClient {
        let mut stream = UnixStream::connect(env.socket_path()).expect("connect to upqd");
        let mut hello = [0u8; 1];
        stream.read_exact(&mut hello).expect("read the hello");
        let requests: String = (1..=2000)
            .map(|id| format!("{{\"id\":{id},\"method\":\"status\"}}\n"))
            .collect();
        stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .expect("write timeout");
        stream
            .write_all(requests.as_bytes())
            .expect("send the requests");
        let client = StuckClient { stream };
        // Answers pile up unread until the daemon can write no more.
        let mut last = 0;
        let mut steady_since = Instant::now();
        wait_until(WAIT, "the daemon's answers to fill the socket", || {
            let queued = client.unread_bytes();
            if queued != last {
                last = queued;
                steady_since = Instant::now();
            }
            queued >= 64 * 1024 && steady_since.elapsed() >= Duration::from_millis(300)
        });
        client
    }

    /// Bytes the daemon wrote that nobody read yet.
    fn unread_bytes(&self) -> usize {
        let mut queued: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int through a valid pointer.
        let rc = unsafe { libc::ioctl(self.stream.as_raw_fd(), libc::FIONREAD, &mut queued) };
        assert_eq!(rc, 0, "FIONREAD: {}", std::io::Error::last_os_error());
        queued as usize
    }
}

#[test]
fn a_second_sigint_during_the_drain_exits_at_once_with_130() {
    let env = TestEnv::new("sig-double");
    env.write_local_config("rate_limit = \"2MiB\"", "1MiB");
    let video = env.source("double.mp4", 8 * MIB);
    let mut daemon = Daemon::without_bus(&env).start();
    let id = env.add(&video, &[]);
    wait_uploading(&env, id, MIB);
    let _stuck = StuckClient::connect(&env);

    daemon.signal(libc::SIGINT);
    // The first signal was taken once the drain begins; the stuck client keeps it going.
    daemon.wait_log(Duration::from_secs(5), "shutting down");
    assert!(
        daemon.is_running(),
        "the drain ended before a second signal could be sent; the test needs a slower drain"
    );
    let second = Instant::now();
    daemon.signal(libc::SIGINT);
    let status = daemon
        .wait_exit(Duration::from_secs(5))
        .expect("upqd exits after a second SIGINT");
    let took = second.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "a second signal exits at once; took {took:?}"
    );
    assert_eq!(status.code(), Some(130), "{status:?}");
    let log = daemon.log();
    assert!(log.contains("second signal"), "the log says why:\n{log}");

    // Nothing was lost: the job resumes and publishes.
    daemon.restart();
    env.wait_published(id, 60);
}

#[test]
fn sigterm_with_a_client_that_stopped_reading_still_exits_within_5_s() {
    let env = TestEnv::new("sig-stuck-client");
    env.write_local_config("rate_limit = \"2MiB\"", "1MiB");
    let video = env.source("stuck.mp4", 8 * MIB);
    let mut daemon = Daemon::without_bus(&env).start();
    let id = env.add(&video, &[]);
    wait_uploading(&env, id, MIB);
    let _stuck = StuckClient::connect(&env);

    let (status, took) = daemon.stop_timed();
    eprintln!("SIGTERM with a stuck client: exit {status:?} after {took:?}");
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(
        took < Duration::from_secs(5),
        "SIGTERM took {took:?} with a stuck client"
    );
}

/// A config with the `local` destination at `<root>/outbox` and, optionally, `second` at
/// `<root>/second`.
fn write_config(env: &TestEnv, daemon_keys: &str, extra: &str) {
    let outbox = env.root().join("outbox");
    std::fs::create_dir_all(&outbox).expect("create outbox");
    env.write_config(&format!(
        "[daemon]\n{daemon_keys}\n\n[destinations.local]\nkind = \"dir\"\npath = {}\nchunk_size = \"1MiB\"\n{extra}",
        toml_string(&outbox)
    ));
}

fn dir_destination(name: &str, path: &Path) -> String {
    std::fs::create_dir_all(path).expect("create destination folder");
    format!(
        "\n[destinations.{name}]\nkind = \"dir\"\npath = {}\nchunk_size = \"1MiB\"\n",
        toml_string(path)
    )
}

#[test]
fn sighup_adds_a_destination_without_dropping_uploads() {
    let env = TestEnv::new("sig-hup");
    let keys = "rate_limit = \"4MiB\"";
    write_config(&env, keys, "");
    let outbox = env.root().join("outbox");
    let second_dir = env.root().join("second");
    let long = env.source("long.mp4", 8 * MIB);
    let short = env.source("short.mp4", MIB);
    let daemon = Daemon::without_bus(&env).start();

    let running = env.add(&long, &[]);
    wait_uploading(&env, running, MIB);
    let before = env.ctl(["add", short.arg(), "--to", "second"]);
    assert_ne!(
        before.status.code(),
        Some(0),
        "no 'second' destination before the reload"
    );

    write_config(&env, keys, &dir_destination("second", &second_dir));
    daemon.signal(libc::SIGHUP);
    // The reload is asynchronous: retry until the new destination is there.
    let id = wait_for(
        Duration::from_secs(10),
        "upqctl add --to second to work after SIGHUP",
        || {
            let output = env.ctl(["add", short.arg(), "--to", "second"]);
            output.status.success().then(|| {
                output
                    .stdout_text()
                    .trim()
                    .parse::<u64>()
                    .expect("a job id")
            })
        },
    );
    env.wait_published(id, 30);
    short.assert_same_content(&second_dir.join(short.name()));

    // The upload that was running kept going through the reload.
    env.wait_published(running, 60);
    long.assert_same_content(&outbox.join(long.name()));
    let job = env.show(running);
    assert_eq!(
        history_to(&job, JobState::Uploading).len(),
        1,
        "the reload interrupted the running upload:\n{}",
        describe_history(&job)
    );
    let log = daemon.log();
    assert!(
        log.contains("configuration reloaded"),
        "the reload is logged:\n{log}"
    );
}

#[test]
fn sighup_with_a_broken_config_keeps_the_old_one() {
    let env = TestEnv::new("sig-hup-broken");
    let second_dir = env.root().join("second");
    write_config(&env, "", &dir_destination("second", &second_dir));
    let mut daemon = Daemon::without_bus(&env).start();

    // A third destination, but also a key that does not exist: the whole file is refused.
    let third_dir = env.root().join("third");
    write_config(
        &env,
        "max_actve = 3",
        &format!(
            "{}{}",
            dir_destination("second", &second_dir),
            dir_destination("third", &third_dir)
        ),
    );
    daemon.signal(libc::SIGHUP);
    let log = daemon.wait_log(Duration::from_secs(10), "configuration not reloaded");
    let at = log
        .find("configuration not reloaded")
        .expect("the text just seen");
    let line = log[..at].rsplit('\n').next().unwrap_or_default();
    assert!(line.contains("ERROR"), "logged as an error: {line}");
    let error = &log[at..];
    assert!(
        error.contains("max_actve") && error.contains("line 2"),
        "the error names the bad key and its line: {error}"
    );
    assert!(daemon.is_running(), "a broken config does not stop upqd");

    let third = env.source("third.mp4", MIB);
    let refused = env.ctl(["add", third.arg(), "--to", "third"]);
    assert_ne!(
        refused.status.code(),
        Some(0),
        "nothing of the broken file applies"
    );
    let video = env.source("kept.mp4", MIB);
    let id = env.add(&video, &["--to", "second"]);
    env.wait_published(id, 30);
    video.assert_same_content(&second_dir.join(video.name()));
    assert_eq!(env.ctl_json(["status"])["max_active"], 2, "old limits stay");
}

/// Datagrams a fake service manager received on NOTIFY_SOCKET, with their arrival times.
struct NotifySocket {
    messages: Arc<Mutex<Vec<(Instant, String)>>>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl NotifySocket {
    fn bind(path: &Path) -> NotifySocket {
        let socket = UnixDatagram::bind(path).expect("bind NOTIFY_SOCKET");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (sink, stopped) = (messages.clone(), stop.clone());
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while !stopped.load(Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    sink.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((Instant::now(), text));
                }
            }
        });
        NotifySocket {
            messages,
            stop,
            reader: Some(reader),
        }
    }

    fn all(&self) -> Vec<(Instant, String)> {
        self.messages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits for a datagram with a line `accept` likes; returns the datagram.
    fn wait_line(&self, what: &str, accept: impl Fn(&str) -> bool) -> (Instant, String) {
        let deadline = Instant::now() + WAIT;
        loop {
            let all = self.all();
            if let Some(found) = all.iter().find(|(_, text)| text.lines().any(&accept)) {
                return found.clone();
            }
            if Instant::now() >= deadline {
                let texts: Vec<&String> = all.iter().map(|(_, text)| text).collect();
                panic!("no {what} on NOTIFY_SOCKET within {WAIT:?}; received {texts:?}");
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn count(&self, line: &str) -> usize {
        self.all()
            .iter()
            .filter(|(_, text)| text.lines().any(|l| l == line))
            .count()
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

#[test]
fn sd_notify_ready_status_watchdog_and_stopping() {
    let env = TestEnv::new("sd-notify");
    let outbox = env.write_local_config("rate_limit = \"2MiB\"", "1MiB");
    let path = env.root().join("notify.sock");
    let notify = NotifySocket::bind(&path);
    let mut daemon = Daemon::without_bus(&env)
        .var("NOTIFY_SOCKET", &path)
        .var("WATCHDOG_USEC", "1000000")
        .start();

    let (_, ready) = notify.wait_line("READY=1", |line| line == "READY=1");
    assert!(
        ready.lines().any(|line| line.starts_with("STATUS=")),
        "READY=1 comes with a STATUS= line: {ready:?}"
    );
    env.ctl(["status"])
        .assert_ok("the socket serves once READY=1 is sent");

    // WATCHDOG_USEC = 1 s: pings at least every half second.
    wait_until(Duration::from_secs(10), "two WATCHDOG=1 pings", || {
        notify.count("WATCHDOG=1") >= 2
    });

    let video = env.source("notified.mp4", 4 * MIB);
    let id = env.add(&video, &[]);
    let (_, uploading) = notify.wait_line("a STATUS= line about uploading", |line| {
        line.starts_with("STATUS=") && line.contains("uploading")
    });
    assert!(
        uploading.contains("1 uploading"),
        "the status counts the upload: {uploading:?}"
    );
    let pings_before = notify.count("WATCHDOG=1");
    env.wait_published(id, 30);
    video.assert_same_content(&outbox.join(video.name()));
    wait_until(
        Duration::from_secs(10),
        "a watchdog ping after the upload",
        || notify.count("WATCHDOG=1") > pings_before,
    );
    notify.wait_line("STATUS=idle after the upload", |line| line == "STATUS=idle");

    let (status, took) = daemon.stop_timed();
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
    let (_, stopping) = notify.wait_line("STOPPING=1", |line| line == "STOPPING=1");
    assert!(
        !stopping.contains("READY=1"),
        "STOPPING=1 is its own message: {stopping:?}"
    );
}
