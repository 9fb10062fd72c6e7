//! The core without processes: the service, scheduler and workers over a fake destination,
//! in tokio's paused time so retries, holds and timeouts take no real time.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use upq_proto::{AddRequest, ErrorCode, JobState, Selection};

use crate::clock::TokioClock;
use crate::config::{Config, DaemonSettings, Paths};
use crate::destinations::fake::{FakeDestination, Gate, Step};
use crate::destinations::{DestError, Destination, Destinations, Processing};
use crate::job::Job;
use crate::notify::Notifier;
use crate::service::Service;
use crate::store::Store;

mod desk;
mod doctor;
mod policies;

const CHUNK: u64 = 16;

/// A service over a fake destination named "fake", its scheduler running.
struct Core {
    service: Service,
    fake: Arc<FakeDestination>,
    shutdown: CancellationToken,
    data: tempfile::TempDir,
    files: tempfile::TempDir,
}

fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .expect("a time")
        .with_timezone(&Utc)
}

fn config(data: &std::path::Path, tune: impl FnOnce(&mut DaemonSettings)) -> Config {
    let mut config = Config::load(Paths {
        config_file: None,
        data_dir: data.to_path_buf(),
        socket: data.join("socket"),
    })
    .expect("the default config");
    config.dbus = false;
    config.daemon.default_destination = "fake".into();
    config.daemon.notify = Vec::new();
    // Long enough that no test meets it unless it means to.
    config.daemon.stall_timeout = Duration::from_secs(3600);
    tune(&mut config.daemon);
    config
}

fn service_over(
    data: &std::path::Path,
    fake: Arc<FakeDestination>,
    shutdown: CancellationToken,
    tune: impl FnOnce(&mut DaemonSettings),
) -> Service {
    service_over_list(data, vec![("fake", fake)], shutdown, tune)
}

/// A service over fake destinations by name (the default one is "fake").
fn service_over_list(
    data: &std::path::Path,
    fakes: Vec<(&str, Arc<FakeDestination>)>,
    shutdown: CancellationToken,
    tune: impl FnOnce(&mut DaemonSettings),
) -> Service {
    let store = Store::open(data).expect("a fresh store");
    let destinations: Destinations = fakes
        .into_iter()
        .map(|(name, fake)| {
            let destination: Arc<dyn Destination> = fake;
            (name.to_string(), destination)
        })
        .collect();
    let service = Service::with_clock(
        config(data, tune),
        store,
        destinations,
        crate::accounts::Accounts::in_files(data.join("accounts")),
        Notifier::disabled(),
        shutdown,
        Arc::new(TokioClock::starting_at(start_time())),
    )
    .expect("the service starts");
    service
        .inner
        .tasks
        .spawn_named("scheduler", service.clone().run_scheduler());
    service
        .inner
        .tasks
        .spawn_named("rate policy", service.clone().run_rate_policy());
    service
}

impl Core {
    fn start(fake: FakeDestination, tune: impl FnOnce(&mut DaemonSettings)) -> Core {
        Core::start_with(fake, Vec::new(), tune)
    }

    /// With more fake destinations beside "fake", by name.
    fn start_with(
        fake: FakeDestination,
        others: Vec<(&str, Arc<FakeDestination>)>,
        tune: impl FnOnce(&mut DaemonSettings),
    ) -> Core {
        let data = tempfile::tempdir().expect("a temp dir");
        let files = tempfile::tempdir().expect("a temp dir");
        let fake = Arc::new(fake);
        let shutdown = CancellationToken::new();
        let mut all = vec![("fake", fake.clone())];
        all.extend(others);
        let service = service_over_list(data.path(), all, shutdown.clone(), tune);
        Core {
            service,
            fake,
            shutdown,
            data,
            files,
        }
    }

