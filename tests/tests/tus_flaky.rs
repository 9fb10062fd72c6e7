//! A flaky network between upqd and the tus server: connections reset in the middle of a
//! chunk, a server that hangs, and one that answers 500 once; each time upqd retries and the
//! server ends up with the exact file.

use std::time::{Duration, Instant};

use upq_tests::tus::{assert_stored_copy, tus_config_named, wait_state, FAST_RETRY};
use upq_tests::{
    describe_history, history_to, resume_offsets, JobState, Rule, Shim, TestEnv, TusServer, MIB,
};
use upq_tests::{Daemon, TusKeys, TusRig, TusRun};

const CHUNK: u64 = 4 * MIB;

/// An upload through the proxy with 2 s I/O and connect timeouts, 8 MiB of it acknowledged.
fn under_way_with_short_timeouts<'e>(
    env: &'e TestEnv,
    video: &str,
    size: u64,
) -> (TusRun<'e>, Daemon<'e>, u64) {
    let keys = TusKeys {
        daemon: "rate_limit = \"16MiB\"",
        retry: FAST_RETRY,
        tus: "chunk_size = \"4MiB\"\nio_timeout = \"2s\"\nconnect_timeout = \"2s\"",
    };
    let (run, daemon) = TusRig::proxied(env, keys).with_events().start(video, size);
    let (id, _) = run.add_until(8 * MIB);
    (run, daemon, id)
}

#[test]
fn three_resets_mid_chunk_are_retried_with_backoff() {
    let env = TestEnv::new("tus-flaky");
    let keys = TusKeys {
        daemon: "",
        retry: FAST_RETRY,
        tus: "chunk_size = \"4MiB\"",
    };
    let (run, _daemon) = TusRig::proxied(&env, keys)
        .with_events()
        .start("flaky.mp4", 24 * MIB);

    // Each cut lands 1 MiB into whatever the daemon sends: inside a PATCH body.
    run.proxy().cut_after(MIB, 3);
    let id = env.add(&run.video, &["--to", "tus"]);
    env.wait_published(id, 120);
    assert_eq!(run.proxy().cuts_done(), 3);

    let job = env.show(id);
    let history = describe_history(&job);
    let retries = history_to(&job, JobState::Retrying);
    assert_eq!(
        retries.len(),
        3,
        "three failed attempts expected:\n{history}"
    );
    for transition in run
        .events()
        .transitions(id)
        .iter()
        .filter(|t| t.to == JobState::Retrying)
    {
        assert!(
            transition.job.next_attempt_at.is_some(),
            "retrying without next_attempt_at:\n{}",
            run.events().describe(id)
        );
        assert!(transition.job.last_error.is_some());
    }
    // Each retry asked the server where it stood (cuts leave partial chunks behind).
    let resumes = resume_offsets(&job);
    assert!(
        resumes.len() >= 3,
        "each retry resumes at a confirmed byte:\n{history}"
    );
    assert_stored_copy(&run.server.only_upload(), &run.video);
    assert!(
        job.bytes_transferred <= job.size + 3 * CHUNK,
        "{} bytes transferred for {}",
        job.bytes_transferred,
        job.size
    );
}

#[test]
fn a_hung_server_is_abandoned_after_io_timeout_then_resumed() {
    let env = TestEnv::new("tus-hung");
    let (run, _daemon, id) = under_way_with_short_timeouts(&env, "hung.mp4", 48 * MIB);
    run.proxy().blackhole();
    let hung_at = Instant::now();
    let retrying = wait_state(&env, id, JobState::Retrying, Duration::from_secs(10));
    let took = hung_at.elapsed();
    assert!(
        took < Duration::from_secs(6),
        "the attempt was abandoned {took:?} after the server hung (io_timeout 2s)"
    );
    let error = retrying.last_error.expect("retrying has a last_error");
    assert!(
        error.message.to_lowercase().contains("timed out")
            || error.message.to_lowercase().contains("timeout"),
        "the error should say the request timed out: {error:?}"
    );

    run.proxy().forward();
    env.wait_published(id, 120);
    assert_stored_copy(&run.server.only_upload(), &run.video);
    assert!(
        !run.events().errors(id).is_empty(),
        "{}",
        run.events().describe(id)
    );
}

