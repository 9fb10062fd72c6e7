//! The D-Bus API driven by stock clients (`busctl`, `gdbus`) on a private session bus:
//! typed calls, job properties, pause/resume/cancel/drafts, publish, limits and named errors.
//!
//! Each test runs its own `dbus-daemon` and `upqd`; states are cross-checked with `upqctl`.

use std::time::Duration;

use serde_json::Value;
use upq_tests::bus::{assert_dbus_error, job_path, PrivateBus, JOB, MANAGER, MANAGER_PATH};
use upq_tests::env::job_from_value;
use upq_tests::Daemon;
use upq_tests::{holds_for, wait_for, wait_until, JobState, JobView, OutputExt, TestEnv, MIB};

const WAIT: Duration = Duration::from_secs(30);

/// `upqctl --json show ID`.
fn ctl_show(env: &TestEnv, id: u64) -> JobView {
    job_from_value(env.ctl_json(["show", &id.to_string()]))
}

/// Waits until `upqctl --json show ID` reports `state`.
fn wait_state(env: &TestEnv, id: u64, state: JobState) -> JobView {
    wait_for(WAIT, format!("job {id} to be {state}"), || {
        let job = ctl_show(env, id);
        (job.state == state).then_some(job)
    })
}

/// The single `t` a busctl call returned.
fn reply_u64(data: &Value) -> u64 {
    data[0]
        .as_u64()
        .unwrap_or_else(|| panic!("expected one uint64 in the reply, got {data}"))
}

/// `(uint64 7,)` as printed by gdbus → 7.
fn gdbus_u64(stdout: &str) -> u64 {
    stdout
        .trim()
        .trim_start_matches("(uint64 ")
        .trim_end_matches(",)")
        .parse()
        .unwrap_or_else(|_| panic!("gdbus printed no (uint64 N,): {stdout:?}"))
}

/// The entries of a `ListJobs`/`ListDrafts` reply (`a(tsssttso)`).
fn summaries(data: &Value) -> Vec<Value> {
    data[0]
        .as_array()
        .unwrap_or_else(|| panic!("expected a(tsssttso), got {data}"))
        .clone()
}

fn summary_ids(data: &Value) -> Vec<u64> {
    summaries(data)
        .iter()
        .map(|entry| entry[0].as_u64().expect("job ids are uint64"))
        .collect()
}

fn draft_ids(env: &TestEnv) -> Vec<u64> {
    env.drafts().iter().map(|job| job.id).collect()
}

