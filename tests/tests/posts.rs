//! Posts: one video to several destinations, each with its own metadata, held and released
//! together, and a release killed half way that a restart finishes. The real upqd and upqctl
//! against two folders and the YouTube conformance server.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use upq_tests::env::toml_string;
use upq_tests::tus::FAST_RETRY;
use upq_tests::youtube::world::{assert_no_violations, privacy, the_video};
use upq_tests::youtube::{YouTubeOptions, YouTubeServer};
use upq_tests::{
    history_to, jobs_of_post, post_job_ids, Daemon, JobState, OutputExt, SourceFile, TestEnv, MIB,
};

const TIMEOUT: Duration = Duration::from_secs(90);

/// Two folders (`local`, `archive`) and YouTube; returns the folders.
fn configure(env: &TestEnv, server: &YouTubeServer) -> (PathBuf, PathBuf) {
    let local = env.root().join("outbox");
    let archive = env.root().join("archive");
    for dir in [&local, &archive] {
        std::fs::create_dir_all(dir).unwrap();
    }
    env.write_config(&format!(
        "[daemon]\nmax_active = 3\n\n[daemon.retry]\n{FAST_RETRY}\n\n\
         [destinations.local]\nkind = \"dir\"\npath = {}\n\n\
         [destinations.archive]\nkind = \"dir\"\npath = {}\n\n\
         [destinations.youtube]\nkind = \"youtube\"\napi_base = {}\naccess_token = \"{}\"\n",
        toml_string(&local),
        toml_string(&archive),
        toml_string(Path::new(&server.api_base())),
        server.token(),
    ));
    (local, archive)
}