#[test]
fn one_500_on_a_patch_is_retried() {
    let env = TestEnv::new("tus-500");
    let keys = TusKeys {
        daemon: "",
        retry: FAST_RETRY,
        tus: "chunk_size = \"2MiB\"",
    };
    let (run, _daemon) = TusRig::shimmed(&env, keys)
        .with_events()
        .start("five-hundred.mp4", 8 * MIB);

    let rule = run
        .shim()
        .add_rule(Rule::respond("PATCH", "/files/", 500).skip(1));
    let id = env.add(&run.video, &["--to", "tus"]);
    env.wait_published(id, 60);
    assert_eq!(run.shim().hits(rule), 1);
    let errors = run.events().errors(id);
    assert_eq!(errors.len(), 1, "{}", run.events().describe(id));
    assert_eq!(errors[0].kind, "http", "{errors:?}");
    assert!(errors[0].message.contains("500"), "{errors:?}");
    assert_stored_copy(&run.server.only_upload(), &run.video);
}

#[test]
fn unauthorized_fails_at_once_naming_the_destination() {
    let env = TestEnv::new("tus-401");
    let server = TusServer::start(&env);
    let shim = Shim::start(server.addr());
    env.write_config(&tus_config_named(
        "studio",
        &shim.endpoint(),
        "",
        FAST_RETRY,
        "chunk_size = \"1MiB\"",
    ));
    let video = env.source("denied.mp4", 3 * MIB);
    let _daemon = env.start_daemon();

    shim.add_rule(Rule::respond("POST", "/files", 401).always());
    let id = env.add(&video, &["--to", "studio"]);
    let failed = wait_state(&env, id, JobState::Failed, Duration::from_secs(30));
    let error = failed.last_error.clone().expect("failed has a last_error");
    assert_eq!(error.kind, "auth", "{error:?}");
    assert!(
        error.message.contains("studio"),
        "the message names the destination: {error:?}"
    );
    let job = env.show(id);
    assert!(
        history_to(&job, JobState::Retrying).is_empty(),
        "401 is not retried:\n{}",
        describe_history(&job)
    );
    assert_eq!(shim.requests("POST").len(), 1, "{}", shim.describe());
}

#[test]
fn a_server_that_stays_down_is_retried_with_backoff() {
    let env = TestEnv::new("tus-down");
    let (run, _daemon, id) = under_way_with_short_timeouts(&env, "down.mp4", 32 * MIB);
    run.proxy().refuse();
    let refused_before = run.proxy().refused();
    // Each failed attempt is counted and recorded, with a wait before the next one.
    let deadline = Instant::now() + Duration::from_secs(30);
    let job = loop {
        let job = env.job(id);
        if job.attempts >= 3 {
            break job;
        }
        assert!(
            Instant::now() < deadline,
            "no three failed attempts within 30 s while the server is down: attempts {}, state {}, \
             {} connections refused meanwhile, last_error {:?}\n{}",
            job.attempts,
            job.state,
            run.proxy().refused() - refused_before,
            job.last_error,
            run.events().describe(id)
        );
        std::thread::sleep(upq_tests::wait::POLL_INTERVAL);
    };
    let attempts_made = run.proxy().refused() - refused_before;
    assert!(
        attempts_made <= 3 * u64::from(job.attempts) + 3,
        "{attempts_made} connections for {} attempts: not backing off\n{}",
        job.attempts,
        run.events().describe(id)
    );
    assert_eq!(job.state, JobState::Retrying, "{job:?}");
    assert!(job.next_attempt_at.is_some());

    run.proxy().forward();
    env.wait_published(id, 120);
    assert_stored_copy(&run.server.only_upload(), &run.video);
    let job = env.show(id);
    assert!(
        history_to(&job, JobState::Retrying).len() >= 3,
        "{}",
        describe_history(&job)
    );
}
