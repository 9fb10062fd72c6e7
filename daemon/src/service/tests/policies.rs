//! The clock's policies in the core, on tokio's paused time and a UTC wall clock (the
//! service tests' clock starts on 2026-03-01, a Sunday, at 12:00): the rate timetable and
//! `limit`, the upload hours, and `--now`.

use std::time::Duration;

use tokio::time::Instant;
use upq_proto::{JobState, Selection};

use super::{Core, CHUNK};
use crate::destinations::fake::{FakeDestination, Step};
use crate::policy::Timetable;

const KIB: u64 = 1024;

fn rates(text: &str) -> Timetable<u64> {
    Timetable::parse_rates(text, crate::config::parse_size).expect("a timetable")
}

fn hours(text: &str) -> Timetable<bool> {
    Timetable::parse_hours(text).expect("upload hours")
}

/// Bytes the fake received per second between `from` and `to` (from the start of the
/// run), by the times its chunks arrived.
fn rate_between(fake: &FakeDestination, start: Instant, from: u64, to: u64, chunk: u64) -> f64 {
    let chunks = fake
        .calls_to(Step::SendChunk)
        .iter()
        .filter(|call| {
            let at = call.at.duration_since(start).as_secs_f64();
            at >= from as f64 && at < to as f64
        })
        .count() as u64;
    (chunks * chunk) as f64 / (to - from) as f64
}

/// Each period of the timetable holds its rate, within 10%, measured by what arrived;
/// the change comes at the boundary without a restart.
#[tokio::test(start_paused = true)]
async fn each_period_of_the_rate_timetable_holds_its_rate() {
    const PIECE: u64 = 16 * KIB;
    let core = Core::start(FakeDestination::new(PIECE, false), |daemon| {
        daemon.rate_limit = rates("12:00,64KiB 12:01,256KiB 13:00,off");
    });
    let start = Instant::now();
    assert_eq!(core.service.inner.limiter.rate(), 64 * KIB);
    // 3.75 MiB go in the first minute, the other 4.25 MiB in about 17 s after it.
    let id = core.add("paced.mp4", (8 * 1024 * KIB) as usize).await;
    core.until_state(id, JobState::Published).await;
    let first = rate_between(&core.fake, start, 2, 58, PIECE);
    let second = rate_between(&core.fake, start, 62, 74, PIECE);
    for (measured, limit) in [(first, 64 * KIB), (second, 256 * KIB)] {
        let ratio = measured / limit as f64;
        assert!(
            (0.9..=1.1).contains(&ratio),
            "{measured:.0} B/s under a {limit} B/s limit"
        );
    }
    assert_eq!(core.received(id), core.content("paced.mp4"));
}

/// `limit` holds until the timetable's next change, or for `--until`; then the
/// timetable's rate is back.
#[tokio::test(start_paused = true)]
async fn a_limit_holds_until_the_timetable_changes_or_its_time_is_up() {
    let core = Core::start(FakeDestination::new(CHUNK, false), |daemon| {
        daemon.rate_limit = rates("12:00,1MiB 12:10,2MiB");
    });
    let (rate, until) = core.service.set_rate_limit(5 * KIB, None);
    assert_eq!(rate, 5 * KIB);
    assert_eq!(
        until,
        Some(super::start_time() + chrono::Duration::minutes(10))
    );
    assert_eq!(core.service.status().rate_limit_until, until);
    tokio::time::sleep(Duration::from_secs(9 * 60)).await;
    assert_eq!(core.service.inner.limiter.rate(), 5 * KIB);
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(
        core.service.inner.limiter.rate(),
        2 * 1024 * KIB,
        "the timetable's again"
    );
    assert_eq!(core.service.status().rate_limit_until, None);

    core.service
        .set_rate_limit(7 * KIB, Some(Duration::from_secs(30)));
    tokio::time::sleep(Duration::from_secs(29)).await;
    assert_eq!(core.service.inner.limiter.rate(), 7 * KIB);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(core.service.inner.limiter.rate(), 2 * 1024 * KIB);
}

