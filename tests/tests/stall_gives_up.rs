//! A tus server that hangs for good, or a link that only trickles for good: after `stall_retries`
//! stalls in a row without progress the job fails with "gave up: stalled".

use std::time::Duration;

use chrono::{DateTime, Utc};
use upq_tests::fixture::STALL_LINK;
use upq_tests::tus::wait_state_explained;
use upq_tests::{describe_history, history_to, EventLog, JobState, JobView, TestEnv, MIB};
use upq_tests::{Daemon, Proxy, TusKeys, TusRig, TusRun};

/// Quick retries, so the stalls follow each other closely.
const QUICK_RETRY: &str = "max_attempts = 10\nbase_delay = \"100ms\"\nmax_delay = \"300ms\"";

/// Checks that `failed` gave up on stalls after exactly `retries` stalled attempts since `since`.
fn assert_gave_up_on_stalls(
    env: &TestEnv,
    events: &EventLog,
    failed: &JobView,
    since: DateTime<Utc>,
    retries: usize,
) {
    let id = failed.id;
    let error = failed.last_error.clone().expect("failed has a last_error");
    assert_eq!(error.kind, "stalled", "{error:?}");
    let job = env.show(id);
    let history = describe_history(&job);
    let into_failed = history_to(&job, JobState::Failed);
    let last = into_failed.last().expect("a change into failed");
    assert!(
        last.reason.starts_with("gave up: stalled"),
        "the reason says the job gave up on stalls: {:?}\n{history}",
        last.reason
    );
    assert!(
        job.stalls as usize >= retries,
        "stalls {}:\n{history}",
        job.stalls
    );
    let retried: Vec<_> = events
        .transitions(id)
        .into_iter()
        .filter(|t| t.received_at >= since && t.to == JobState::Retrying)
        .collect();
    assert_eq!(
        retried.len(),
        retries - 1,
        "stall_retries = {retries}: every stalled attempt but the last is retried:\n{}",
        events.describe(id)
    );
    assert!(
        retried.iter().all(|t| t
            .job
            .last_error
            .as_ref()
            .is_some_and(|e| e.kind == "stalled")),
        "every retry after the fault was a stall:\n{}",
        events.describe(id)
    );
    assert!(job.bytes_sent < job.size);
}

/// Starts a 32 MiB upload through the proxy with `stall_retries = retries`, waits until 2 MiB
/// are acknowledged, then applies `fault` to the link; returns the run, the daemon, the job
/// and when the fault began.
fn fault_for_good<'e>(
    env: &'e TestEnv,
    retries: u32,
    video: &str,
    fault: impl FnOnce(&Proxy),
) -> (TusRun<'e>, Daemon<'e>, u64, DateTime<Utc>) {
    let daemon_keys =
        format!("stall_timeout = \"2s\"\nstall_retries = {retries}\nrate_limit = \"16MiB\"");
    let keys = TusKeys {
        daemon: &daemon_keys,
        retry: QUICK_RETRY,
        tus: STALL_LINK,
    };
    let (run, daemon) = TusRig::proxied(env, keys)
        .with_events()
        .start(video, 32 * MIB);
    let (id, _) = run.add_until(2 * MIB);
    fault(run.proxy());
    let since = Utc::now();
    (run, daemon, id, since)
}

#[test]
fn a_server_that_stays_hung_fails_the_job_after_stall_retries() {
    let env = TestEnv::new("stall-gives-up");
    let (run, _daemon, id, hung_at) = fault_for_good(&env, 2, "gives-up.mp4", Proxy::blackhole);
    let (proxy, events) = (run.proxy(), run.events());

    // Two stalls of 2 s each with sub-second waits between them: well within 20 s.
    let failed = wait_state_explained(&env, id, JobState::Failed, Duration::from_secs(20), || {
        format!(
            "changes seen:\n{}\nproxy: {} connections, {} open",
            events.describe(id),
            proxy.connections(),
            proxy.open_connections()
        )
    });
    assert_gave_up_on_stalls(&env, events, &failed, hung_at, 2);
}

#[test]
fn a_trickle_that_never_recovers_fails_the_job_after_stall_retries() {
    let env = TestEnv::new("stall-gives-up-trickle");
    // Requests still get through (slowly); chunk bodies do not.
    let (run, _daemon, id, trickling_since) =
        fault_for_good(&env, 3, "gives-up-trickle.mp4", |proxy| {
            proxy.throttle_up(1024)
        });
    let events = run.events();

    let failed = wait_state_explained(&env, id, JobState::Failed, Duration::from_secs(30), || {
        format!("changes seen:\n{}", events.describe(id))
    });
    assert_gave_up_on_stalls(&env, events, &failed, trickling_since, 3);
}
