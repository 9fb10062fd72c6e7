//! Desktop notifications on a private bus with a recording server: stall episodes, Cancel and
//! Retry clicks, servers without actions, failed/published/held per the `notify` list.

use std::time::{Duration, Instant};

use upq_tests::bus::PrivateBus;
use upq_tests::notifications::{NotificationServer, NotifyCall, WITHOUT_ACTIONS, WITH_ACTIONS};
use upq_tests::tus::{assert_stored_copy, tus_config_named, wait_progress, wait_state, FAST_RETRY};
use upq_tests::Daemon;
use upq_tests::{
    describe_history, tus_config, wait_for, wait_until, EventLog, JobState, OutputExt, Proxy, Rule,
    Shim, SourceFile, TestEnv, TusServer, MIB,
};

/// Stalls come from a trickle of this many bytes per second between upqd and @tus/server:
/// requests still get their answers but chunk bodies hardly move, so every attempt stalls
/// again until the trickle ends. (Under a full blackhole the retry's HEAD hangs, and upqd
/// only watches for stalls once chunks are being sent.)
const TRICKLE: u64 = 1024;
/// The actions offered on a stall notification when the server shows buttons.
const STALL_ACTIONS: [&str; 4] = ["cancel", "Cancel", "retry", "Retry now"];

/// A test's world: tus server behind a proxy, a private bus with a notification server,
/// and upqd on that bus.
struct World {
    env: TestEnv,
    server: TusServer,
    proxy: Proxy,
    bus: PrivateBus,
    notifications: NotificationServer,
}

impl World {
    /// `daemon_keys` go into `[daemon]` next to a 1 s stall timeout.
    fn new(name: &str, capabilities: &[&str], daemon_keys: &str, retry_keys: &str) -> World {
        let env = TestEnv::new(name);
        let server = TusServer::start(&env);
        let proxy = Proxy::start(server.addr());
        env.write_config(&tus_config(
            &proxy.url("/files/"),
            &format!("stall_timeout = \"1s\"\nrate_limit = \"16MiB\"\n{daemon_keys}"),
            retry_keys,
            "chunk_size = \"1MiB\"\nio_timeout = \"60s\"\nconnect_timeout = \"5s\"",
        ));
        let bus = PrivateBus::start_for(&env);
        // Up before upqd, which asks for the capabilities as it starts.
        let notifications = NotificationServer::start(&bus, capabilities);
        World {
            env,
            server,
            proxy,
            bus,
            notifications,
        }
    }

    fn upqd(&self) -> Daemon<'_> {
        Daemon::on_bus(&self.env, &self.bus).start()
    }

    /// Queues `video` and waits until 2 MiB are acknowledged; then the trickle begins.
    fn upload_then_trickle(&self, video: &SourceFile) -> u64 {
        let id = self.env.add(video, &["--to", "tus"]);
        wait_progress(&self.env, id, 2 * MIB, Duration::from_secs(60));
        self.proxy.throttle_up(TRICKLE);
        id
    }

    /// The stall notifications so far.
    fn stall_notifications(&self) -> Vec<(Instant, NotifyCall)> {
        self.notifications
            .notifies()
            .into_iter()
            .filter(|(_, n)| n.summary.starts_with("Upload stalled"))
            .collect()
    }

    /// Waits until at least `count` stall notifications arrived; returns them.
    fn wait_stall_notifications(&self, count: usize, timeout: Duration) -> Vec<NotifyCall> {
        wait_for(
            timeout,
            format!(
                "{count} stall notifications; calls so far:\n{}",
                self.notifications.describe()
            ),
            || {
                let stalls = self.stall_notifications();
                (stalls.len() >= count).then(|| stalls.into_iter().map(|(_, n)| n).collect())
            },
        )
    }
}

/// `... has made no progress for 12 s ...` → 12.
fn stall_seconds(body: &str) -> Option<u64> {
    let (_, rest) = body.split_once("has made no progress for ")?;
    let (number, unit) = rest.split_once(' ')?;
    unit.starts_with('s').then_some(())?;
    number.parse().ok()
}