fn add_post(env: &TestEnv, source: &SourceFile, extra: &[&str]) -> Value {
    let mut args = vec![
        "add".to_string(),
        source.path.display().to_string(),
        "--to".into(),
        "local".into(),
        "--to".into(),
        "archive".into(),
        "--to".into(),
        "youtube".into(),
        "--title".into(),
        "Harbour at dawn".into(),
        "--caption".into(),
        "Shared words".into(),
        "--caption-for".into(),
        "youtube=Words for YouTube".into(),
        "--meta-for".into(),
        "youtube".into(),
        "made_for_kids=false".into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    env.ctl_json(args)
}

fn wait_post(env: &TestEnv, server: &YouTubeServer, post: &str, state: &str) -> Value {
    upq_tests::wait::wait_for_explained(
        TIMEOUT,
        || {
            format!(
                "post {post} to be {state}: {}\nserver:\n{}",
                env.ctl(["show", post]).stdout_text(),
                server.describe()
            )
        },
        || {
            let view = env.ctl_json(["show", post]);
            (view["state"] == state).then_some(view)
        },
    )
}

#[test]
fn a_post_reaches_every_destination_with_its_own_words() {
    let env = TestEnv::new("post-words");
    let server = YouTubeServer::start(YouTubeOptions::default());
    let (local, archive) = configure(&env, &server);
    let _daemon = env.start_daemon();
    let source = env.source("harbour.mp4", 2 * MIB + 3);
    let post = add_post(&env, &source, &[]);
    assert_eq!(post["id"], "p1", "{post}");
    let jobs = post["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 3);
    let destinations: Vec<&str> = jobs
        .iter()
        .map(|job| job["destination"].as_str().unwrap())
        .collect();
    assert_eq!(destinations, ["local", "archive", "youtube"]);
    for job in jobs {
        assert_eq!(job["post"], "p1", "{job}");
    }
    assert_eq!(jobs[0]["metadata"]["caption"], "Shared words");
    assert_eq!(jobs[2]["metadata"]["caption"], "Words for YouTube");
    assert!(jobs[0]["metadata"]["extra"].get("made_for_kids").is_none());

    let waited = env.ctl(["wait", "p1", "--timeout", "90s"]);
    assert_eq!(waited.code(), 0, "wait p1: {}", waited.stderr_text());
    assert_eq!(env.ctl_json(["show", "p1"])["state"], "published");
    source.assert_same_content(&local.join(source.name()));
    source.assert_same_content(&archive.join(source.name()));
    let video = the_video(&server, &source);
    assert_eq!(video.snippet["title"], "Harbour at dawn");
    assert_eq!(video.snippet["description"], "Words for YouTube");
    // Every job is also an ordinary job.
    for id in post_job_ids(&post) {
        assert_eq!(env.job(id).state, JobState::Published);
    }
    // A single --to is what it always was: a job, no post.
    let single = env.source("single.mp4", MIB);
    let id = env.add(&single, &["--to", "archive"]);
    env.wait_published(id, 60);
    assert!(env.job(id).post.is_none());
    assert_no_violations(&server);
    source.assert_unchanged();
}

#[test]
fn a_held_post_is_released_everywhere_by_one_publish() {
    let env = TestEnv::new("post-release");
    let server = YouTubeServer::start(YouTubeOptions::default());
    let (local, archive) = configure(&env, &server);
    let _daemon = env.start_daemon();
    let source = env.source("together.mp4", 2 * MIB);
    let post = add_post(&env, &source, &["--hold", "--privacy", "public"]);
    wait_post(&env, &server, "p1", "held");
    let listed = env.ctl(["list"]).stdout_text();
    assert!(
        listed.contains("post p1 (held): Harbour at dawn"),
        "list groups the jobs under their post: {listed}"
    );
    // `list --json` stays an array of jobs, each with its post; `list --posts --json` is
    // an array of post views, each with its jobs.
    let jobs = env.ctl_json(["list"]);
    let in_post: Vec<u64> = jobs
        .as_array()
        .expect("an array of jobs")
        .iter()
        .filter(|job| job["post"] == "p1")
        .map(|job| job["id"].as_u64().unwrap())
        .collect();
    assert_eq!(in_post, post_job_ids(&post));
    let posts = env.ctl_json(["list", "--posts"]);
    let posts = posts.as_array().expect("an array of posts");
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0]["id"], "p1");
    assert_eq!(posts[0]["state"], "held");
    assert_eq!(post_job_ids(&posts[0]), post_job_ids(&post));
    let listed_posts = env.ctl(["list", "--posts"]).stdout_text();
    assert!(
        listed_posts.starts_with("post p1 (held): Harbour at dawn\n"),
        "{listed_posts}"
    );
    assert!(
        !local.join(source.name()).exists(),
        "held means not published"
    );
    assert!(!archive.join(source.name()).exists());
    assert_eq!(privacy(&the_video(&server, &source)), "private");

    // `watch p1` follows every job of the post, and the post's own line, to the end.
    let mut watcher = std::process::Command::new(upq_tests::bins::upqctl())
        .arg("--socket")
        .arg(env.socket_path())
        .args(["watch", "p1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start upqctl watch");
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let reader = {
        let lines = lines.clone();
        let stdout = watcher.stdout.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                lines.lock().unwrap().push(line);
            }
        })
    };
    let seen = |wanted: &str| lines.lock().unwrap().iter().any(|l| l == wanted);
    upq_tests::wait::wait_for(TIMEOUT, "watch to show the held post", || {
        seen("post p1 held").then_some(())
    });
    env.ctl(["publish", "p1"]).assert_ok("publish p1");
    wait_post(&env, &server, "p1", "published");
    let status = watcher.wait().expect("watch ends with the post");
    reader.join().unwrap();
    assert!(status.success(), "watch p1 exits 0 once all are published");
    assert!(
        seen("post p1 published"),
        "watch tells the post's states: {:?}",
        lines.lock().unwrap()
    );
    assert_eq!(privacy(&the_video(&server, &source)), "public");
    // The commits (into `publishing`, the commit step of a folder and of YouTube) are
    // within one second of each other.
    let commits: Vec<_> = post_job_ids(&post)
        .into_iter()
        .map(|id| {
            let job = env.show(id);
            let entries = history_to(&job, JobState::Publishing);
            assert_eq!(entries.len(), 1, "{}", upq_tests::describe_history(&job));
            entries[0].at
        })
        .collect();
    let first = commits.iter().min().unwrap();
    let last = commits.iter().max().unwrap();
    assert!(
        *last - *first <= chrono::Duration::seconds(1),
        "commits spread over {}",
        *last - *first
    );
    let shown = env.ctl(["show", "p1"]).stdout_text();
    assert!(
        shown.contains("published") && shown.contains("released"),
        "{shown}"
    );
    // A published post is no longer active; `--all` still lists it.
    assert_eq!(env.ctl_json(["list", "--posts"]), serde_json::json!([]));
    let all = env.ctl_json(["list", "--posts", "--all"]);
    assert_eq!(all[0]["state"], "published", "{all}");
    assert_no_violations(&server);
}

