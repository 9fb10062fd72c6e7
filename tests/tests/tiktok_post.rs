//! TikTok direct post and inbox, end to end: the real upqd and upqctl against the
//! conformance server, with real videos made by ffmpeg.

mod tiktok_common;

use std::time::Duration;

use tiktok_common::*;
use upq_tests::tiktok::{Fault, Mode, TikTokServer};
use upq_tests::video::VideoSpec;
use upq_tests::{JobState, OutputExt, TestEnv};

const PUBLISH_TIMEOUT: Duration = Duration::from_secs(90);

#[test]
fn direct_post_in_one_chunk_is_private_unless_asked() {
    let env = TestEnv::new("tiktok-direct-one");
    let server = TikTokServer::start(options());
    configure(&env, &server, "direct", "");
    let video = small_video(&env, "first");
    let _daemon = env.start_daemon();

    let output = env.ctl(["add", video.arg(), "--title", "First light"]);
    output.assert_ok("upqctl add");
    assert!(
        output.stderr_text().contains("SELF_ONLY"),
        "add should say the post will be private: {}",
        output.stderr_text()
    );
    let id: u64 = output
        .stdout_text()
        .trim()
        .parse()
        .expect("add prints the id");
    let job = wait_state(&env, &server, id, JobState::Published, PUBLISH_TIMEOUT);

    let uploads = server.uploads();
    assert_eq!(uploads.len(), 1, "{}", server.describe());
    let record = &uploads[0];
    assert_eq!(record.mode, Mode::Direct);
    assert_eq!(record.total_chunk_count, 1, "a small file is one chunk");
    assert_eq!(
        record.chunk_size, video.size,
        "a single chunk is the whole file"
    );
    assert_clean_upload(&server, record, &video);
    let post_info = record
        .post_info
        .as_ref()
        .expect("direct post has post_info");
    assert_eq!(post_info["privacy_level"], "SELF_ONLY");
    assert_eq!(post_info["title"], "First light");
    for switch in ["disable_comment", "disable_duet", "disable_stitch"] {
        assert_eq!(post_info[switch], true, "{switch} is off unless allowed");
    }
    assert_eq!(record.content_types, ["video/mp4"]);
    assert_eq!(
        record.statuses.first().map(String::as_str),
        Some("PROCESSING_UPLOAD")
    );
    assert_eq!(
        record.statuses.last().map(String::as_str),
        Some("PUBLISH_COMPLETE")
    );
    let post_id = record.post_id.expect("the server gave a post id");
    let remote = job.remote.clone().unwrap_or_default();
    assert!(
        remote.contains(&post_id.to_string()),
        "the job records the post id {post_id}: {remote:?}"
    );
    assert_no_violations(&server);
    video.assert_unchanged();
}

#[test]
fn direct_post_in_chunks_carries_privacy_and_caption() {
    let env = TestEnv::new("tiktok-direct-chunks");
    let server = TikTokServer::start(options());
    configure(
        &env,
        &server,
        "direct",
        "chunk_size = \"10MB\"\nallow_comment = true",
    );
    // Over 64 MB, so it must be chunked: 7 chunks, the last absorbing the 123 bytes.
    let video = mp4_of_size(&env, "long", 70_000_123);
    let _daemon = env.start_daemon();

    let id = env.add(
        &video,
        &[
            "--title",
            "Ignored when a caption is given",
            "--caption",
            "Sunrise over the bay #upq",
            "--privacy",
            "public",
        ],
    );
    let job = wait_state(&env, &server, id, JobState::Published, PUBLISH_TIMEOUT);
    let record = &server.uploads()[0];
    assert_eq!(record.chunk_size, 10_000_000);
    assert_eq!(record.total_chunk_count, 7);
    assert_eq!(
        record.chunks.last().map(|c| c.1 - c.0 + 1),
        Some(10_000_123),
        "the final chunk absorbs the remainder"
    );
    assert_clean_upload(&server, record, &video);
    let post_info = record.post_info.as_ref().unwrap();
    assert_eq!(post_info["privacy_level"], "PUBLIC_TO_EVERYONE");
    assert_eq!(post_info["title"], "Sunrise over the bay #upq");
    assert_eq!(post_info["disable_comment"], false);
    assert_eq!(post_info["disable_duet"], true);
    assert!(record.content_types.iter().all(|t| t == "video/mp4"));
    assert_eq!(job.bytes_sent, video.size);
    assert_no_violations(&server);
}