#[test]
fn one_notification_per_stall_episode_updated_in_place_and_closed_on_recovery() {
    let world = World::new("notify-episode", WITH_ACTIONS, "", FAST_RETRY);
    let env = &world.env;
    let video = env.source("episode.mp4", 32 * MIB);
    let upqd = world.upqd();
    let events = EventLog::subscribe(env);

    let id = world.upload_then_trickle(&video);
    let stalls = world.wait_stall_notifications(3, Duration::from_secs(60));
    // The notification follows the state change, but the event stream may deliver
    // that change a moment after the bus delivered the notification.
    let stalled_attempts = || {
        events
            .errors(id)
            .iter()
            .filter(|e| e.kind == "stalled")
            .count()
    };
    wait_until(
        Duration::from_secs(10),
        format!("three stalled attempts:\n{}", events.describe(id)),
        || stalled_attempts() >= 3,
    );

    let first = &stalls[0];
    assert_eq!(
        first.replaces_id, 0,
        "the episode's first notification is new: {first:?}"
    );
    assert_ne!(first.id, 0);
    let episode = first.id;
    for later in &stalls[1..] {
        assert_eq!(
            later.replaces_id,
            episode,
            "later stalls of the episode replace its notification:\n{}",
            world.notifications.describe()
        );
        assert_eq!(later.id, episode);
    }
    let mut last_seconds = 0;
    for stall in &stalls {
        assert_eq!(stall.app_name, "upq", "{stall:?}");
        assert_eq!(stall.app_icon, "", "{stall:?}");
        assert_eq!(stall.summary, "Upload stalled: episode.mp4", "{stall:?}");
        assert!(
            stall.body.contains(video.arg()),
            "the body names the file's full path {}: {:?}",
            video.arg(),
            stall.body
        );
        let seconds = stall_seconds(&stall.body).unwrap_or_else(|| {
            panic!(
                "the body says how long nothing moved (\"has made no progress for N s\"): {:?}",
                stall.body
            )
        });
        assert!(
            seconds >= last_seconds,
            "the episode's duration only grows: {seconds} s after {last_seconds} s"
        );
        last_seconds = seconds;
        assert_eq!(stall.actions, STALL_ACTIONS, "{stall:?}");
    }
    assert!(
        stall_seconds(&first.body) >= Some(1),
        "the first stall counts the stall timeout: {:?}",
        first.body
    );
    assert!(
        env.job(id).stalls >= 1,
        "stalls counts the episode: {:?}",
        env.job(id)
    );

    // The trickle ends: the next acknowledged chunk closes the episode's notification.
    let stalls_before = world.stall_notifications().len();
    world.proxy.unthrottle();
    let close = world.notifications.wait_for_call(
        Duration::from_secs(60),
        &format!("CloseNotification({episode})"),
        |r| matches!(r.call, upq_tests::notifications::Call::CloseNotification(n) if n == episode),
    );
    env.wait_published(id, 120);
    let job = env.show(id);
    assert_eq!(job.stalls, 0, "{}", describe_history(&job));
    assert_stored_copy(&world.server.only_upload(), &video);

    let stall_times: Vec<Instant> = world
        .stall_notifications()
        .iter()
        .map(|(at, _)| *at)
        .collect();
    assert!(
        stall_times.iter().all(|at| *at <= close.at),
        "no stall notification after the episode closed:\n{}",
        world.notifications.describe()
    );
    assert!(world.stall_notifications().len() >= stalls_before);
    assert_eq!(
        world.notifications.capability_queries(),
        1,
        "GetCapabilities once, at start:\n{}",
        world.notifications.describe()
    );
    // The default `notify` list has no "published".
    assert!(
        world
            .notifications
            .notifies()
            .iter()
            .all(|(_, n)| n.summary.starts_with("Upload stalled")),
        "only stall notifications with the default config:\n{}",
        world.notifications.describe()
    );
    eprintln!("notification calls:\n{}", world.notifications.describe());
    drop(upqd);
}

#[test]
fn cancel_on_the_stall_notification_cancels_the_job_into_drafts() {
    let world = World::new("notify-cancel", WITH_ACTIONS, "", FAST_RETRY);
    let env = &world.env;
    let video = env.source("cancel-me.mp4", 32 * MIB);
    let _upqd = world.upqd();
    let events = EventLog::subscribe(env);

    let id = world.upload_then_trickle(&video);
    let stall = world.wait_stall_notifications(1, Duration::from_secs(60))[0].clone();
    assert_eq!(stall.actions, STALL_ACTIONS);

    world.notifications.invoke_action(stall.id, "cancel");
    let canceled = wait_state(env, id, JobState::Canceled, Duration::from_secs(15));
    assert_eq!(canceled.state, JobState::Canceled);
    let history = describe_history(&env.show(id));
    assert!(
        history.contains("canceled by the user"),
        "the click cancels like `upqctl cancel`:\n{history}"
    );
    let drafts = env.drafts();
    assert!(
        drafts.iter().any(|d| d.id == id),
        "the canceled job is in `upqctl drafts`: {drafts:?}"
    );
    assert!(
        !events
            .transitions(id)
            .iter()
            .any(|t| t.to == JobState::Published),
        "{}",
        events.describe(id)
    );
}