#[test]
fn add_list_properties_and_publish_with_busctl_and_gdbus() {
    let env = TestEnv::new("dbus-add");
    let outbox = env.write_local_config("rate_limit = \"4MiB\"", "1MiB");
    let bus = PrivateBus::start(env.root());
    let _daemon = Daemon::on_bus(&env, &bus).start();
    let video = env.source("trip.mp4", 2 * MIB);

    // Add with typed options, as in the README.
    let id = reply_u64(&bus.call(
        MANAGER_PATH,
        MANAGER,
        "Add",
        &[
            "sa{sv}",
            video.arg(),
            "2",
            "title",
            "s",
            "Trip",
            "hold",
            "b",
            "true",
        ],
    ));
    assert!(id > 0, "job ids are positive");

    let listed = bus.call(MANAGER_PATH, MANAGER, "ListJobs", &[]);
    let entry = summaries(&listed)
        .into_iter()
        .find(|entry| entry[0] == id)
        .unwrap_or_else(|| panic!("ListJobs does not list job {id}: {listed}"));
    assert_eq!(entry[1], video.arg(), "file: {entry}");
    assert_eq!(entry[2], "local", "destination: {entry}");
    assert_eq!(entry[5], video.size, "size: {entry}");
    assert_eq!(entry[6], "Trip", "title: {entry}");
    assert_eq!(entry[7], job_path(id).as_str(), "object path: {entry}");
    let gdbus_list = bus.gdbus_call(MANAGER_PATH, "dev.upq.upq1.Manager.ListJobs", &[]);
    gdbus_list.assert_ok("gdbus ListJobs");
    assert!(
        gdbus_list
            .stdout_text()
            .contains(&format!("objectpath '{}'", job_path(id))),
        "gdbus ListJobs: {}",
        gdbus_list.stdout_text()
    );

    let held = wait_state(&env, id, JobState::Held);
    assert_eq!(held.metadata.title.as_deref(), Some("Trip"));
    assert!(held.hold, "the hold option reached the job: {held:?}");

    let path = job_path(id);
    wait_until(WAIT, "the State property to follow the job", || {
        bus.property(&path, JOB, "State") == "held"
    });
    assert_eq!(bus.property(&path, JOB, "BytesSent"), video.size);
    assert_eq!(bus.property(&path, JOB, "Size"), video.size);
    assert_eq!(bus.property(&path, JOB, "Title"), "Trip");
    assert_eq!(bus.property(&path, JOB, "Id"), id);
    assert_eq!(bus.property(&path, JOB, "Hold"), true);
    assert_eq!(bus.property(&path, JOB, "Destination"), "local");
    assert_eq!(bus.property(&path, JOB, "File"), video.arg());

    // The ObjectManager lists the job object with its properties.
    let managed = bus.gdbus_call(
        MANAGER_PATH,
        "org.freedesktop.DBus.ObjectManager.GetManagedObjects",
        &[],
    );
    managed.assert_ok("gdbus GetManagedObjects");
    let managed = managed.stdout_text();
    for needle in [
        format!("'{path}': {{'dev.upq.upq1.Job'"),
        "'State': <'held'>".to_string(),
        "'Title': <'Trip'>".to_string(),
    ] {
        assert!(
            managed.contains(&needle),
            "GetManagedObjects lacks {needle}: {managed}"
        );
    }
    assert!(
        !outbox.join(video.name()).exists(),
        "a held job is not published"
    );

    // PublishJob releases the held job.
    bus.gdbus_call(
        MANAGER_PATH,
        "dev.upq.upq1.Manager.PublishJob",
        &[&id.to_string()],
    )
    .assert_ok("gdbus PublishJob");
    env.wait_published(id, 30);
    video.assert_same_content(&outbox.join(video.name()));
    wait_until(WAIT, "the State property to say published", || {
        bus.property(&path, JOB, "State") == "published"
    });

    // Publishing it again is a named error, from either client.
    let again = bus.gdbus_call(
        MANAGER_PATH,
        "dev.upq.upq1.Manager.PublishJob",
        &[&id.to_string()],
    );
    assert_dbus_error(
        &again,
        "dev.upq.upq1.Error.InvalidState",
        "PublishJob on a published job",
    );
    let again = bus.try_call(MANAGER_PATH, MANAGER, "PublishJob", &["t", &id.to_string()]);
    assert!(
        !again.status.success(),
        "busctl PublishJob on a published job should fail: {}",
        again.stdout_text()
    );

    // Job.Publish on the job object itself, for a job added through gdbus.
    let second = env.source("second.mp4", MIB);
    let added = bus.gdbus_call(
        MANAGER_PATH,
        "dev.upq.upq1.Manager.Add",
        &[second.arg(), "{'hold': <true>, 'title': <'Second'>}"],
    );
    added.assert_ok("gdbus Add");
    let id2 = gdbus_u64(&added.stdout_text());
    assert!(id2 > id, "ids are assigned in order: {id2} after {id}");
    wait_state(&env, id2, JobState::Held);
    bus.call(&job_path(id2), JOB, "Publish", &[]);
    env.wait_published(id2, 30);
    second.assert_same_content(&outbox.join(second.name()));
    assert_eq!(
        ctl_show(&env, id2).metadata.title.as_deref(),
        Some("Second")
    );
}