/// kill -9 after the release was recorded and before any job was released: the restart
/// finishes it, so no post is left half public.
#[test]
fn a_release_killed_half_way_is_finished_after_a_restart() {
    let env = TestEnv::new("post-release-kill");
    let server = YouTubeServer::start(YouTubeOptions::default());
    let (local, archive) = configure(&env, &server);
    let mut crashing = Daemon::without_bus(&env)
        .var("UPQ_CRASH_AT", "post-release-begun")
        .start();
    let source = env.source("crash.mp4", MIB + 5);
    add_post(&env, &source, &["--hold"]);
    wait_post(&env, &server, "p1", "held");
    let publish = env.ctl(["publish", "p1"]);
    assert!(!publish.status.success(), "the daemon died answering");
    assert!(
        crashing.wait_exit(Duration::from_secs(10)).is_some(),
        "upqd was not killed at the release"
    );

    // Nothing was released before the kill: the jobs are still held.
    let daemon = env.start_daemon();
    wait_post(&env, &server, "p1", "published");
    assert!(
        daemon
            .log()
            .contains("released the rest of posts whose release had begun"),
        "the restart finished the release:\n{}",
        daemon.log()
    );
    source.assert_same_content(&local.join(source.name()));
    source.assert_same_content(&archive.join(source.name()));
    assert!(env.ctl_json(["show", "p1"])["released_at"].is_string());
    assert_no_violations(&server);
}

#[test]
fn a_post_that_one_destination_refuses_queues_nothing() {
    let env = TestEnv::new("post-refused");
    let server = YouTubeServer::start(YouTubeOptions::default());
    configure(&env, &server);
    let _daemon = env.start_daemon();
    let source = env.source("refused.mp4", MIB);
    let long_title = "x".repeat(101);
    let out = env.ctl([
        "add",
        &source.path.display().to_string(),
        "--to",
        "local",
        "--to",
        "youtube",
        "--title-for",
        &format!("youtube={long_title}"),
    ]);
    assert!(!out.status.success());
    let stderr = out.stderr_text();
    assert!(
        stderr.contains("destination 'youtube'") && stderr.contains("nothing was queued"),
        "{stderr}"
    );
    assert!(env.list(true).is_empty(), "no job of the post was stored");
    let missing = env.ctl(["show", "p1"]);
    assert!(!missing.status.success());
    assert!(
        missing.stderr_text().contains("no post p1"),
        "{}",
        missing.stderr_text()
    );
    let stray = env.ctl([
        "add",
        &source.path.display().to_string(),
        "--to",
        "local",
        "--to",
        "archive",
        "--caption-for",
        "youtube=nope",
    ]);
    assert!(!stray.status.success());
    assert!(stray
        .stderr_text()
        .contains("not one of the post's destinations"));
}

