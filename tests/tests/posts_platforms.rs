//! A post to every kind of destination at once: a folder, `@tus/server`, the TikTok and the
//! YouTube conformance servers. Each gets its own words, all are held at their own commit
//! point, and one `publish` releases them within a second of each other, with no platform
//! rule broken and the same bytes everywhere.

mod tiktok_common;

use std::path::Path;
use std::time::Duration;

use tiktok_common::{assert_clean_upload, small_video, WINDOW};
use upq_tests::env::toml_string;
use upq_tests::tiktok::TikTokServer;
use upq_tests::tus::FAST_RETRY;
use upq_tests::youtube::world::{assert_no_violations, privacy, the_video};
use upq_tests::youtube::{YouTubeOptions, YouTubeServer};
use upq_tests::{hash_file, history_to, JobState, OutputExt, TestEnv, TusServer};

const TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn one_post_to_a_folder_tus_tiktok_and_youtube_is_released_together() {
    let env = TestEnv::new("post-platforms");
    let tus = TusServer::start(&env);
    let tiktok = TikTokServer::start(tiktok_common::options());
    let youtube = YouTubeServer::start(YouTubeOptions::default());
    let outbox = env.root().join("outbox");
    std::fs::create_dir_all(&outbox).unwrap();
    let token_file = env.root().join("tiktok.token");
    std::fs::write(&token_file, format!("{}\n", tiktok.token())).unwrap();
    env.write_config(&format!(
        "[daemon]\nmax_active = 4\n\n[daemon.retry]\n{FAST_RETRY}\n\n\
         [destinations.local]\nkind = \"dir\"\npath = {}\n\n\
         [destinations.tus]\nkind = \"tus\"\nendpoint = {}\n\n\
         [destinations.tiktok]\nkind = \"tiktok\"\napi_base = {}\naccess_token_file = {}\n\
         mode = \"direct\"\nrate_window = \"{}s\"\n\n\
         [destinations.youtube]\nkind = \"youtube\"\napi_base = {}\naccess_token = \"{}\"\n",
        toml_string(&outbox),
        toml_string(Path::new(&tus.endpoint)),
        toml_string(Path::new(&tiktok.api_base())),
        toml_string(&token_file),
        WINDOW.as_secs(),
        toml_string(Path::new(&youtube.api_base())),
        youtube.token(),
    ));
    let _daemon = env.start_daemon();
    let video = small_video(&env, "everywhere");

    let post = env.ctl_json([
        "add",
        video.arg(),
        "--to",
        "local",
        "--to",
        "tus",
        "--to",
        "tiktok",
        "--to",
        "youtube",
        "--title",
        "Everywhere at once",
        "--caption",
        "Shared caption",
        "--caption-for",
        "tiktok=Short words for TikTok",
        "--caption-for",
        "youtube=A longer description for YouTube",
        "--meta-for",
        "youtube",
        "made_for_kids=false",
        "--privacy",
        "public",
        "--meta-for",
        "tiktok",
        "privacy_level=PUBLIC_TO_EVERYONE",
        "--hold",
    ]);
    let ids: Vec<u64> = post["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["id"].as_u64().unwrap())
        .collect();
    let post_id = post["id"].as_str().unwrap().to_string();
    let state = || env.ctl_json(["show", &post_id])["state"].clone();
    upq_tests::wait::wait_for_explained(
        TIMEOUT,
        || {
            format!(
                "the post to be held: {}\ntiktok:\n{}\nyoutube:\n{}",
                env.ctl(["show", &post_id]).stdout_text(),
                tiktok.describe(),
                youtube.describe()
            )
        },
        || (state() == "held").then_some(()),
    );
    assert!(
        !outbox.join(video.name()).exists(),
        "held means not published"
    );
    // TikTok's upload_url lives an hour, so its job started only once the others were
    // ready at their commit points: it waits for them, not they for it.
    let ready = |id: u64| history_to(&env.show(id), JobState::Held)[0].at;
    let others_ready = [ids[0], ids[1], ids[3]].map(ready).into_iter().max().unwrap();
    let tiktok_job = env.show(ids[2]);
    let tiktok_started = history_to(&tiktok_job, JobState::Uploading)[0].at;
    assert!(
        tiktok_started >= others_ready,
        "TikTok started at {tiktok_started}, before the others were ready ({others_ready}):\n{}",
        upq_tests::describe_history(&tiktok_job)
    );

    env.ctl(["publish", &post_id]).assert_ok("publish the post");
    let waited = env.ctl(["wait", &post_id, "--timeout", "120s"]);
    assert_eq!(
        waited.code(),
        0,
        "every job published: {}\n{}",
        waited.stderr_text(),
        env.ctl(["show", &post_id]).stdout_text()
    );
    assert_eq!(state(), "published");

    // Released together: each job left `held` within a second of the others.
    let releases: Vec<_> = ids
        .iter()
        .map(|&id| {
            let job = env.show(id);
            let held = history_to(&job, JobState::Held);
            let last_hold = held.last().expect("held").at;
            job.history
                .as_ref()
                .unwrap()
                .iter()
                .find(|entry| entry.from == Some(JobState::Held) && entry.at >= last_hold)
                .unwrap_or_else(|| panic!("{}", upq_tests::describe_history(&job)))
                .at
        })
        .collect();
    let spread = *releases.iter().max().unwrap() - *releases.iter().min().unwrap();
    assert!(
        spread <= chrono::Duration::seconds(1),
        "released over {spread}"
    );

    // The same bytes everywhere, each with its own words.
    video.assert_same_content(&outbox.join(video.name()));
    let stored = tus.uploads();
    assert_eq!(stored.len(), 1);
    assert_eq!(hash_file(&stored[0].data_path), video.hash);
    assert_eq!(stored[0].metadata["caption"], "Shared caption");
    let uploads = tiktok.uploads();
    assert_eq!(uploads.len(), 1, "{}", tiktok.describe());
    assert_clean_upload(&tiktok, &uploads[0], &video);
    let post_info = uploads[0].post_info.as_ref().expect("direct post");
    assert_eq!(post_info["title"], "Short words for TikTok");
    let published = the_video(&youtube, &video);
    assert_eq!(
        published.snippet["description"],
        "A longer description for YouTube"
    );
    assert_eq!(published.snippet["title"], "Everywhere at once");
    assert_eq!(privacy(&published), "public");
    assert_no_violations(&youtube);
    video.assert_unchanged();
}
