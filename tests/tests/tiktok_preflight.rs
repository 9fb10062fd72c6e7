//! What `add` refuses for TikTok before any byte moves, on real videos made by ffmpeg:
//! codec, frame rate, picture size, container, damaged files, duration against the
//! creator's limit, privacy and interactions against the creator's settings.

mod tiktok_common;

use tiktok_common::*;
use upq_tests::tiktok::{CreatorInfo, TikTokOptions, TikTokServer};
use upq_tests::video::VideoSpec;
use upq_tests::{OutputExt, SourceFile, TestEnv};

/// `upqctl add` must fail with exit 1 and every one of `reasons` in its message.
fn assert_refused(env: &TestEnv, file: &SourceFile, extra: &[&str], reasons: &[&str]) {
    let mut args = vec!["add", file.arg()];
    args.extend_from_slice(extra);
    let output = env.ctl(&args);
    let stderr = output.stderr_text();
    assert_eq!(
        output.code(),
        1,
        "{args:?} should be refused; stdout {:?} stderr {stderr:?}",
        output.stdout_text()
    );
    for reason in reasons {
        assert!(
            stderr.contains(reason),
            "{args:?}: the refusal should say {reason:?}: {stderr}"
        );
    }
}

#[test]
fn videos_tiktok_would_reject_are_refused_at_add() {
    let env = TestEnv::new("tiktok-preflight-video");
    let server = TikTokServer::start(TikTokOptions {
        creator: CreatorInfo {
            max_video_post_duration_sec: 2,
            ..CreatorInfo::default()
        },
        ..options()
    });
    configure(&env, &server, "direct", "");
    let _daemon = env.start_daemon();

    let h264 = |w, h| VideoSpec::new("libx264", "mp4").size(w, h);
    let cases: Vec<(SourceFile, Vec<&str>)> = vec![
        (
            video(&env, "slow", &h264(1080, 1920).fps(15)),
            vec!["15 fps", "23"],
        ),
        (
            video(&env, "fast", &h264(640, 360).fps(120).seconds(0.5)),
            vec!["120 fps", "60"],
        ),
        (video(&env, "narrow", &h264(320, 640)), vec!["320", "360"]),
        (
            video(&env, "wide", &h264(4112, 360).seconds(0.2)),
            vec!["4112", "4096"],
        ),
        (
            video(
                &env,
                "old-codec",
                &VideoSpec::new("mpeg4", "mp4").size(1080, 1920),
            ),
            vec!["H.264, H.265, VP8 or VP9"],
        ),
        (
            video(
                &env,
                "matroska",
                &VideoSpec::new("libx264", "mkv").size(1080, 1920),
            ),
            vec!["MP4, MOV or WebM"],
        ),
        (
            video(&env, "long", &h264(1080, 1920).seconds(3.0)),
            vec!["duration", "2s"],
        ),
    ];
    for (file, reasons) in &cases {
        assert_refused(&env, file, &[], reasons);
    }

    // Not a video at all, and a video cut short.
    let text = env.root().join("videos/notes.mp4");
    std::fs::write(&text, "shopping list: milk, eggs\n".repeat(100)).unwrap();
    assert_refused(&env, &source_of(&text), &[], &["notes.mp4"]);
    let whole = small_video(&env, "whole");
    let cut = env.root().join("videos/cut.mp4");
    let bytes = std::fs::read(&whole.path).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len().min(2048)]).unwrap();
    assert_refused(&env, &source_of(&cut), &[], &["cut.mp4"]);

    assert!(
        server.uploads().is_empty(),
        "nothing refused reached TikTok:\n{}",
        server.describe()
    );
    assert!(env.list(true).is_empty(), "nothing refused was queued");

    // The same creator takes a good video.
    let good = small_video(&env, "good");
    env.add(&good, &[]);
}

#[test]
fn privacy_and_interactions_are_checked_against_the_creator() {
    let env = TestEnv::new("tiktok-preflight-creator");
    let server = TikTokServer::start(TikTokOptions {
        creator: CreatorInfo {
            privacy_level_options: vec!["FOLLOWER_OF_CREATOR".into(), "SELF_ONLY".into()],
            comment_disabled: true,
            ..CreatorInfo::default()
        },
        ..options()
    });
    configure(&env, &server, "direct", "allow_comment = true");
    let video = small_video(&env, "settings");
    let _daemon = env.start_daemon();

    assert_refused(
        &env,
        &video,
        &["--privacy", "PUBLIC_TO_EVERYONE"],
        &["PUBLIC_TO_EVERYONE", "FOLLOWER_OF_CREATOR, SELF_ONLY"],
    );
    assert_refused(&env, &video, &["--privacy", "unlisted"], &["unlisted"]);
    assert_refused(
        &env,
        &video,
        &["--meta", "allow_comment=true"],
        &["comment"],
    );
    // From the config's default the switch is turned off with a warning instead.
    let output = env.ctl(["add", video.arg(), "--privacy", "followers"]);
    output.assert_ok("upqctl add with the config's allow_comment");
    assert!(
        output.stderr_text().contains("comments stay off"),
        "{}",
        output.stderr_text()
    );
    let id: u64 = output.stdout_text().trim().parse().unwrap();
    wait_state(
        &env,
        &server,
        id,
        upq_tests::JobState::Published,
        std::time::Duration::from_secs(60),
    );
    let post_info = server.uploads()[0].post_info.clone().unwrap();
    assert_eq!(post_info["privacy_level"], "FOLLOWER_OF_CREATOR");
    assert_eq!(post_info["disable_comment"], true);
    assert_no_violations(&server);
}