#[test]
fn retry_on_the_stall_notification_retries_at_once() {
    // Long waits between attempts, so a retry that comes at once is the click's doing.
    let world = World::new(
        "notify-retry",
        WITH_ACTIONS,
        "stall_retries = 50",
        "max_attempts = 50\nbase_delay = \"30s\"\nmax_delay = \"30s\"",
    );
    let env = &world.env;
    let video = env.source("retry-me.mp4", 32 * MIB);
    let _upqd = world.upqd();
    let events = EventLog::subscribe(env);

    let id = world.upload_then_trickle(&video);
    // The wait is drawn from [0, 30 s]: take the first stall that waits at least 10 s.
    let long_wait = wait_for(
        Duration::from_secs(120),
        "a stall followed by a wait of 10 s or more",
        || {
            events.transitions(id).into_iter().find(|t| {
                t.to == JobState::Retrying
                    && t.job
                        .last_error
                        .as_ref()
                        .is_some_and(|e| e.kind == "stalled")
                    && t.job
                        .next_attempt_at
                        .is_some_and(|next| next - t.received_at >= chrono::Duration::seconds(10))
            })
        },
    );
    let next_attempt_at = long_wait.job.next_attempt_at.expect("checked above");
    let stall = world.wait_stall_notifications(1, Duration::from_secs(10))[0].clone();
    wait_until_state(env, id, JobState::Retrying);

    let clicked_at = chrono::Utc::now();
    world.notifications.invoke_action(stall.id, "retry");
    let retried = wait_for(
        Duration::from_secs(5),
        "the job to leave retrying after the click",
        || {
            events
                .transitions(id)
                .into_iter()
                .find(|t| t.received_at >= clicked_at && t.from == Some(JobState::Retrying))
        },
    );
    assert_eq!(retried.to, JobState::Queued, "{}", events.describe(id));
    assert_eq!(retried.reason, "retry requested by the user");
    assert!(
        retried.received_at < next_attempt_at,
        "retried before the scheduled attempt at {next_attempt_at}:\n{}",
        events.describe(id)
    );
}

#[test]
fn giving_up_on_stalls_replaces_the_episode_with_a_failed_notification() {
    let world = World::new(
        "notify-gives-up",
        WITH_ACTIONS,
        "stall_retries = 2",
        FAST_RETRY,
    );
    let env = &world.env;
    let video = env.source("given-up.mp4", 32 * MIB);
    let _upqd = world.upqd();

    let id = world.upload_then_trickle(&video);
    let failed_job = wait_state(env, id, JobState::Failed, Duration::from_secs(60));
    let (_, failed) =
        world
            .notifications
            .wait_for_notify(Duration::from_secs(10), "Upload failed", |n| {
                n.summary.starts_with("Upload failed")
            });
    let stalls = world.stall_notifications();
    assert!(
        !stalls.is_empty(),
        "the episode was notified before the job failed:\n{}",
        world.notifications.describe()
    );
    let episode = stalls[0].1.id;
    assert_eq!(failed.summary, "Upload failed: given-up.mp4");
    assert_eq!(
        failed.replaces_id,
        episode,
        "the failure replaces the episode's notification:\n{}",
        world.notifications.describe()
    );
    assert!(failed.body.contains(video.arg()), "{failed:?}");
    assert!(
        failed.body.contains("gave up: stalled")
            || failed.body.contains(
                &failed_job
                    .last_error
                    .as_ref()
                    .expect("failed has a last_error")
                    .message
            ),
        "the body says why: {failed:?}"
    );
}

/// Waits until job `id` is in `state` (it goes back and forth under the trickle).
fn wait_until_state(env: &TestEnv, id: u64, state: JobState) {
    wait_for(
        Duration::from_secs(30),
        format!("job {id} to be {state}"),
        || (env.job(id).state == state).then_some(()),
    );
}

#[test]
fn a_server_without_actions_gets_no_buttons() {
    let world = World::new("notify-no-actions", WITHOUT_ACTIONS, "", FAST_RETRY);
    let env = &world.env;
    let video = env.source("plain.mp4", 32 * MIB);
    let _upqd = world.upqd();

    let id = world.upload_then_trickle(&video);
    let stalls = world.wait_stall_notifications(2, Duration::from_secs(60));
    for stall in &stalls {
        assert!(
            stall.actions.is_empty(),
            "no actions without the \"actions\" capability: {stall:?}"
        );
        assert_eq!(stall.summary, "Upload stalled: plain.mp4");
    }
    world.proxy.unthrottle();
    env.wait_published(id, 120);
    assert_eq!(world.notifications.capability_queries(), 1);
}

