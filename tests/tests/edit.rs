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
        message.contains("tus took its title when the upload started and cannot change it now"),
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

/// YouTube takes a held video's edited title, caption and privacy at its release: the
/// video waits private, and the release sends the words and the privacy the job has then.
#[test]
fn a_held_youtube_video_takes_the_words_edited_during_its_review() {
    use upq_tests::youtube::world::{assert_no_violations, privacy, the_video, wait_state, world};
    use upq_tests::youtube::YouTubeOptions;

    let (env, server) = world("edit-youtube", YouTubeOptions::default());
    let _daemon = env.start_daemon();
    let source = env.source("review-edit.mp4", 2 * MIB);
    let id = env.add(
        &source,
        &[
            "--hold",
            "--title",
            "Frist take",
            "--caption",
            "old words",
            "--privacy",
            "unlisted",
            "--meta",
            "made_for_kids=false",
        ],
    );
    wait_state(&env, &server, id, JobState::Held);
    let video = the_video(&server, &source);
    assert_eq!(video.snippet["title"], "Frist take");
    assert_eq!(privacy(&video), "private", "held for review");

    env.ctl([
        "edit",
        &id.to_string(),
        "--title",
        "First take",
        "--caption",
        "new words",
        "--privacy",
        "public",
    ])
    .assert_ok("upqctl edit of a held YouTube job");
    env.ctl(["publish", &id.to_string()]).assert_ok("publish");
    wait_state(&env, &server, id, JobState::Published);
    let video = the_video(&server, &source);
    assert_eq!(video.snippet["title"], "First take", "{:?}", video.snippet);
    assert_eq!(video.snippet["description"], "new words");
    assert_eq!(privacy(&video), "public");
    assert_no_violations(&server);
}