    /// A file of `len` bytes whose content says which file it is.
    fn file(&self, name: &str, len: usize) -> PathBuf {
        let path = self.files.path().join(name);
        let content: Vec<u8> = name.bytes().cycle().take(len).collect();
        std::fs::write(&path, content).expect("a source file");
        path
    }

    async fn add_with(&self, name: &str, len: usize, tune: impl FnOnce(&mut AddRequest)) -> u64 {
        let mut request = AddRequest {
            file: self.file(name, len).display().to_string(),
            options: Default::default(),
        };
        tune(&mut request);
        self.service
            .add(request)
            .await
            .expect("the job is queued")
            .id
    }

    async fn add(&self, name: &str, len: usize) -> u64 {
        self.add_with(name, len, |_| {}).await
    }

    /// Lets `earlier` calls through `gate`, then waits for the next one to reach it.
    async fn held_at(gate: &mut Gate, earlier: usize) {
        for _ in 0..earlier {
            gate.arrived().await;
            gate.pass_one();
        }
        gate.arrived().await;
    }

    fn job(&self, id: u64) -> Job {
        self.service.job(id).expect("the job exists")
    }

    /// Waits (in tokio's time, up to an hour of it) until job `id` satisfies `done`.
    async fn until(&self, id: u64, what: &str, done: impl Fn(&Job) -> bool) -> Job {
        // Progress counters change without an event; look again now and then.
        self.until_within(
            id,
            what,
            Duration::from_secs(3600),
            Duration::from_millis(50),
            done,
        )
        .await
    }

    /// Waits until job `id` satisfies `done`, up to `horizon` of tokio's time, looking
    /// at each event and every `every`.
    async fn until_within(
        &self,
        id: u64,
        what: &str,
        horizon: Duration,
        every: Duration,
        done: impl Fn(&Job) -> bool,
    ) -> Job {
        let mut events = self.service.subscribe();
        let deadline = Instant::now() + horizon;
        loop {
            let job = self.job(id);
            if done(&job) {
                return job;
            }
            tokio::select! {
                _ = events.recv() => {}
                _ = tokio::time::sleep(every) => {}
                _ = tokio::time::sleep_until(deadline) => {
                    panic!("job {id} never {what}; it is {} ({:?})", job.state(), job.last_error())
                }
            }
        }
    }

    /// The job's history, as `show` gives it.
    fn history(&self, id: u64) -> Vec<upq_proto::HistoryEntry> {
        let view = self.service.show(id).expect("show");
        view.history.expect("show has the history")
    }

    async fn until_state(&self, id: u64, state: JobState) -> Job {
        self.until(id, &format!("became {state}"), |job| job.state() == state)
            .await
    }

    /// `until_state` for waits of hours or days: state changes come with an event, so
    /// this looks only at events and once a minute.
    async fn until_state_after_hours(&self, id: u64, state: JobState) -> Job {
        let what = format!("became {state} within two days");
        self.until_within(
            id,
            &what,
            Duration::from_secs(2 * 86_400),
            Duration::from_secs(60),
            |job| job.state() == state,
        )
        .await
    }

    /// The bytes the fake holds for the job's remote upload.
    fn received(&self, id: u64) -> Vec<u8> {
        let session = self
            .job(id)
            .remote()
            .cloned()
            .expect("the job has a remote upload");
        self.fake.received(&session).expect("the fake holds it")
    }

    fn content(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.files.path().join(name)).expect("the source file")
    }

    /// Stops the scheduler and workers the way the daemon's shutdown does.
    async fn stop(self) -> (tempfile::TempDir, tempfile::TempDir, Arc<FakeDestination>) {
        self.shutdown.cancel();
        let left = self.service.inner.tasks.drain(Duration::from_secs(5)).await;
        assert!(left.is_empty(), "tasks outlived the drain: {left:?}");
        self.service.inner.store.flush().await.expect("a flush");
        drop(self.service);
        (self.data, self.files, self.fake)
    }
}

fn transient() -> DestError {
    DestError::transient("network", "connection reset")
}