/// Outside the upload hours a job waits as `queued`, saying why and when they open, with
/// no attempt counted; at the opening it runs. `add --now` runs at once.
#[tokio::test(start_paused = true)]
async fn outside_the_upload_hours_jobs_wait_and_now_ones_do_not() {
    let core = Core::start(FakeDestination::new(CHUNK, false), |daemon| {
        daemon.upload_hours = Some(hours("22:00-07:00"));
    });
    let queued = Instant::now();
    let waiting = core.add("tonight.mp4", 40).await;
    let urgent = core
        .add_with("urgent.mp4", 40, |request| request.options.now = true)
        .await;
    core.until_state(urgent, JobState::Published).await;
    let view = core.service.show(waiting).expect("show");
    assert_eq!(view.state, JobState::Queued, "{:?}", view.history);
    assert_eq!(
        view.waiting.as_deref(),
        Some("outside upload_hours (opens 22:00)")
    );
    let error = view.last_error.expect("the policy's kind");
    assert_eq!(error.kind, "policy");
    assert_eq!(view.attempts, 0);
    assert_eq!(
        core.fake.calls_to(Step::Open).len(),
        1,
        "only the --now job was opened, though a slot was free"
    );

    let job = core
        .until_state_after_hours(waiting, JobState::Published)
        .await;
    let waited = Instant::now().duration_since(queued);
    assert!(
        waited >= Duration::from_secs(10 * 3600) && waited < Duration::from_secs(10 * 3600 + 5),
        "it ran at 22:00, ten hours after 12:00: {waited:?}"
    );
    assert_eq!(job.attempts(), 0);
}

/// An upload under way when the hours close stops at its next piece and waits as `queued`
/// (not a failure, not a stall); when they open again it goes on from the bytes the
/// destination confirmed. `resume --now` lets a waiting job go at once.
#[tokio::test(start_paused = true)]
async fn an_upload_under_way_when_the_hours_close_waits_and_goes_on() {
    let core = Core::start(FakeDestination::new(CHUNK, false), |daemon| {
        daemon.upload_hours = Some(hours("11:00-12:30"));
    });
    let mut chunks = core.fake.gate(Step::SendChunk);
    let id = core.add("long.mp4", (CHUNK * 4) as usize).await;
    Core::held_at(&mut chunks, 2).await;
    // 12:30: the hours close while the third chunk waits at the gate.
    tokio::time::sleep(Duration::from_secs(30 * 60)).await;
    let job = core.until_state(id, JobState::Queued).await;
    assert_eq!(
        job.bytes_sent(),
        2 * CHUNK,
        "what the destination confirmed"
    );
    assert_eq!((job.attempts(), job.stalls()), (0, 0));
    let history = core.history(id);
    let last = history.last().expect("an entry");
    assert!(
        last.reason
            .starts_with("waiting: outside upload_hours (opens 11:00); at least 32 B are safe"),
        "{}",
        last.reason
    );
    core.fake.ungate(Step::SendChunk);

    // `resume --now` lets it go without waiting for 11:00.
    let resumed = Instant::now();
    core.service
        .resume(Selection {
            ids: vec![id],
            now: true,
            ..Selection::default()
        })
        .await
        .expect("resume --now");
    let job = core.until_state(id, JobState::Published).await;
    assert!(Instant::now().duration_since(resumed) < Duration::from_secs(60));
    assert!(job.ignores_policies());
    assert_eq!(core.received(id), core.content("long.mp4"));
    // The change without a change of state has an entry of its own; none is written over.
    let reasons: Vec<String> = core.history(id).into_iter().map(|e| e.reason).collect();
    let held = reasons
        .iter()
        .position(|r| r.starts_with("waiting: outside upload_hours"));
    let now = reasons
        .iter()
        .position(|r| r.starts_with("resumed with --now"));
    assert!(
        matches!((held, now), (Some(held), Some(now)) if held < now),
        "{reasons:#?}"
    );
    let resent: Vec<u64> = core
        .fake
        .calls_to(Step::SendChunk)
        .iter()
        .filter_map(|call| call.offset)
        .collect();
    assert_eq!(
        resent.iter().filter(|&&offset| offset < 2 * CHUNK).count(),
        2,
        "the confirmed chunks were not sent again: {resent:?}"
    );
}

fn metered(facts: &mut crate::policy::Facts, yes: bool) {
    facts.metered = yes;
    facts.metered_source = crate::policy::Source::NetworkManager;
}

fn connectivity(facts: &mut crate::policy::Facts, state: crate::policy::Connectivity) {
    facts.connectivity = state;
    facts.connectivity_source = crate::policy::Source::NetworkManager;
}