#[test]
fn pause_resume_cancel_recover_and_discard_over_the_bus() {
    let env = TestEnv::new("dbus-drafts");
    let outbox = env.write_local_config("rate_limit = \"2MiB\"", "1MiB");
    let bus = PrivateBus::start(env.root());
    let _daemon = Daemon::on_bus(&env, &bus).start();
    let video = env.source("interview.mp4", 6 * MIB);

    let added = bus.gdbus_call(
        MANAGER_PATH,
        "dev.upq.upq1.Manager.Add",
        &[
            video.arg(),
            "{'title': <'Draft me'>, 'privacy': <'private'>}",
        ],
    );
    added.assert_ok("gdbus Add");
    let id = gdbus_u64(&added.stdout_text());
    let path = job_path(id);

    wait_until(WAIT, "the upload to get going", || {
        let job = env.job(id);
        job.state == JobState::Uploading && job.bytes_sent >= MIB
    });
    bus.call(MANAGER_PATH, MANAGER, "PauseJob", &["t", &id.to_string()]);
    let paused = wait_state(&env, id, JobState::Paused);
    assert!(
        paused.bytes_sent > 0 && paused.bytes_sent < video.size,
        "paused mid-upload: {paused:?}"
    );
    wait_until(WAIT, "the State property to say paused", || {
        bus.property(&path, JOB, "State") == "paused"
    });
    holds_for(
        Duration::from_millis(600),
        "bytes_sent to stay put while paused",
        || {
            let job = env.job(id);
            job.state == JobState::Paused && job.bytes_sent == paused.bytes_sent
        },
    );

    bus.call(MANAGER_PATH, MANAGER, "ResumeJob", &["t", &id.to_string()]);
    wait_until(WAIT, "the upload to move again after ResumeJob", || {
        let job = ctl_show(&env, id);
        job.state == JobState::Uploading && job.bytes_sent > paused.bytes_sent
    });

    // Cancel: the job becomes a draft with its metadata.
    bus.gdbus_call(
        MANAGER_PATH,
        "dev.upq.upq1.Manager.CancelJob",
        &[&id.to_string()],
    )
    .assert_ok("gdbus CancelJob");
    let canceled = ctl_show(&env, id);
    assert_eq!(canceled.state, JobState::Canceled, "{canceled:?}");
    let draft = env
        .drafts()
        .into_iter()
        .find(|job| job.id == id)
        .unwrap_or_else(|| panic!("job {id} is not in upqctl drafts"));
    assert_eq!(draft.metadata.title.as_deref(), Some("Draft me"));
    assert_eq!(draft.metadata.privacy.as_deref(), Some("private"));
    let drafts = bus.call(MANAGER_PATH, MANAGER, "ListDrafts", &[]);
    assert_eq!(summary_ids(&drafts), [id], "ListDrafts: {drafts}");
    assert!(
        !outbox.join(video.name()).exists(),
        "nothing published after cancel"
    );

    // Recover: back in the queue, and it publishes.
    bus.call(
        MANAGER_PATH,
        MANAGER,
        "RecoverDraft",
        &["t", &id.to_string()],
    );
    env.wait_published(id, 60);
    video.assert_same_content(&outbox.join(video.name()));
    assert!(
        !draft_ids(&env).contains(&id),
        "a recovered job is no draft"
    );

    // Discard: a second draft is forgotten, its file stays.
    let other = env.source("outtake.mp4", MIB);
    let id2 = reply_u64(&bus.call(
        MANAGER_PATH,
        MANAGER,
        "Add",
        &["sa{sv}", other.arg(), "1", "hold", "b", "true"],
    ));
    wait_state(&env, id2, JobState::Held);
    bus.call(&job_path(id2), JOB, "Cancel", &[]);
    wait_until(WAIT, "the second job to be a draft", || {
        draft_ids(&env).contains(&id2)
    });
    bus.call(
        MANAGER_PATH,
        MANAGER,
        "DiscardDraft",
        &["t", &id2.to_string()],
    );
    assert!(!draft_ids(&env).contains(&id2), "discarded drafts are gone");
    other.assert_unchanged();
    wait_until(WAIT, "the discarded job's object to go away", || {
        !bus.busctl(["get-property", "dev.upq.upq1", &job_path(id2), JOB, "State"])
            .status
            .success()
    });
    let again = bus.gdbus_call(
        MANAGER_PATH,
        "dev.upq.upq1.Manager.DiscardDraft",
        &[&id2.to_string()],
    );
    assert_dbus_error(
        &again,
        "dev.upq.upq1.Error.NotFound",
        "DiscardDraft of a discarded draft",
    );
    assert!(!outbox.join(other.name()).exists());
}