#[tokio::test(start_paused = true)]
async fn a_job_goes_through_and_the_destination_holds_every_byte() {
    let core = Core::start(FakeDestination::new(CHUNK, false), |_| {});
    let id = core.add("whole.mp4", 100).await;
    let job = core.until_state(id, JobState::Published).await;
    assert_eq!(core.received(id), core.content("whole.mp4"));
    assert_eq!(job.bytes_sent(), 100);
    assert!(job.committed());
    assert_eq!(job.location(), Some("fake:1"));
    let offsets: Vec<_> = core
        .fake
        .calls_to(Step::SendChunk)
        .iter()
        .filter_map(|c| c.offset)
        .collect();
    assert_eq!(offsets, [0, 16, 32, 48, 64, 80, 96]);
}

#[tokio::test(start_paused = true)]
async fn jobs_start_by_priority_then_in_the_order_they_came() {
    let core = Core::start(FakeDestination::new(CHUNK, false), |d| d.max_active = 1);
    core.service
        .pause(Selection {
            posts: Vec::new(),
            ids: Vec::new(),
            all: true,
            now: false,
        })
        .await
        .expect("the queue pauses");
    let low_first = core.add("a.mp4", 20).await;
    let high_first = core.add_with("b.mp4", 20, |r| r.options.priority = 5).await;
    let low_second = core.add("c.mp4", 20).await;
    let high_second = core.add_with("d.mp4", 20, |r| r.options.priority = 5).await;
    core.service
        .resume(Selection {
            posts: Vec::new(),
            ids: Vec::new(),
            all: true,
            now: false,
        })
        .await
        .expect("the queue resumes");
    for id in [low_first, high_first, low_second, high_second] {
        core.until_state(id, JobState::Published).await;
    }
    let opened: Vec<_> = core
        .fake
        .calls_to(Step::Open)
        .iter()
        .filter_map(|c| c.job_id)
        .collect();
    assert_eq!(opened, [high_first, high_second, low_first, low_second]);
}

#[tokio::test(start_paused = true)]
async fn no_more_than_max_active_jobs_upload_at_once() {
    let core = Core::start(FakeDestination::new(CHUNK, false), |d| d.max_active = 2);
    let mut chunks = core.fake.gate(Step::SendChunk);
    let ids = [
        core.add("a.mp4", 20).await,
        core.add("b.mp4", 20).await,
        core.add("c.mp4", 20).await,
    ];
    let mut first_two = [chunks.arrived().await.job_id, chunks.arrived().await.job_id];
    first_two.sort();
    assert_eq!(first_two, [Some(ids[0]), Some(ids[1])]);
    // However long the two take, the third waits for a slot.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(core.job(ids[2]).state(), JobState::Queued);
    assert_eq!(core.fake.calls_to(Step::Open).len(), 2);
    for _ in 0..6 {
        chunks.pass_one();
    }
    for id in ids {
        core.until_state(id, JobState::Published).await;
    }
}