/// A `limit:` reaction lowers the rate in force while its fact holds, never raises it,
/// and the rate is back the moment the fact ends.
#[tokio::test(start_paused = true)]
async fn a_fact_s_limit_lowers_the_rate_while_it_holds() {
    let core = Core::start(FakeDestination::new(CHUNK, false), |daemon| {
        daemon.rate_limit = rates("1MiB");
        daemon.on_metered = crate::policy::Reaction::Limit(64 * KIB);
        daemon.on_battery = crate::policy::Reaction::Limit(4 * 1024 * KIB);
    });
    let limiter = core.service.inner.limiter.clone();
    let settle = || tokio::time::sleep(Duration::from_millis(1));
    core.service.update_facts(|facts| metered(facts, true));
    settle().await;
    assert_eq!(limiter.rate(), 64 * KIB);
    core.service.update_facts(|facts| facts.on_battery = true);
    settle().await;
    assert_eq!(limiter.rate(), 64 * KIB, "the lowest limit holds");
    core.service.update_facts(|facts| metered(facts, false));
    settle().await;
    assert_eq!(
        limiter.rate(),
        1024 * KIB,
        "a limit above the configured rate is no raise"
    );
    core.service.update_facts(|facts| facts.on_battery = false);
    core.service.set_rate_limit(0, None);
    core.service.update_facts(|facts| metered(facts, true));
    settle().await;
    assert_eq!(limiter.rate(), 64 * KIB, "under `limit none` too");
    assert_eq!(
        core.service.status().policies,
        vec!["uploads at most 64 KiB/s: metered connection (on_metered = limit:64KiB)".to_string()]
    );
}

/// `--now` lets a job past a metered pause, but no job goes without a network; one that
/// fails while the network is down counts no attempt and goes when it is back.
#[tokio::test(start_paused = true)]
async fn now_jobs_pass_policies_but_not_a_lost_network() {
    use crate::policy::Connectivity;
    let core = Core::start(FakeDestination::new(CHUNK, false), |daemon| {
        daemon.on_metered = crate::policy::Reaction::Pause;
    });
    core.service.update_facts(|facts| metered(facts, true));
    let urgent = core
        .add_with("urgent.mp4", 40, |request| request.options.now = true)
        .await;
    core.until_state(urgent, JobState::Published).await;
    let waiting = core.add("later.mp4", 40).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let view = core.service.show(waiting).expect("show");
    assert_eq!(view.state, JobState::Queued);
    assert_eq!(
        view.waiting.as_deref(),
        Some("metered connection (on_metered = pause)")
    );

    core.service
        .update_facts(|facts| connectivity(facts, Connectivity::None));
    let offline = core
        .add_with("offline.mp4", 40, |request| request.options.now = true)
        .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let view = core.service.show(offline).expect("show");
    assert_eq!(
        view.waiting.as_deref(),
        Some("no connectivity (NetworkManager)"),
        "--now does not make a network"
    );
    // A request that fails as the network goes (before NetworkManager says so) ...
    core.service
        .update_facts(|facts| connectivity(facts, Connectivity::Full));
    core.fake.fail_next(Step::SendChunk, super::transient());
    let mut chunks = core.fake.gate(Step::SendChunk);
    chunks.arrived().await;
    core.service
        .update_facts(|facts| connectivity(facts, Connectivity::None));
    chunks.pass_one();
    let job = core
        .until(offline, "waited for the network", |job| {
            job.last_error().is_some() && job.state() != JobState::Uploading
        })
        .await;
    assert_eq!(job.attempts(), 0, "... counts no attempt");
    core.fake.ungate(Step::SendChunk);
    let back = Instant::now();
    core.service
        .update_facts(|facts| connectivity(facts, Connectivity::Full));
    let job = core.until_state(offline, JobState::Published).await;
    assert!(Instant::now().duration_since(back) < Duration::from_secs(1));
    assert_eq!(job.attempts(), 0);
    assert_eq!(core.received(offline), core.content("offline.mp4"));
}

/// A day-of-week timetable changes at midnight on tokio's clock: Sunday's rate holds until
/// Monday 00:00 (twelve hours after the start), then Monday's, then the weekdays' again.
#[tokio::test(start_paused = true)]
async fn a_day_of_the_week_timetable_changes_at_midnight() {
    let core = Core::start(FakeDestination::new(CHUNK, false), |daemon| {
        daemon.rate_limit = rates("Sat,Sun 00:00,off Mon 00:00,64KiB Tue-Fri 00:00,1MiB");
    });
    let limiter = core.service.inner.limiter.clone();
    assert_eq!(limiter.rate(), 0, "Sunday: no limit");
    tokio::time::sleep(Duration::from_secs(12 * 3600 - 1)).await;
    assert_eq!(limiter.rate(), 0, "Sunday 23:59:59");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(limiter.rate(), 64 * KIB, "Monday 00:00:01");
    tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
    assert_eq!(limiter.rate(), 1024 * KIB, "Tuesday");
}
