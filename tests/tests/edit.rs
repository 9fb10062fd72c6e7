//! `upqctl edit`: a job's title, caption and privacy change until the destination has taken
//! them. A tus server takes them when the upload is created, so an edit before the start
//! reaches the server and one after it is refused with why; over the socket and the bus.

use std::time::Duration;

use upq_tests::bus::PrivateBus;
use upq_tests::tus::{tus_config, TusServer};
use upq_tests::{describe_history, wait_for, Daemon, JobState, OutputExt, TestEnv, MIB};

#[test]
fn an_edit_before_the_upload_starts_reaches_the_destination() {
    let env = TestEnv::new("edit-tus");
    let server = TusServer::start(&env);
    env.write_config(&tus_config(&server.endpoint, "", "", ""));
    let bus = PrivateBus::start(env.root());
    let _daemon = Daemon::on_bus(&env, &bus).start();
    env.set_var("DBUS_SESSION_BUS_ADDRESS", bus.address());

    // The queue is paused, so the job waits before its upload starts.
    env.ctl(["pause", "--all"]).assert_ok("upqctl pause --all");
    let video = env.source("draft-title.mp4", MIB);
    let id = env.add(
        &video,
        &["--to", "tus", "--title", "Frist", "--caption", "typo"],
    );
    let edited = env.ctl_json(["edit", &id.to_string(), "--title", "First", "--caption", ""]);
    assert_eq!(edited["metadata"]["title"], "First", "{edited}");
    assert!(edited["metadata"].get("caption").is_none(), "{edited}");
    let shown = env.ctl(["--bus", "edit", &id.to_string(), "--privacy", "unlisted"]);
    shown.assert_ok("upqctl --bus edit");
    assert!(
        shown.stdout_text().contains("state"),
        "{}",
        shown.stdout_text()
    );
    let job = env.show(id);
    let history = describe_history(&job);
    assert!(history.contains("edited: title, caption"), "{history}");
    assert!(history.contains("edited: privacy"), "{history}");

    env.ctl(["resume", "--all"])
        .assert_ok("upqctl resume --all");
    env.wait_published(id, 60);
    let uploads = server.uploads();
    assert_eq!(uploads.len(), 1);
    let metadata = &uploads[0].metadata;
    assert_eq!(metadata.get("title").map(String::as_str), Some("First"));
    assert_eq!(metadata.get("caption"), None, "cleared");
    assert_eq!(
        metadata.get("privacy").map(String::as_str),
        Some("unlisted")
    );
}

#[test]
fn an_edit_after_the_destination_took_the_words_is_refused_and_says_why() {
    let env = TestEnv::new("edit-refused");
    let server = TusServer::start(&env);
    env.write_config(&tus_config(&server.endpoint, "", "", ""));
    let _daemon = env.start_daemon();
    let video = env.source("held.mp4", MIB);
    let id = env.add(&video, &["--to", "tus", "--title", "Kept", "--hold"]);
    wait_for(Duration::from_secs(30), "the job to be held", || {
        (env.job(id).state == JobState::Held).then_some(())
    });
    let refused = env.ctl(["edit", &id.to_string(), "--title", "Too late"]);
    assert_eq!(refused.status.code(), Some(1), "{}", refused.stderr_text());
    let message = refused.stderr_text();
    assert!(
        message.contains("tus took its title, caption and privacy when the upload started"),
        "{message}"
    );
    assert_eq!(
        env.show(id).metadata.title.as_deref(),
        Some("Kept"),
        "nothing changed"
    );

    let nothing = env.ctl(["edit", &id.to_string()]);
    assert_eq!(nothing.status.code(), Some(1));
    assert!(
        nothing.stderr_text().contains("say what to change"),
        "{}",
        nothing.stderr_text()
    );

    // Canceled, it is a draft: its words are upq's again.
    env.ctl(["cancel", &id.to_string()])
        .assert_ok("upqctl cancel");
    let edited = env.ctl_json(["edit", &id.to_string(), "--title", "Second try"]);
    assert_eq!(edited["metadata"]["title"], "Second try", "{edited}");
}