#[tokio::test(start_paused = true)]
async fn retries_wait_within_the_jittered_backoff_and_progress_resets_the_count() {
    let core = Core::start(FakeDestination::new(CHUNK, false), |d| {
        d.retry.base_delay = Duration::from_secs(10);
        d.retry.max_delay = Duration::from_secs(1000);
    });
    for _ in 0..3 {
        core.fake.fail_next(Step::SendChunk, transient());
    }
    let id = core.add("flaky.mp4", 40).await;
    core.until(id, "failed three times", |job| job.attempts() == 3)
        .await;
    let job = core.until_state(id, JobState::Published).await;
    // The last attempt got bytes through: the count starts again.
    assert_eq!(job.attempts(), 0);
    assert_eq!(core.fake.calls_to(Step::Open).len(), 4);
    // Each delay is drawn within its attempt's ceiling, and the next attempt waits for it.
    let history = core.history(id);
    let mut retries = 0;
    for (i, entry) in history.iter().enumerate() {
        if entry.to != JobState::Retrying {
            continue;
        }
        let ceiling = 10.0 * f64::from(1u32 << retries);
        retries += 1;
        let delay: f64 = entry
            .reason
            .rsplit("retrying in ")
            .next()
            .and_then(|rest| rest.strip_suffix('s'))
            .and_then(|secs| secs.parse().ok())
            .unwrap_or_else(|| panic!("a delay in {:?}", entry.reason));
        assert!(
            delay <= ceiling,
            "attempt {retries}: {delay}s over {ceiling}s"
        );
        let next = history[i + 1..]
            .iter()
            .find(|e| e.to == JobState::Uploading)
            .expect("another attempt");
        let waited = (next.at - entry.at).as_seconds_f64();
        // The reason rounds to a tenth of a second.
        assert!(
            waited >= delay - 0.05,
            "attempt {retries}: waited {waited}s of {delay}s"
        );
    }
    assert_eq!(retries, 3);
    assert_eq!(core.received(id), core.content("flaky.mp4"));
}

#[tokio::test(start_paused = true)]
async fn a_job_fails_after_max_attempts_without_progress() {
    let core = Core::start(FakeDestination::new(CHUNK, false), |d| {
        d.retry.max_attempts = 3;
    });
    for _ in 0..10 {
        core.fake.fail_next(Step::Open, transient());
    }
    let id = core.add("doomed.mp4", 40).await;
    let job = core.until_state(id, JobState::Failed).await;
    assert_eq!(job.attempts(), 3);
    assert_eq!(core.fake.calls_to(Step::Open).len(), 3);
    assert_eq!(job.last_error().map(|e| e.kind.as_str()), Some("network"));
}

