//! `429 Too Many Requests` with `Retry-After: 2` on a PATCH: upqd waits at least two
//! seconds before its next request, shows when it will try again, and then completes.

use std::time::Duration;

use upq_tests::tus::{assert_stored_copy, FAST_RETRY};
use upq_tests::{JobState, Rule, TestEnv, MIB};
use upq_tests::{TusKeys, TusRig};

#[test]
fn retry_after_on_429_is_honoured() {
    let env = TestEnv::new("tus-retry-after");
    let keys = TusKeys {
        daemon: "",
        retry: FAST_RETRY,
        tus: "chunk_size = \"2MiB\"",
    };
    let (run, _daemon) = TusRig::shimmed(&env, keys)
        .with_events()
        .start("patience.mp4", 8 * MIB);

    // The second PATCH is refused: the upload is under way, with progress to keep.
    let rule = run.shim().add_rule(
        Rule::respond("PATCH", "/files/", 429)
            .header("Retry-After", "2")
            .skip(1),
    );
    let id = env.add(&run.video, &["--to", "tus"]);
    env.wait_published(id, 60);
    assert_eq!(run.shim().hits(rule), 1);

    let transitions = run.events().transitions(id);
    let log = run.events().describe(id);
    let retrying = transitions
        .iter()
        .find(|t| t.to == JobState::Retrying)
        .unwrap_or_else(|| panic!("no retrying state:\n{log}"));
    let error = retrying.job.last_error.as_ref().expect("a last_error");
    assert_eq!(error.kind, "http", "{error:?}");
    assert!(error.message.contains("429"), "{error:?}");
    let next_attempt_at = retrying
        .job
        .next_attempt_at
        .unwrap_or_else(|| panic!("retrying without next_attempt_at:\n{log}"));

    let job = env.show(id);
    let history = job.history.as_deref().unwrap();
    let retry_entry = history
        .iter()
        .position(|e| e.to == JobState::Retrying)
        .expect("a retrying entry in the history");
    let resumed = history[retry_entry..]
        .iter()
        .find(|e| e.to == JobState::Uploading)
        .expect("an uploading entry after the retry");
    let waited = (resumed.at - history[retry_entry].at).to_std().unwrap();
    assert!(
        waited >= Duration::from_millis(1950),
        "uploading again {waited:?} after retrying; Retry-After said 2 s"
    );
    assert!(
        next_attempt_at >= history[retry_entry].at + chrono::Duration::milliseconds(1950),
        "next_attempt_at {next_attempt_at} is not 2 s after {}",
        history[retry_entry].at
    );

    // On the wire: nothing reached the server for 2 s after the 429.
    let records = run.shim().records();
    let limited = records
        .iter()
        .position(|r| r.status == Some(429))
        .expect("the 429 is recorded");
    let next = records
        .get(limited + 1)
        .unwrap_or_else(|| panic!("no request after the 429:\n{}", run.shim().describe()));
    let gap = (next.at - records[limited].at).to_std().unwrap();
    assert!(
        gap >= Duration::from_secs(2),
        "next request {gap:?} after the 429:\n{}",
        run.shim().describe()
    );
    assert_stored_copy(&run.server.only_upload(), &run.video);
}