#[test]
fn inbox_mode_lands_in_the_creators_drafts() {
    let env = TestEnv::new("tiktok-inbox");
    let server = TikTokServer::start(options());
    configure(&env, &server, "inbox", "");
    let video = video(
        &env,
        "clip",
        &VideoSpec::new("libvpx-vp9", "webm").size(720, 1280),
    );
    let _daemon = env.start_daemon();

    let output = env.ctl(["add", video.arg(), "--caption", "for later"]);
    output.assert_ok("upqctl add");
    assert!(
        output.stderr_text().contains("1080p"),
        "a 720p video gets a warning: {}",
        output.stderr_text()
    );
    let id: u64 = output.stdout_text().trim().parse().unwrap();
    let job = wait_state(&env, &server, id, JobState::Published, PUBLISH_TIMEOUT);
    assert!(
        job.warning.as_deref().unwrap_or("").contains("1080p"),
        "the warning is kept in the job: {:?}",
        job.warning
    );
    let record = &server.uploads()[0];
    assert_eq!(record.mode, Mode::Inbox);
    assert!(record.post_info.is_none(), "inbox init has no post_info");
    assert_eq!(record.content_types, ["video/webm"]);
    assert_clean_upload(&server, record, &video);
    assert_eq!(
        record.statuses.last().map(String::as_str),
        Some("SEND_TO_USER_INBOX")
    );
    let remote = job.remote.unwrap_or_default();
    assert!(remote.contains("inbox"), "{remote}");
    // No creator_info call is needed (or allowed with only video.upload) in inbox mode.
    assert!(server
        .requests()
        .iter()
        .all(|r| r.endpoint != "creator_info"));
    assert_no_violations(&server);
}

#[test]
fn a_refused_chunk_plan_is_retried_with_another_valid_plan() {
    let env = TestEnv::new("tiktok-plan-refused");
    let server = TikTokServer::start(options());
    configure(&env, &server, "inbox", "chunk_size = \"10MB\"");
    let video = mp4_of_size(&env, "replanned", 70_000_000);
    let _daemon = env.start_daemon();
    server.inject(Fault::respond(
        "init",
        400,
        "invalid_param",
        "The chunk size is invalid",
    ));
    let id = env.add(&video, &[]);
    wait_state(&env, &server, id, JobState::Published, PUBLISH_TIMEOUT);
    let uploads = server.uploads();
    assert_eq!(uploads.len(), 1, "{}", server.describe());
    let record = &uploads[0];
    assert_ne!(record.chunk_size, 10_000_000, "another plan was used");
    assert_clean_upload(&server, record, &video);
    let history = upq_tests::describe_history(&env.show(id));
    assert!(
        history.contains("refused chunks of 10000000 bytes")
            && history.contains("The chunk size is invalid"),
        "the rejection is recorded: {history}"
    );
    assert_no_violations(&server);
}

#[test]
fn the_token_may_come_from_the_environment() {
    let env = TestEnv::new("tiktok-env-token");
    let server = TikTokServer::start(options());
    env.set_var("UPQ_TEST_TIKTOK_TOKEN", server.token());
    env.write_config(&format!(
        "[daemon]\ndefault_destination = \"tiktok\"\n\n[destinations.tiktok]\nkind = \"tiktok\"\n\
         api_base = \"{}\"\naccess_token = \"${{env:UPQ_TEST_TIKTOK_TOKEN}}\"\nmode = \"inbox\"\n\
         rate_window = \"{}s\"\n",
        server.api_base(),
        WINDOW.as_secs()
    ));
    let video = small_video(&env, "env-token");
    let daemon = env.start_daemon();
    let id = env.add(&video, &[]);
    wait_state(&env, &server, id, JobState::Published, PUBLISH_TIMEOUT);
    assert_clean_upload(&server, &server.uploads()[0], &video);
    assert!(
        !daemon.log().contains(&server.token()),
        "the token is never logged"
    );
    let shown = env.ctl(["show", &id.to_string(), "--json"]).stdout_text();
    assert!(!shown.contains(&server.token()), "nor shown");
}