#[tokio::test(start_paused = true)]
async fn a_held_job_waits_at_the_commit_until_published() {
    let core = Core::start(FakeDestination::new(CHUNK, true), |_| {});
    let id = core
        .add_with("held.mp4", 40, |r| r.options.hold = true)
        .await;
    core.until_state(id, JobState::Held).await;
    tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
    assert_eq!(core.job(id).state(), JobState::Held);
    assert!(core.fake.calls_to(Step::Commit).is_empty());
    core.service.publish(vec![id]).await.expect("publish");
    core.until_state(id, JobState::Published).await;
    assert_eq!(core.fake.calls_to(Step::Commit).len(), 1);
    // The separate commit step runs in `publishing`.
    let history = core.history(id);
    let states: Vec<JobState> = history.iter().map(|entry| entry.to).collect();
    assert_eq!(
        states,
        [
            JobState::Queued,
            JobState::Uploading,
            JobState::Held,
            JobState::Queued,
            JobState::Uploading,
            JobState::Publishing,
            JobState::Published
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_review_window_releases_the_job_when_it_ends() {
    let core = Core::start(FakeDestination::new(CHUNK, true), |_| {});
    let queued = Instant::now();
    let id = core
        .add_with("later.mp4", 40, |r| r.options.delay_ms = Some(90_000))
        .await;
    let held = core.until_state(id, JobState::Held).await;
    core.until_state(id, JobState::Published).await;
    let commit = core.fake.calls_to(Step::Commit)[0].at;
    assert!(
        commit - queued >= Duration::from_secs(90),
        "{:?}",
        commit - queued
    );
    // Released by the timer at the end of the window, not at some later look.
    let publish_at = held.publish_at().expect("a review time");
    let history = core.history(id);
    let released = history
        .iter()
        .find(|entry| entry.from == Some(JobState::Held))
        .expect("a release");
    assert!(released.at >= publish_at, "{released:?}");
    assert!(
        released.at - publish_at < chrono::Duration::seconds(1),
        "{released:?} for {publish_at}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_configured_publish_delay_holds_every_job() {
    let core = Core::start(FakeDestination::new(CHUNK, true), |d| {
        d.publish_delay = Duration::from_secs(600);
    });
    let queued = Instant::now();
    let id = core.add("delayed.mp4", 40).await;
    core.until_state(id, JobState::Published).await;
    let commit = core.fake.calls_to(Step::Commit)[0].at;
    assert!(
        commit - queued >= Duration::from_secs(600),
        "{:?}",
        commit - queued
    );
}

/// Cancels the job while a call to `step` is held at its gate; the answer comes in time.
async fn cancel_at(
    step: Step,
    separate_commit: bool,
    chunk_index: usize,
) -> (
    Core,
    u64,
    Result<Vec<upq_proto::BatchItem>, crate::service::ServiceError>,
) {
    let core = Core::start(FakeDestination::new(CHUNK, separate_commit), |_| {});
    let mut gate = core.fake.gate(step);
    let id = core.add("cancel.mp4", 64).await;
    Core::held_at(&mut gate, chunk_index).await;
    // Real time: the store's flush runs off the runtime, and paused time jumps meanwhile.
    let asked = std::time::Instant::now();
    let answer = core.service.cancel(vec![id]).await;
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{step:?}: {:?}",
        asked.elapsed()
    );
    (core, id, answer)
}

#[tokio::test(start_paused = true)]
async fn cancel_before_the_commit_leaves_a_draft_at_every_await_point() {
    for (step, chunk_index) in [
        (Step::Open, 0),
        (Step::ConfirmedOffset, 0),
        (Step::SendChunk, 0),
        (Step::SendChunk, 1),
        // The last chunk before the final one, which is the commit point.
        (Step::SendChunk, 2),
    ] {
        let (core, id, answer) = cancel_at(step, false, chunk_index).await;
        let items = answer.expect("cancel answers");
        assert!(items[0].error.is_none(), "{step:?}: {:?}", items[0].error);
        let job = core.until_state(id, JobState::Canceled).await;
        assert_eq!(job.bytes_sent(), 0, "{step:?}");
        assert!(job.remote().is_none(), "{step:?}");
        assert!(!job.committed());
        assert_eq!(core.service.drafts().unwrap().len(), 1);
        // The worker is gone, and nothing more reaches the destination.
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(core.service.lock().running.is_empty(), "{step:?}");
        assert_eq!(core.job(id).state(), JobState::Canceled);
    }
}

#[tokio::test(start_paused = true)]
async fn the_partial_upload_of_a_canceled_job_is_thrown_away() {
    let (core, id, answer) = cancel_at(Step::SendChunk, false, 2).await;
    answer.expect("cancel answers");
    core.until_state(id, JobState::Canceled).await;
    assert_eq!(core.fake.discarded(), [1]);
}

#[tokio::test(start_paused = true)]
async fn cancel_after_the_commit_is_too_late_at_every_await_point() {
    for (step, separate_commit, earlier_calls) in [
        // The final chunk is the commit point of a tus-like destination.
        (Step::SendChunk, false, 2),
        (Step::Commit, true, 0),
        (Step::PollProcessing, true, 0),
        (Step::PollProcessing, false, 0),
        (Step::Publish, false, 0),
    ] {
        let core = Core::start(
            FakeDestination::new(CHUNK, separate_commit).with_publish_step(),
            |_| {},
        );
        let mut gate = core.fake.gate(step);
        let id = core.add("late.mp4", 40).await;
        Core::held_at(&mut gate, earlier_calls).await;
        let asked = std::time::Instant::now();
        let items = core.service.cancel(vec![id]).await.expect("cancel answers");
        assert!(asked.elapsed() < Duration::from_secs(1), "{step:?}");
        let error = items[0].error.as_ref().expect("cancel is refused");
        assert_eq!(error.code, ErrorCode::TooLate, "{step:?}");
        gate.pass_one();
        let job = core.until_state(id, JobState::Published).await;
        assert_eq!(job.bytes_sent(), 40);
    }
}

#[tokio::test(start_paused = true)]
async fn processing_is_polled_until_the_destination_is_done() {
    let fake = FakeDestination::new(CHUNK, false);
    fake.process_with([
        Processing::Pending {
            progress: None,
            poll_after: Duration::from_secs(30),
            detail: "transcoding".into(),
        },
        Processing::Pending {
            progress: None,
            poll_after: Duration::from_secs(30),
            detail: "transcoding".into(),
        },
    ]);
    let core = Core::start(fake, |_| {});
    let id = core.add("slow.mp4", 40).await;
    core.until_state(id, JobState::Published).await;
    let polls: Vec<Instant> = core
        .fake
        .calls_to(Step::PollProcessing)
        .iter()
        .map(|c| c.at)
        .collect();
    assert_eq!(polls.len(), 3);
    assert!(polls[2] - polls[0] >= Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn pause_keeps_the_confirmed_bytes_and_resume_goes_on_from_them() {
    let core = Core::start(FakeDestination::new(CHUNK, false), |_| {});
    let mut chunks = core.fake.gate(Step::SendChunk);
    let id = core.add("pause.mp4", 64).await;
    Core::held_at(&mut chunks, 2).await;
    core.service
        .pause(Selection {
            posts: Vec::new(),
            ids: vec![id],
            all: false,
            now: false,
        })
        .await
        .expect("pause");
    let job = core
        .until(id, "recorded its confirmed offset", |job| {
            job.state() == JobState::Paused && job.bytes_sent() == 32
        })
        .await;
    assert!(
        job.remote().is_some(),
        "a paused job keeps its remote upload"
    );
    core.service
        .resume(Selection {
            posts: Vec::new(),
            ids: vec![id],
            all: false,
            now: false,
        })
        .await
        .expect("resume");
    for _ in 0..4 {
        chunks.pass_one();
    }
    core.until_state(id, JobState::Published).await;
    assert_eq!(core.received(id), core.content("pause.mp4"));
    // The same remote upload went on from byte 32.
    assert_eq!(core.fake.calls_to(Step::Open).len(), 2);
    assert!(core.fake.discarded().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_job_active_at_shutdown_resumes_after_a_restart() {
    let core = Core::start(FakeDestination::new(CHUNK, false), |_| {});
    let mut chunks = core.fake.gate(Step::SendChunk);
    let id = core.add("restart.mp4", 64).await;
    Core::held_at(&mut chunks, 2).await;
    assert_eq!(core.job(id).state(), JobState::Uploading);
    let (data, files, fake) = core.stop().await;
    drop(chunks);
    fake.ungate(Step::SendChunk);
    let shutdown = CancellationToken::new();
    // The remote side outlives the daemon: the same fake serves the restarted service.
    let service = service_over(data.path(), fake.clone(), shutdown.clone(), |_| {});
    let core = Core {
        service,
        fake,
        shutdown,
        data,
        files,
    };
    let job = core.until_state(id, JobState::Published).await;
    let history = core.history(id);
    assert!(
        history
            .iter()
            .any(|entry| entry.from == Some(JobState::Uploading) && entry.to == JobState::Queued),
        "{history:?}"
    );
    assert_eq!(job.bytes_sent(), 64);
    assert_eq!(core.received(id), core.content("restart.mp4"));
}

/// The whole daemon in-process: `run_with` over the fake destination, driven through the
/// control socket like `upqctl` drives it, then shut down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_runs_in_process_over_the_fake_destination() {
    let data = tempfile::tempdir().expect("a temp dir");
    let files = tempfile::tempdir().expect("a temp dir");
    let file = files.path().join("in-process.mp4");
    let content: Vec<u8> = (0..100u8).collect();
    std::fs::write(&file, &content).expect("a source file");
    let fake = Arc::new(FakeDestination::new(CHUNK, true));
    let destination: Arc<dyn Destination> = fake.clone();
    let destinations: Destinations = [("fake".to_string(), destination)].into_iter().collect();
    let shutdown = CancellationToken::new();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let daemon = tokio::spawn(crate::run_with(
        config(data.path(), |_| {}),
        move |_, _| Ok(destinations),
        shutdown.clone(),
        Arc::new(tokio::sync::Notify::new()),
        move |ready: &crate::Ready| {
            let _ = ready_tx.send(ready.socket.clone());
        },
    ));
    let socket = tokio::time::timeout(Duration::from_secs(10), ready_rx)
        .await
        .expect("upqd is ready in time")
        .expect("upqd says where its socket is");
    let path = file.display().to_string();
    let view = tokio::task::spawn_blocking(move || {
        let mut client = upq_tests::client::Client::connect(&socket).expect("the socket answers");
        let added = client
            .call("add", Some(serde_json::json!({ "file": path })))
            .expect("a response")
            .expect("add succeeds");
        let id = added["id"].as_u64().expect("an id");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let view = client.show(id).expect("show");
            if view.state == JobState::Published || std::time::Instant::now() > deadline {
                return view;
            }
            // Each show is a round trip through the daemon: the wait is on its answer.
            std::thread::yield_now();
        }
    })
    .await
    .expect("the client thread");
    assert_eq!(view.state, JobState::Published, "{view:?}");
    assert_eq!(view.remote.as_deref(), Some("fake:1"));
    assert_eq!(
        fake.received(&crate::job::RemoteSession(serde_json::json!({ "fake": 1 }))),
        Some(content)
    );
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), daemon)
        .await
        .expect("upqd stops in time")
        .expect("the daemon task")
        .expect("upqd stops cleanly");
}

/// A post held for a release together, with a job whose remote upload expires (as TikTok's
/// upload_url does): that job starts only once the other is ready, saying what it waits
/// for, and both are released together.
#[tokio::test(start_paused = true)]
async fn a_post_s_job_whose_upload_expires_starts_once_the_others_are_ready() {
    let expiring = Arc::new(
        FakeDestination::new(CHUNK, false).with_upload_lifetime(Duration::from_secs(3600)),
    );
    let core = Core::start_with(
        FakeDestination::new(CHUNK, true),
        vec![("expiring", expiring.clone())],
        |daemon| daemon.max_active = 4,
    );
    let mut chunks = core.fake.gate(Step::SendChunk);
    let file = core.file("together.mp4", 40);
    let post = core
        .service
        .add_post(upq_proto::AddPostRequest {
            file: file.display().to_string(),
            destinations: vec!["fake".into(), "expiring".into()],
            options: upq_proto::AddOptions {
                hold: true,
                ..Default::default()
            },
            overrides: Default::default(),
            all_or_nothing: false,
        })
        .await
        .expect("the post is queued");
    let (keeps, expires) = (post.jobs[0].id, post.jobs[1].id);

    // The keeping job is under way, slots are free, and the expiring job still waits.
    Core::held_at(&mut chunks, 1).await;
    let view = core.service.show(expires).expect("show");
    assert_eq!(view.state, JobState::Queued);
    assert_eq!(
        view.waiting.as_deref(),
        Some("job 1 of p1 to be ready: expiring's upload expires 1h after it starts, so it starts last")
    );
    assert!(expiring.calls().is_empty(), "{:?}", expiring.calls());

    core.fake.ungate(Step::SendChunk);
    core.until_state(keeps, JobState::Held).await;
    let ready = Instant::now();
    core.until_state(expires, JobState::Held).await;
    let opened = expiring.calls_to(Step::Open);
    assert_eq!(opened.len(), 1);
    assert!(opened[0].at >= ready, "it started once the other was ready");
    assert_eq!(core.service.show(expires).expect("show").waiting, None);

    core.service
        .publish_targets(&[], &[post.id])
        .await
        .expect("publish p1");
    core.until_state(keeps, JobState::Published).await;
    core.until_state(expires, JobState::Published).await;
}
