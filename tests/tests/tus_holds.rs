//! The review window on a tus destination: a held job has everything but the final chunk
//! on the server; cancel then publishes nothing; `publish` sends the final chunk (the
//! commit point), after which cancel answers `too_late`.

use std::time::{Duration, Instant};

use serde_json::json;
use upq_tests::tus::{assert_stored_copy, wait_state, FAST_RETRY};
use upq_tests::{describe_history, history_to, JobState, OutputExt, TestEnv, MIB};
use upq_tests::{TusKeys, TusRig};

#[test]
fn held_keeps_the_final_chunk_back_and_cancel_publishes_nothing() {
    let env = TestEnv::new("tus-held-cancel");
    let keys = TusKeys {
        daemon: "",
        retry: FAST_RETRY,
        tus: "chunk_size = \"4MiB\"",
    };
    let (run, _daemon) = TusRig::direct(&env, keys).start("held.mp4", 10 * MIB);

    let id = env.add(&run.video, &["--to", "tus", "--hold", "--title", "Not yet"]);
    let held = wait_state(&env, id, JobState::Held, Duration::from_secs(30));
    let url = held
        .upload_url
        .clone()
        .expect("a held job shows its upload_url");
    let stored = run.server.only_upload();
    assert_eq!(
        stored.received(),
        8 * MIB,
        "everything but the final 2 MiB chunk"
    );
    assert_eq!(run.server.head(&url).upload_offset(), Some(8 * MIB));

    let started = Instant::now();
    env.ctl(["cancel", &id.to_string()])
        .assert_ok("upqctl cancel");
    assert!(started.elapsed() < Duration::from_secs(1));
    upq_tests::wait_until(
        Duration::from_secs(10),
        "the held upload to be terminated",
        || run.server.is_gone(&url),
    );
    assert_eq!(run.server.upload_count(), 0, "nothing was published");
    assert!(env.drafts().iter().any(|d| d.id == id));
    run.video.assert_unchanged();
}

#[test]
fn publish_commits_and_cancel_after_the_commit_point_is_too_late() {
    let env = TestEnv::new("tus-held-publish");
    let keys = TusKeys {
        daemon: "",
        retry: FAST_RETRY,
        tus: "chunk_size = \"4MiB\"",
    };
    let (run, _daemon) = TusRig::proxied(&env, keys).start("commit.mp4", 10 * MIB);

    let id = env.add(&run.video, &["--to", "tus", "--hold"]);
    wait_state(&env, id, JobState::Held, Duration::from_secs(30));
    // Slow the final chunk down so the job is caught past its commit point.
    run.proxy().set_delay(Duration::from_millis(100));
    env.ctl(["publish", &id.to_string()])
        .assert_ok("upqctl publish");
    wait_state(&env, id, JobState::Processing, Duration::from_secs(30));
    let refused = env.ctl(["cancel", &id.to_string()]);
    assert_eq!(refused.code(), 1, "{refused:?}");
    let said = refused.stderr_text();
    assert!(said.contains("commit point"), "{said}");
    let answer = env.with_client(|client| client.call("cancel", Some(json!({"ids": [id]}))));
    let code = match &answer {
        Ok(batch) => batch[0]["error"]["code"].clone(),
        Err(error) => error["code"].clone(),
    };
    assert_eq!(code, "too_late", "{answer:?}");
    run.proxy().set_delay(Duration::ZERO);

    env.wait_published(id, 60);
    let job = env.show(id);
    let history = describe_history(&job);
    assert!(history_to(&job, JobState::Canceled).is_empty(), "{history}");
    let committing = history_to(&job, JobState::Processing);
    assert_eq!(committing.len(), 1, "{history}");
    assert_eq!(
        committing[0].reason,
        "committing: the upload becomes public"
    );
    assert_stored_copy(&run.server.only_upload(), &run.video);
}
