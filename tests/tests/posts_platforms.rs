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
use upq_tests::{
    hash_file, history_to, jobs_of_post, post_job_ids, JobState, OutputExt, SourceFile, TestEnv,
    TusServer,
};

const TIMEOUT: Duration = Duration::from_secs(120);

/// The four kinds of destination, each a real peer or a conformance server.
struct Peers {
    env: TestEnv,
    tus: TusServer,
    tiktok: TikTokServer,
    youtube: YouTubeServer,
    outbox: std::path::PathBuf,
}

impl Peers {
    fn start(name: &str) -> Peers {
        let env = TestEnv::new(name);
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
        Peers {
            env,
            tus,
            tiktok,
            youtube,
            outbox,
        }
    }

    /// `add VIDEO --to local --to tus --to tiktok --to youtube EXTRA…`: the post's view.
    fn add_post(&self, video: &SourceFile, extra: &[&str]) -> serde_json::Value {
        let mut args = vec!["add", video.arg()];
        for destination in ["local", "tus", "tiktok", "youtube"] {
            args.extend(["--to", destination]);
        }
        args.extend(extra);
        self.env.ctl_json(args)
    }

    /// Waits for post `id` to reach `state`, telling what the servers saw if it does not.
    fn wait_post(&self, id: &str, state: &str) {
        let env = &self.env;
        upq_tests::wait::wait_for_explained(
            TIMEOUT,
            || {
                format!(
                    "post {id} to be {state}: {}\ntiktok:\n{}\nyoutube:\n{}",
                    env.ctl(["show", id]).stdout_text(),
                    self.tiktok.describe(),
                    self.youtube.describe()
                )
            },
            || (env.ctl_json(["show", id])["state"] == state).then_some(()),
        );
    }
}

#[test]
fn one_post_to_a_folder_tus_tiktok_and_youtube_is_released_together() {
    let peers = Peers::start("post-platforms");
    let Peers {
        env,
        tus,
        tiktok,
        youtube,
        outbox,
    } = &peers;
    let _daemon = env.start_daemon();
    let video = small_video(env, "everywhere");

    let post = peers.add_post(
        &video,
        &[
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
        ],
    );
    let ids = post_job_ids(&post);
    let post_id = post["id"].as_str().unwrap().to_string();
    let state = || env.ctl_json(["show", &post_id])["state"].clone();
    peers.wait_post(&post_id, "held");
    assert!(
        !outbox.join(video.name()).exists(),
        "held means not published"
    );
    // TikTok's upload_url lives an hour, so its job started only once the others were
    // ready at their commit points: it waits for them, not they for it.
    let ready = |id: u64| history_to(&env.show(id), JobState::Held)[0].at;
    let others_ready = [ids[0], ids[1], ids[3]]
        .map(ready)
        .into_iter()
        .max()
        .unwrap();
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
    assert_clean_upload(tiktok, &uploads[0], &video);
    let post_info = uploads[0].post_info.as_ref().expect("direct post");
    assert_eq!(post_info["title"], "Short words for TikTok");
    let published = the_video(youtube, &video);
    assert_eq!(
        published.snippet["description"],
        "A longer description for YouTube"
    );
    assert_eq!(published.snippet["title"], "Everywhere at once");
    assert_eq!(privacy(&published), "public");
    assert_no_violations(youtube);
    video.assert_unchanged();
}

/// Cancel before the release: every job becomes a draft, and what each platform holds is
/// discarded where it can be: tus's upload is terminated, YouTube's private video deleted,
/// and TikTok's upload is left unfinished, so it never posts (TikTok has no call to drop
/// one; its upload URL lapses). `recover p1` brings the whole post back, and it is
/// uploaded again and released.
#[test]
fn a_post_canceled_before_its_release_leaves_nothing_on_any_platform() {
    let peers = Peers::start("post-platforms-cancel");
    let Peers {
        env,
        tus,
        tiktok,
        youtube,
        outbox,
    } = &peers;
    let _daemon = env.start_daemon();
    let video = small_video(env, "second-thoughts");
    let post = peers.add_post(
        &video,
        &[
            "--title",
            "Not yet",
            "--meta-for",
            "youtube",
            "made_for_kids=false",
            "--meta-for",
            "tiktok",
            "privacy_level=SELF_ONLY",
            "--hold",
        ],
    );
    let ids = post_job_ids(&post);
    peers.wait_post("p1", "held");
    assert_eq!(
        tus.uploads().len(),
        1,
        "tus holds the upload before its last byte"
    );
    assert_eq!(tiktok.uploads().len(), 1, "{}", tiktok.describe());
    assert_eq!(youtube.videos().len(), 1);

    env.ctl(["cancel", "p1"]).assert_ok("cancel p1");
    peers.wait_post("p1", "canceled");
    upq_tests::wait::wait_for(TIMEOUT, "tus's upload to be terminated", || {
        tus.uploads().is_empty().then_some(())
    });
    upq_tests::wait::wait_for(TIMEOUT, "YouTube's video to be deleted", || {
        youtube.videos().iter().all(|v| v.deleted).then_some(())
    });
    let held = &tiktok.uploads()[0];
    assert!(
        !held.complete && held.post_id.is_none(),
        "TikTok never got the last chunk: {}",
        tiktok.describe()
    );
    assert!(!outbox.join(video.name()).exists());
    let drafts = jobs_of_post(&env.ctl_json(["drafts"]), "p1");
    assert_eq!(drafts, ids, "every job of the post is a draft");

    env.ctl(["recover", "p1"]).assert_ok("recover p1");
    peers.wait_post("p1", "held");
    env.ctl(["publish", "p1"]).assert_ok("publish p1");
    let waited = env.ctl(["wait", "p1", "--timeout", "120s"]);
    assert_eq!(waited.code(), 0, "{}", waited.stderr_text());
    video.assert_same_content(&outbox.join(video.name()));
    let stored = tus.uploads();
    assert_eq!(stored.len(), 1);
    assert_eq!(hash_file(&stored[0].data_path), video.hash);
    let done: Vec<_> = tiktok
        .uploads()
        .into_iter()
        .filter(|u| u.complete)
        .collect();
    assert_eq!(done.len(), 1, "{}", tiktok.describe());
    assert_clean_upload(tiktok, &done[0], &video);
    assert_eq!(
        youtube.videos().iter().filter(|v| !v.deleted).count(),
        1,
        "one live video after the recovery"
    );
    assert_no_violations(youtube);
    video.assert_unchanged();
}
