//! The tus destination as a user gets it, with no `chunk_size`: each attempt sends the
//! file in one PATCH and its final piece, the commit point, in another. A held job waits
//! with only that piece unsent; a connection cut in the long PATCH costs only what the
//! server had not kept.

use std::time::Duration;

use upq_tests::tus::{assert_stored_copy, wait_state, FAST_RETRY};
use upq_tests::{describe_history, resume_offsets, JobState, OutputExt, Rule, TestEnv, MIB};
use upq_tests::{TusKeys, TusRig};

/// The final piece upqd sends apart when no chunk size is configured.
const FINAL_PIECE: u64 = MIB;

fn default_keys() -> TusKeys<'static> {
    TusKeys {
        daemon: "",
        retry: FAST_RETRY,
        tus: "",
    }
}

#[test]
fn one_patch_for_the_body_and_one_for_the_final_piece_which_a_hold_keeps_back() {
    let env = TestEnv::new("tus-defaults");
    let size = 48 * MIB;
    let (run, _daemon) = TusRig::shimmed(&env, default_keys()).start("plain.mp4", size);

    let id = env.add(&run.video, &["--to", "tus", "--hold"]);
    let held = wait_state(&env, id, JobState::Held, Duration::from_secs(60));
    let log = run.shim().describe();
    let patches = run.shim().requests("PATCH");
    assert_eq!(patches.len(), 1, "one PATCH before the hold:\n{log}");
    assert_eq!(patches[0].header("upload-offset"), Some("0"), "{log}");
    assert_eq!(patches[0].body_bytes, size - FINAL_PIECE, "{log}");
    assert_eq!(held.bytes_sent, size - FINAL_PIECE);

    env.ctl(["publish", &id.to_string()])
        .assert_ok("upqctl publish");
    env.wait_published(id, 60);
    let log = run.shim().describe();
    let patches = run.shim().requests("PATCH");
    assert_eq!(
        patches.len(),
        2,
        "the final piece alone after release:\n{log}"
    );
    let offset = (size - FINAL_PIECE).to_string();
    assert_eq!(patches[1].header("upload-offset"), Some(offset.as_str()));
    assert_eq!(patches[1].body_bytes, FINAL_PIECE, "{log}");
    assert_stored_copy(&run.server.only_upload(), &run.video);
}

#[test]
fn a_cut_in_the_long_patch_resumes_where_the_server_stopped() {
    let env = TestEnv::new("tus-defaults-cut");
    let size = 64 * MIB;
    let (run, _daemon) = TusRig::proxied(&env, default_keys()).start("cut.mp4", size);

    // The cut lands 20 MiB into the connection: inside the long PATCH's body.
    run.proxy().cut_after(20 * MIB, 1);
    let id = env.add(&run.video, &["--to", "tus"]);
    env.wait_published(id, 120);
    assert_eq!(run.proxy().cuts_done(), 1);

    let job = env.show(id);
    assert_eq!(job.bytes_sent, size);
    // What the server kept of the cut PATCH was not sent again: at most what sat in
    // the sockets' buffers between upqd and the server goes twice.
    let up = run.proxy().bytes_up();
    assert!(
        up < size + 8 * MIB,
        "{up} bytes went up for a {size}-byte file"
    );
    // The next attempt went on from what the server kept of the cut PATCH: the 20 MiB
    // that crossed the proxy, less what was still in its buffers.
    let resumed = resume_offsets(&job);
    assert!(
        resumed.iter().any(|&(_, offset)| offset >= 12 * MIB),
        "no resume from what the server kept: {resumed:?}\n{}",
        describe_history(&job)
    );
    assert_stored_copy(&run.server.only_upload(), &run.video);
}

#[test]
fn a_413_to_the_long_patch_makes_the_chunks_smaller() {
    let env = TestEnv::new("tus-defaults-413");
    let size = 40 * MIB;
    let (run, _daemon) = TusRig::shimmed(&env, default_keys()).start("capped.mp4", size);
    // A proxy in front of the server that takes no body over its limit, once.
    let refusal = run.shim().add_rule(Rule::respond("PATCH", "/files/", 413));

    let id = env.add(&run.video, &["--to", "tus"]);
    env.wait_published(id, 120);
    assert_eq!(run.shim().hits(refusal), 1);
    let log = run.shim().describe();
    let patches = run.shim().requests("PATCH");
    assert!(patches.len() > 2, "smaller chunks after the 413:\n{log}");
    assert!(
        patches[1..].iter().all(|p| p.body_bytes <= 8 * MIB),
        "no PATCH after the 413 over 8 MiB:\n{log}"
    );
    let job = env.show(id);
    let history = describe_history(&job);
    assert!(
        history.contains("sending at most 8388608 bytes a request"),
        "{history}"
    );
    assert_stored_copy(&run.server.only_upload(), &run.video);
}