/// Two posts with the same publish time, each with a YouTube job that YouTube fails to
/// process: the plain one publishes its folder job at that time anyway, which shows the
/// time does release; the all-or-nothing one keeps its folder job held until `publish`.
#[test]
fn all_or_nothing_keeps_the_rest_held_when_one_fails() {
    let env = TestEnv::new("post-all-or-nothing");
    let server = YouTubeServer::start(YouTubeOptions::default());
    let (local, archive) = configure(&env, &server);
    let _daemon = env.start_daemon();
    // Both YouTube uploads fail processing, long before the publish time.
    for _ in 0..2 {
        server.inject(upq_tests::youtube::Fault::FailProcessing(
            "uploadFailed".to_string(),
        ));
    }
    let at = (chrono::Utc::now() + chrono::Duration::seconds(10))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let add = |name: &str, extra: &[&str]| {
        let source = env.source(name, MIB);
        let mut args = vec![
            "add".to_string(),
            source.path.display().to_string(),
            "--to".into(),
            "archive".into(),
            "--to".into(),
            "youtube".into(),
            "--at".into(),
            at.clone(),
            "--meta-for".into(),
            "youtube".into(),
            "made_for_kids=false".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        (source, env.ctl_json(args))
    };
    let (plain_source, plain) = add("plain.mp4", &[]);
    let (strict_source, strict) = add("strict.mp4", &["--all-or-nothing"]);
    assert_eq!(strict["all_or_nothing"], true);
    for post in [&plain, &strict] {
        wait_job_state(&env, post_job_ids(post)[1], JobState::Failed);
    }
    let at_time = chrono::DateTime::parse_from_rfc3339(&at).unwrap();
    assert!(
        chrono::Utc::now() < at_time,
        "the failures came before the publish time"
    );
    let plain_id = plain["id"].as_str().unwrap().to_string();
    let strict_id = strict["id"].as_str().unwrap().to_string();

    wait_post(&env, &server, &plain_id, "partial");
    plain_source.assert_same_content(&archive.join(plain_source.name()));
    let held = env.show(post_job_ids(&strict)[0]);
    assert_eq!(held.state, JobState::Held, "{held:?}");
    assert!(held.hold);
    assert!(!archive.join(strict_source.name()).exists());
    let history = upq_tests::describe_history(&held);
    assert!(history.contains("all or nothing"), "{history}");
    assert_eq!(env.ctl_json(["show", &strict_id])["state"], "held");

    // The user releases the rest.
    let published = env.ctl(["publish", &strict_id]);
    assert!(
        published.stdout_text().contains("released"),
        "{}",
        published.stdout_text()
    );
    wait_post(&env, &server, &strict_id, "partial");
    strict_source.assert_same_content(&archive.join(strict_source.name()));
    assert!(!local.join(strict_source.name()).exists());
}

fn wait_job_state(env: &TestEnv, id: u64, state: JobState) {
    upq_tests::wait::wait_for_explained(
        TIMEOUT,
        || {
            format!(
                "job {id} to be {state:?}:\n{}",
                upq_tests::describe_history(&env.show(id))
            )
        },
        || (env.job(id).state == state).then_some(()),
    );
}

/// Cancel before the release: every job becomes a draft and YouTube's private video is
/// deleted; `recover p1` brings the whole post back. Cancel after a partial release cancels
/// what it can and names the job it is too late for, with its link.
#[test]
fn cancel_and_recover_act_on_the_whole_post() {
    let env = TestEnv::new("post-cancel");
    let server = YouTubeServer::start(YouTubeOptions::default());
    let (local, archive) = configure(&env, &server);
    let _daemon = env.start_daemon();
    let source = env.source("second-thoughts.mp4", MIB + 1);
    let post = add_post(&env, &source, &["--hold"]);
    let ids = post_job_ids(&post);
    wait_post(&env, &server, "p1", "held");
    env.ctl(["cancel", "p1"]).assert_ok("cancel p1");
    wait_post(&env, &server, "p1", "canceled");
    upq_tests::wait::wait_for(TIMEOUT, "YouTube's video to be deleted", || {
        server.videos().iter().all(|v| v.deleted).then_some(())
    });
    let drafts = jobs_of_post(&env.ctl_json(["drafts"]), "p1");
    assert_eq!(drafts, ids, "every job of the post is a draft");
    let drafts_text = env.ctl(["drafts"]).stdout_text();
    assert!(
        drafts_text.contains("post p1 (canceled): Harbour at dawn"),
        "drafts shows the post as one: {drafts_text}"
    );

    env.ctl(["recover", "p1"]).assert_ok("recover p1");
    wait_post(&env, &server, "p1", "held");
    // Release one job alone, then cancel the post: too late for that one.
    env.ctl(["publish", &ids[0].to_string()])
        .assert_ok("publish one job");
    upq_tests::wait::wait_for(TIMEOUT, "the local job to be published", || {
        (env.job(ids[0]).state == JobState::Published).then_some(())
    });
    let cancel = env.ctl(["cancel", "p1"]);
    assert_eq!(cancel.code(), 1, "{}", cancel.stderr_text());
    let stderr = cancel.stderr_text();
    assert!(
        stderr.contains(&format!("job {}", ids[0]))
            && stderr.contains("commit point")
            && stderr.contains(&local.join(source.name()).display().to_string()),
        "the refusal names the job and where it is: {stderr}"
    );
    wait_post(&env, &server, "p1", "partial");
    assert_eq!(env.job(ids[1]).state, JobState::Canceled);
    assert_eq!(env.job(ids[2]).state, JobState::Canceled);
    assert!(!archive.join(source.name()).exists());
    source.assert_same_content(&local.join(source.name()));
    assert_no_violations(&server);
}

/// `--delay` on a post: the folder jobs are ready at once, YouTube only after processing;
/// every job waits for the slowest, and they are released together.
#[test]
fn a_delayed_post_waits_for_its_slowest_job() {
    let env = TestEnv::new("post-delay");
    let server = YouTubeServer::start(YouTubeOptions {
        processing_polls: 3,
        ..YouTubeOptions::default()
    });
    configure(&env, &server);
    let _daemon = env.start_daemon();
    let source = env.source("patience.mp4", MIB);
    let post = add_post(&env, &source, &["--delay", "1s", "--privacy", "public"]);
    assert!(post["release_after"].is_string(), "{post}");
    wait_post(&env, &server, "p1", "published");
    let ids = post_job_ids(&post);
    let entered = |id: u64, state: JobState| {
        let job = env.show(id);
        let entries = history_to(&job, state);
        assert!(!entries.is_empty(), "{}", upq_tests::describe_history(&job));
        entries[0].at
    };
    let youtube_ready = entered(ids[2], JobState::Held);
    let folder_ready = entered(ids[0], JobState::Held);
    let added = chrono::DateTime::parse_from_rfc3339(post["created_at"].as_str().unwrap()).unwrap();
    assert!(
        youtube_ready - added.with_timezone(&chrono::Utc) > chrono::Duration::seconds(1),
        "YouTube was ready only after the delay, so the folders could have gone first"
    );
    assert!(folder_ready < youtube_ready);
    let commits: Vec<_> = ids
        .iter()
        .map(|&id| entered(id, JobState::Publishing))
        .collect();
    for commit in &commits {
        assert!(
            *commit >= youtube_ready,
            "no job was released before the slowest was ready: {commits:?} vs {youtube_ready}"
        );
    }
    let spread = *commits.iter().max().unwrap() - *commits.iter().min().unwrap();
    assert!(
        spread <= chrono::Duration::seconds(1),
        "released together: {spread}"
    );
    assert_eq!(privacy(&the_video(&server, &source)), "public");
    assert_no_violations(&server);
}

/// kill -9 at each job's commit during a post's release: after a restart every job is
/// published once, and the post is not left half public.
#[test]
fn a_kill_at_each_job_s_commit_leaves_no_post_half_published() {
    for member in 0..3 {
        let env = TestEnv::new(&format!("post-commit-kill-{member}"));
        let server = YouTubeServer::start(YouTubeOptions::default());
        let (local, archive) = configure(&env, &server);
        // Post p1's jobs are 1, 2 and 3.
        let step = format!("commit-job-{}", member + 1);
        let mut crashing = Daemon::without_bus(&env).var("UPQ_CRASH_AT", &step).start();
        let source = env.source(&format!("kill-{member}.mp4"), MIB + member);
        add_post(&env, &source, &["--hold", "--privacy", "public"]);
        wait_post(&env, &server, "p1", "held");
        env.ctl(["publish", "p1"]);
        assert!(
            crashing.wait_exit(Duration::from_secs(30)).is_some(),
            "{step}: upqd was not killed at the commit"
        );

        let _daemon = env.start_daemon();
        wait_post(&env, &server, "p1", "published");
        source.assert_same_content(&local.join(source.name()));
        source.assert_same_content(&archive.join(source.name()));
        let video = the_video(&server, &source);
        assert_eq!(privacy(&video), "public", "{step}");
        assert_no_violations(&server);
    }
}

/// `--at` on a post: every job commits at that time, within a second of the others.
#[test]
fn a_scheduled_post_commits_everywhere_at_its_time() {
    let env = TestEnv::new("post-at");
    let server = YouTubeServer::start(YouTubeOptions::default());
    let (local, archive) = configure(&env, &server);
    let _daemon = env.start_daemon();
    let source = env.source("on-time.mp4", MIB);
    let at = chrono::Utc::now() + chrono::Duration::seconds(10);
    let at_text = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let post = add_post(&env, &source, &["--at", &at_text, "--privacy", "public"]);
    for job in post["jobs"].as_array().unwrap() {
        assert_eq!(job["publish_at"], at_text, "{job}");
        assert!(
            job["history"].is_array(),
            "add --json gives each job as show does"
        );
    }
    wait_post(&env, &server, "p1", "held");
    assert!(
        chrono::Utc::now() < at,
        "every job was ready before its time"
    );
    wait_post(&env, &server, "p1", "published");
    let at_second = chrono::DateTime::parse_from_rfc3339(&at_text).unwrap();
    let commits: Vec<_> = post_job_ids(&post)
        .into_iter()
        .map(|id| {
            let job = env.show(id);
            history_to(&job, JobState::Publishing)
                .first()
                .unwrap_or_else(|| panic!("{}", upq_tests::describe_history(&job)))
                .at
        })
        .collect();
    for commit in &commits {
        assert!(*commit >= at_second, "not before its time: {commits:?}");
    }
    let spread = *commits.iter().max().unwrap() - *commits.iter().min().unwrap();
    assert!(spread <= chrono::Duration::seconds(1), "together: {spread}");
    source.assert_same_content(&local.join(source.name()));
    source.assert_same_content(&archive.join(source.name()));
    assert_eq!(privacy(&the_video(&server, &source)), "public");
    assert_no_violations(&server);
}
