//! A tus server that lies: PATCH answers without `Upload-Offset`, with a non-numeric one,
//! with one beyond what was sent, 200 instead of 204, and a POST whose Location leads
//! nowhere. Each gives a clear `last_error`, never a crash; upqd retries and completes once
//! the lie stops, and fails after `max_attempts` when it does not.

use std::time::Duration;

use upq_proto::JobError;
use upq_tests::tus::{assert_stored_copy, wait_state_explained};
use upq_tests::{
    describe_history, history_to, tus_config, Edit, EventLog, JobState, OutputExt, Rule, Shim,
    TestEnv, TusServer, MIB,
};
use upq_tests::{TusKeys, TusRig};

const RETRY: &str = "max_attempts = 10\nbase_delay = \"100ms\"\nmax_delay = \"1s\"";

/// Uploads a 12 MiB file in 4 MiB chunks with `rule` installed (it should lie once, on the
/// second PATCH); checks the error `check` expects was recorded, then that the upload
/// completed with the exact bytes and the daemon is still there.
fn lie_once(name: &str, rule: Rule, check: impl Fn(&JobError) -> bool, what: &str) {
    let env = TestEnv::new(name);
    let server = TusServer::start(&env);
    let shim = Shim::start(server.addr());
    env.write_config(&tus_config(
        &shim.endpoint(),
        "",
        RETRY,
        "chunk_size = \"4MiB\"",
    ));
    let video = env.source(&format!("{name}.mp4"), 12 * MIB);
    let mut daemon = env.start_daemon();
    let events = EventLog::subscribe(&env);

    let rule = shim.add_rule(rule);
    let id = env.add(&video, &["--to", "tus"]);
    events.wait_for_error(id, Duration::from_secs(30), what, |e| check(e));
    env.wait_published(id, 60);
    assert_eq!(shim.hits(rule), 1, "{}", shim.describe());

    let errors = events.errors(id);
    assert!(
        errors.iter().all(&check),
        "other errors than {what}: {errors:?}"
    );
    assert!(daemon.is_running(), "upqd died");
    env.ctl(["status"]).assert_ok("upqctl status");
    let job = env.show(id);
    let stored = server
        .upload(job.remote.as_deref().expect("a remote"))
        .unwrap_or_else(|| {
            panic!(
                "the published upload is not on the server:\n{}",
                describe_history(&job)
            )
        });
    assert_stored_copy(&stored, &video);
}

fn says(error: &JobError, kind: &str, words: &[&str]) -> bool {
    let message = error.message.to_lowercase();
    error.kind == kind && words.iter().any(|w| message.contains(&w.to_lowercase()))
}

#[test]
fn patch_answer_without_upload_offset() {
    lie_once(
        "tus-lie-missing",
        Rule::edit(
            "PATCH",
            "/files/",
            vec![Edit::Remove("upload-offset".into())],
        )
        .skip(1),
        |e| {
            says(e, "protocol", &["upload-offset"])
                && says(
                    e,
                    "protocol",
                    &["missing", "without", "no upload-offset", "lacks", "absent"],
                )
        },
        "a protocol error about the missing Upload-Offset",
    );
}

#[test]
fn patch_answer_with_a_non_numeric_upload_offset() {
    lie_once(
        "tus-lie-nan",
        Rule::edit(
            "PATCH",
            "/files/",
            vec![Edit::Set("upload-offset".into(), "ten".into())],
        )
        .skip(1),
        |e| {
            says(e, "protocol", &["upload-offset"])
                && says(
                    e,
                    "protocol",
                    &[
                        "\"ten\"",
                        "'ten'",
                        "ten",
                        "not a number",
                        "numeric",
                        "invalid",
                    ],
                )
        },
        "a protocol error about the non-numeric Upload-Offset",
    );
}

#[test]
fn patch_answer_claiming_more_than_was_sent() {
    // The second chunk ends at 8 MiB; the server claims 9 MiB.
    lie_once(
        "tus-lie-beyond",
        Rule::edit("PATCH", "/files/", vec![Edit::OffsetBeyond(MIB)]).skip(1),
        |e| {
            says(e, "protocol", &["offset"])
                && says(
                    e,
                    "protocol",
                    &[&(9 * MIB).to_string(), "beyond", "more than", "past"],
                )
        },
        "a protocol error about an Upload-Offset beyond what was sent",
    );
}

