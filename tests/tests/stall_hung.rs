//! A tus server that hangs mid-upload (proxy blackhole): the stall detector, not the I/O timeout,
//! ends the attempt within 3 s, and afterwards the upload resumes at the server's offset.

use std::time::{Duration, Instant};

use chrono::Utc;
use upq_tests::events::Transition;
use upq_tests::tus::{assert_stored_copy, FAST_RETRY};
use upq_tests::{describe_history, resume_offsets, wait_for, EventLog, JobState, TestEnv, MIB};
use upq_tests::{TusKeys, TusRig};

const CHUNK: u64 = 4 * MIB;

/// The first change of job `id` out of `uploading` at or after `since`.
fn left_uploading(events: &EventLog, id: u64, since: chrono::DateTime<Utc>) -> Option<Transition> {
    events
        .transitions(id)
        .into_iter()
        .find(|t| t.received_at >= since && t.from == Some(JobState::Uploading))
}

#[test]
fn a_hung_server_is_abandoned_by_the_stall_detector_then_resumed() {
    let env = TestEnv::new("stall-hung");
    // The I/O timeout is far away, so only the stall detector can end the hung attempt.
    let keys = TusKeys {
        daemon: "stall_timeout = \"2s\"\nrate_limit = \"48MiB\"",
        retry: FAST_RETRY,
        tus: "chunk_size = \"4MiB\"\nio_timeout = \"60s\"\nconnect_timeout = \"5s\"",
    };
    let (run, _daemon) = TusRig::proxied(&env, keys)
        .with_events()
        .start("hung.mp4", 96 * MIB);

    let (id, _) = run.add_until(CHUNK);
    run.proxy().blackhole();
    let hung_at = Instant::now();
    let hung_at_utc = Utc::now();
    // No byte moves either way from here, so no acknowledgement can still arrive.
    let acknowledged = env.job(id).bytes_sent;
    assert!(
        acknowledged < run.video.size,
        "finished before the server hung"
    );

    let left = wait_for(
        Duration::from_secs(30),
        format!("job {id} to leave uploading after the server hung"),
        || left_uploading(run.events(), id, hung_at_utc),
    );
    let took = hung_at.elapsed();
    let latency = (left.received_at - hung_at_utc)
        .to_std()
        .unwrap_or_default();
    eprintln!("the hung attempt ended {latency:?} after the hang");
    assert_eq!(
        left.to,
        JobState::Retrying,
        "a stall is retried:\n{}",
        run.events().describe(id)
    );
    let error = left
        .job
        .last_error
        .clone()
        .expect("retrying has a last_error");
    assert_eq!(
        error.kind,
        "stalled",
        "{error:?}\n{}",
        run.events().describe(id)
    );
    assert!(
        error.message.starts_with("no progress for 2 s"),
        "the message says how long nothing moved: {error:?}"
    );
    assert!(
        latency <= Duration::from_secs(3),
        "the hung attempt was abandoned {latency:?} after the server hung (stall_timeout 2s):\n{}",
        run.events().describe(id)
    );
    assert!(took < Duration::from_secs(30));
    assert!(left.job.stalls >= 1, "the stall is counted: {:?}", left.job);
    // The episode lasts while the server hangs.
    let shown = env.show(id);
    assert!(
        shown.stalls >= 1,
        "show --json reports the stall episode while it lasts: stalls {}\n{}",
        shown.stalls,
        describe_history(&shown)
    );
    assert!(!shown.state.is_terminal(), "{shown:?}");

    run.proxy().forward();
    env.wait_published(id, 120);
    assert_stored_copy(&run.server.only_upload(), &run.video);

    let job = env.show(id);
    let history = describe_history(&job);
    assert_eq!(job.stalls, 0, "progress ends the episode:\n{history}");
    let resumed: Vec<u64> = resume_offsets(&job)
        .into_iter()
        .filter(|(at, _)| *at >= hung_at_utc)
        .map(|(_, offset)| offset)
        .collect();
    let Some(&offset) = resumed.first() else {
        panic!("no 'resuming at byte N' after the stall:\n{history}");
    };
    assert!(
        offset >= acknowledged,
        "resumed at {offset}, below the {acknowledged} bytes acknowledged before the hang:\n{history}"
    );
    assert!(
        job.bytes_transferred <= job.size + CHUNK,
        "{} bytes transferred for a {}-byte file: more than one chunk was sent again\n{history}",
        job.bytes_transferred,
        job.size
    );
}