#[test]
fn rate_limit_status_and_named_errors() {
    let env = TestEnv::new("dbus-errors");
    env.write_local_config("", "1MiB");
    // A TikTok destination that refuses anything but a real video at `add` (inbox mode
    // asks TikTok nothing before the upload, so the server is never reached).
    let config = std::fs::read_to_string(env.config_path()).expect("config");
    env.write_config(&format!(
        "{config}\n[destinations.tiktok]\nkind = \"tiktok\"\nmode = \"inbox\"\n\
         api_base = \"http://127.0.0.1:9\"\naccess_token = \"act.unused\"\n"
    ));
    let bus = PrivateBus::start(env.root());
    let _daemon = Daemon::on_bus(&env, &bus).start();
    let video = env.source("clip.mp4", MIB);

    let set = bus.call(MANAGER_PATH, MANAGER, "SetRateLimit", &["t", "3145728"]);
    assert_eq!(reply_u64(&set), 3 * MIB);
    assert_eq!(env.ctl_json(["status"])["rate_limit"], 3 * MIB);
    let set = bus.gdbus_call(MANAGER_PATH, "dev.upq.upq1.Manager.SetRateLimit", &["0"]);
    set.assert_ok("gdbus SetRateLimit 0");
    assert_eq!(gdbus_u64(&set.stdout_text()), 0);
    assert_eq!(env.ctl_json(["status"])["rate_limit"], 0);

    let status = bus.call(MANAGER_PATH, MANAGER, "Status", &[]);
    let version = bus.property(MANAGER_PATH, MANAGER, "Version");
    assert_eq!(status[0]["version"]["data"], version, "Status: {status}");
    assert_eq!(
        status[0]["rate_limit"]["data"], 0,
        "Status follows SetRateLimit: {status}"
    );

    let missing = bus.gdbus_call(MANAGER_PATH, "dev.upq.upq1.Manager.CancelJob", &["424242"]);
    assert_dbus_error(
        &missing,
        "dev.upq.upq1.Error.NotFound",
        "CancelJob of an unknown id",
    );
    let missing = bus.try_call(MANAGER_PATH, MANAGER, "CancelJob", &["t", "424242"]);
    assert!(
        !missing.status.success(),
        "busctl CancelJob of an unknown id should fail"
    );

    // An Add through gdbus that must fail with `error`; returns the error's text.
    let add_fails = |file: &str, options: &str, error: &str, what: &str| {
        let output = bus.gdbus_call(MANAGER_PATH, "dev.upq.upq1.Manager.Add", &[file, options]);
        assert_dbus_error(&output, error, what)
    };
    let bad_request = "dev.upq.upq1.Error.BadRequest";
    let stderr = add_fails(
        video.arg(),
        "{'colour': <'red'>}",
        bad_request,
        "Add with an unknown option",
    );
    assert!(
        stderr.contains("colour"),
        "the error names the option: {stderr}"
    );
    add_fails(
        video.arg(),
        "{'hold': <'yes'>}",
        bad_request,
        "Add with hold as a string",
    );
    let gone = env.root().join("videos").join("missing.mp4");
    let gone = gone.to_str().expect("UTF-8 path");
    add_fails(gone, "{}", bad_request, "Add of a missing file");
    let stderr = add_fails(
        video.arg(),
        "{'destination': <'tiktok'>}",
        "dev.upq.upq1.Error.Refused",
        "Add of a file TikTok would not take",
    );
    assert!(
        stderr.contains("clip.mp4"),
        "the error names the file: {stderr}"
    );
    assert!(
        env.list(true).is_empty(),
        "refused adds queue nothing: {:?}",
        env.list(true)
    );
}