#[test]
fn patch_answered_200_instead_of_204() {
    lie_once(
        "tus-lie-200",
        Rule::edit("PATCH", "/files/", vec![Edit::Status(200)]).skip(1),
        |e| says(e, "http", &["200"]),
        "an http error about the 200",
    );
}

#[test]
fn post_location_that_leads_nowhere() {
    let env = TestEnv::new("tus-lie-location");
    let keys = TusKeys {
        daemon: "",
        retry: RETRY,
        tus: "chunk_size = \"4MiB\"",
    };
    let (run, mut daemon) = TusRig::shimmed(&env, keys)
        .with_events()
        .start("nowhere.mp4", 12 * MIB);

    let nowhere = run.shim().url("/files/0000000000000000nowhere");
    let rule = run.shim().add_rule(Rule::edit(
        "POST",
        "/files",
        vec![Edit::Set("location".into(), nowhere.clone())],
    ));
    let id = env.add(&run.video, &["--to", "tus"]);
    env.wait_published(id, 60);
    assert_eq!(run.shim().hits(rule), 1);

    let job = env.show(id);
    let history = describe_history(&job);
    let nowhere_path = nowhere.trim_start_matches(&run.shim().url(""));
    assert!(
        run.shim()
            .records()
            .iter()
            .any(|r| r.path == nowhere_path && r.status == Some(404)),
        "the daemon never used the Location it was given:\n{}",
        run.shim().describe()
    );
    let retries = history_to(&job, JobState::Retrying);
    assert!(
        retries.iter().any(|e| {
            let reason = e.reason.to_lowercase();
            reason.contains("gone") || reason.contains("404") || reason.contains("not found")
        }),
        "the history should say the upload was not found:\n{history}\n{}",
        run.events().describe(id)
    );
    assert_eq!(
        run.shim().requests("POST").len(),
        2,
        "a fresh upload was created:\n{}",
        run.shim().describe()
    );
    let remote = job.remote.clone().unwrap();
    assert_ne!(remote, nowhere);
    assert_stored_copy(
        &run.server.upload(&remote).expect("the real upload"),
        &run.video,
    );
    assert!(daemon.is_running());
}

#[test]
fn a_lie_that_persists_fails_the_job_after_max_attempts() {
    let env = TestEnv::new("tus-lie-persistent");
    let keys = TusKeys {
        daemon: "",
        retry: "max_attempts = 3\nbase_delay = \"100ms\"\nmax_delay = \"500ms\"",
        tus: "chunk_size = \"4MiB\"",
    };
    let (run, mut daemon) = TusRig::shimmed(&env, keys)
        .with_events()
        .start("liar.mp4", 12 * MIB);

    // Every answer that should carry the offset carries nonsense: no progress is ever confirmed.
    for method in ["PATCH", "HEAD"] {
        run.shim().add_rule(
            Rule::edit(
                method,
                "/files/",
                vec![Edit::Set("upload-offset".into(), "ten".into())],
            )
            .always(),
        );
    }
    let id = env.add(&run.video, &["--to", "tus"]);
    let failed = wait_state_explained(&env, id, JobState::Failed, Duration::from_secs(30), || {
        let records = run.shim().records();
        let heads = records.iter().filter(|r| r.method == "HEAD").count();
        let first: Vec<String> = run
            .shim()
            .describe()
            .lines()
            .take(12)
            .map(str::to_owned)
            .collect();
        format!(
            "{heads} HEAD requests reached the server; the first requests:\n{}",
            first.join("\n")
        )
    });
    let error = failed
        .last_error
        .clone()
        .expect("a failed job has its last_error");
    assert_eq!(error.kind, "protocol", "{error:?}");
    assert!(
        error.message.to_lowercase().contains("upload-offset"),
        "{error:?}"
    );
    let job = env.show(id);
    let history = describe_history(&job);
    assert_eq!(job.attempts, 3, "max_attempts = 3:\n{history}");
    assert_eq!(
        history_to(&job, JobState::Retrying).len(),
        2,
        "{history}\n{}",
        run.events().describe(id)
    );
    assert!(daemon.is_running());

    // Once the server tells the truth again, `retry` completes the upload.
    run.shim().clear_rules();
    env.ctl(["retry", &id.to_string()])
        .assert_ok("upqctl retry");
    env.wait_published(id, 60);
    let remote = env.job(id).remote.expect("a remote");
    assert_stored_copy(&run.server.upload(&remote).expect("the upload"), &run.video);
}
