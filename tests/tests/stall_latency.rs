//! Stall detection latency over 20 hangs through one daemon: median and max from the hang to
//! the job leaving `uploading` are printed (`--nocapture`); each must be within 3 s.

use std::time::Duration;

use chrono::Utc;
use upq_tests::tus::{wait_progress, FAST_RETRY};
use upq_tests::{tus_config, wait_for, EventLog, JobState, Proxy, TestEnv, TusServer, MIB};

const RUNS: usize = 20;
const STALL_TIMEOUT: Duration = Duration::from_secs(2);
const BOUND: Duration = Duration::from_secs(3);

#[test]
fn stall_detection_latency_over_twenty_hangs() {
    let env = TestEnv::new("stall-latency");
    let server = TusServer::start(&env);
    let proxy = Proxy::start(server.addr());
    env.write_config(&tus_config(
        &proxy.url("/files/"),
        &format!(
            "stall_timeout = \"{}s\"\nrate_limit = \"16MiB\"",
            STALL_TIMEOUT.as_secs()
        ),
        FAST_RETRY,
        "chunk_size = \"1MiB\"\nio_timeout = \"60s\"\nconnect_timeout = \"5s\"",
    ));
    let _daemon = env.start_daemon();
    let events = EventLog::subscribe(&env);

    let mut latencies = Vec::with_capacity(RUNS);
    for run in 0..RUNS {
        let video = env.source(&format!("latency-{run:02}.mp4"), 8 * MIB);
        let id = env.add(&video, &["--to", "tus"]);
        wait_progress(&env, id, MIB, Duration::from_secs(60));
        proxy.blackhole();
        let hung_at = Utc::now();
        let left = wait_for(
            Duration::from_secs(30),
            format!("run {run}: job {id} to leave uploading after the hang"),
            || {
                events
                    .transitions(id)
                    .into_iter()
                    .find(|t| t.received_at >= hung_at && t.from == Some(JobState::Uploading))
            },
        );
        let latency = (left.received_at - hung_at).to_std().unwrap_or_default();
        let error = left.job.last_error.clone();
        assert!(
            left.to == JobState::Retrying && error.as_ref().is_some_and(|e| e.kind == "stalled"),
            "run {run}: the hang ends the attempt as a stall:\n{}",
            events.describe(id)
        );
        latencies.push(latency);
        proxy.forward();
        env.wait_published(id, 120);
    }

    let mut sorted = latencies.clone();
    sorted.sort();
    let median = (sorted[RUNS / 2 - 1] + sorted[RUNS / 2]) / 2;
    let max = *sorted.last().expect("runs");
    let min = sorted[0];
    eprintln!(
        "stall detection after a hang, stall_timeout {STALL_TIMEOUT:?}, {RUNS} runs: \
         median {:.3} s, max {:.3} s, min {:.3} s",
        median.as_secs_f64(),
        max.as_secs_f64(),
        min.as_secs_f64()
    );
    eprintln!(
        "each run (s): {}",
        latencies
            .iter()
            .map(|l| format!("{:.3}", l.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(" ")
    );
    for (run, latency) in latencies.iter().enumerate() {
        assert!(
            *latency <= BOUND,
            "run {run}: the hang was noticed after {latency:?}, over {BOUND:?}; all: {latencies:?}"
        );
        assert!(
            *latency >= STALL_TIMEOUT - Duration::from_millis(100),
            "run {run}: a stall after {latency:?}, before stall_timeout: {latencies:?}"
        );
    }
}