/// A `[destinations.NAME]` table for a tus endpoint.
fn destination_table(name: &str, endpoint: &str) -> String {
    let full = tus_config_named(name, endpoint, "", "", "chunk_size = \"1MiB\"");
    let (_, table) = full
        .split_once(&format!("[destinations.{name}]"))
        .expect("the config has the destination's table");
    format!("[destinations.{name}]{table}")
}

#[test]
fn failed_published_and_held_are_notified_as_configured() {
    let env = TestEnv::new("notify-events");
    let server = TusServer::start(&env);
    let shim = Shim::start(server.addr());
    // A second front for the same server that refuses every creation with 401.
    let refusing = Shim::start(server.addr());
    refusing.add_rule(Rule::respond("POST", "/files/", 401).always());
    env.write_config(&format!(
        "{}\n{}",
        tus_config(
            &shim.endpoint(),
            "notify = [\"stalled\", \"failed\", \"published\", \"held\"]",
            FAST_RETRY,
            "chunk_size = \"1MiB\"",
        ),
        destination_table("denied", &refusing.endpoint())
    ));
    let bus = PrivateBus::start_for(&env);
    let notifications = NotificationServer::start(&bus, WITH_ACTIONS);
    let _upqd = Daemon::on_bus(&env, &bus).start();

    let refused = env.source("refused.mp4", 2 * MIB);
    let id = env.add(&refused, &["--to", "denied"]);
    wait_state(&env, id, JobState::Failed, Duration::from_secs(30));
    let (_, failed) =
        notifications.wait_for_notify(Duration::from_secs(10), "Upload failed", |n| {
            n.summary.starts_with("Upload failed")
        });
    assert_eq!(failed.summary, "Upload failed: refused.mp4");
    assert_eq!(
        failed.replaces_id, 0,
        "no stall episode to replace: {failed:?}"
    );
    assert!(failed.body.contains(refused.arg()), "{failed:?}");
    assert!(failed.actions.is_empty(), "{failed:?}");

    let fine = env.source("fine.mp4", 2 * MIB);
    let id = env.add(&fine, &["--to", "tus"]);
    env.wait_published(id, 60);
    let (_, published) = notifications.wait_for_notify(Duration::from_secs(10), "Published", |n| {
        n.summary.contains("fine.mp4") && !n.summary.starts_with("Upload")
    });
    assert_eq!(published.summary, "Published: fine.mp4", "{published:?}");

    let held = env.source("held.mp4", 2 * MIB);
    let id = env.add(&held, &["--to", "tus", "--hold"]);
    wait_state(&env, id, JobState::Held, Duration::from_secs(60));
    let (_, review) = notifications.wait_for_notify(Duration::from_secs(10), "held", |n| {
        n.summary.contains("held.mp4")
    });
    assert!(
        review.body.contains(held.arg()) && review.body.contains(&format!("upqctl publish {id}")),
        "the held notification names the file and how to release it: {review:?}"
    );
}

#[test]
fn published_and_held_are_quiet_unless_configured() {
    let env = TestEnv::new("notify-quiet");
    let server = TusServer::start(&env);
    env.write_config(&tus_config(
        &server.endpoint,
        "",
        FAST_RETRY,
        "chunk_size = \"1MiB\"",
    ));
    let bus = PrivateBus::start_for(&env);
    let notifications = NotificationServer::start(&bus, WITH_ACTIONS);
    let _upqd = Daemon::on_bus(&env, &bus).start();

    let published = env.source("quiet.mp4", 2 * MIB);
    let id = env.add(&published, &["--to", "tus"]);
    env.wait_published(id, 60);
    let held = env.source("quiet-held.mp4", 2 * MIB);
    let held_id = env.add(&held, &["--to", "tus", "--hold"]);
    wait_state(&env, held_id, JobState::Held, Duration::from_secs(60));
    // A job that fails afterwards is notified: by then the others would have been too.
    let missing = env.source("vanishing.mp4", 2 * MIB);
    let failing = env.add(&missing, &["--to", "tus", "--hold"]);
    wait_state(&env, failing, JobState::Held, Duration::from_secs(60));
    std::fs::remove_file(&missing.path).expect("remove the source");
    env.ctl(["publish", &failing.to_string()])
        .assert_ok("upqctl publish");
    notifications.wait_for_notify(Duration::from_secs(30), "Upload failed", |n| {
        n.summary.starts_with("Upload failed")
    });
    let summaries: Vec<String> = notifications
        .notifies()
        .into_iter()
        .map(|(_, n)| n.summary)
        .collect();
    assert_eq!(
        summaries,
        ["Upload failed: vanishing.mp4"],
        "the default `notify` list has no published or held:\n{}",
        notifications.describe()
    );
}
