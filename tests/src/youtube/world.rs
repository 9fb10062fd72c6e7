//! What end-to-end YouTube tests share: a test environment whose `youtube` destination talks
//! to a conformance server with its fixed access token, waits on a job's state with the
//! server's view in the failure, and the checks every test ends with.

use std::path::Path;
use std::time::Duration;

use upq_proto::{JobState, JobView};

use super::{VideoRecord, YouTubeOptions, YouTubeServer};
use crate::env::toml_string;
use crate::tus::FAST_RETRY;
use crate::{SourceFile, TestEnv};

/// How long a job may take to reach a state.
pub const TIMEOUT: Duration = Duration::from_secs(90);

/// Writes a config whose default destination `youtube` uses `server` with its access token;
/// `daemon_keys` go under `[daemon]`, `keys` under the destination.
pub fn configure(env: &TestEnv, server: &YouTubeServer, daemon_keys: &str, keys: &str) {
    env.write_config(&format!(
        "[daemon]\ndefault_destination = \"youtube\"\n{daemon_keys}\n\n\
         [daemon.retry]\n{FAST_RETRY}\n\n\
         [destinations.youtube]\nkind = \"youtube\"\napi_base = {}\naccess_token = \"{}\"\n{keys}\n",
        toml_string(Path::new(&server.api_base())),
        server.token(),
    ));
}

/// `[destinations.youtube]` signing in to `server` as the Google app `app` (client id and
/// secret, the server's authorization, token and revocation endpoints).
pub fn signin_destination(server: &YouTubeServer, app: &super::GoogleApp) -> String {
    format!(
        "[destinations.youtube]\nkind = \"youtube\"\napi_base = {}\nclient_id = \"{}\"\n\
         client_secret = \"{}\"\nauth_url = {}\ntoken_url = {}\nrevoke_url = {}\n",
        toml_string(Path::new(&server.api_base())),
        app.client_id,
        app.client_secret,
        toml_string(Path::new(&server.auth_url())),
        toml_string(Path::new(&server.token_url())),
        toml_string(Path::new(&server.revoke_url())),
    )
}

/// A test environment whose only destination, `youtube`, signs in to a server started
/// with the default Google app; nobody is signed in yet.
pub fn signin_world(name: &str) -> (TestEnv, YouTubeServer) {
    let env = TestEnv::new(name);
    let app = super::GoogleApp::default();
    let server = YouTubeServer::start(YouTubeOptions {
        oauth: Some(app.clone()),
        ..YouTubeOptions::default()
    });
    env.write_config(&signin_destination(&server, &app));
    (env, server)
}

/// A test environment and a server started with `options`, configured for each other.
pub fn world(name: &str, options: YouTubeOptions) -> (TestEnv, YouTubeServer) {
    let env = TestEnv::new(name);
    let server = YouTubeServer::start(options);
    configure(&env, &server, "", "");
    (env, server)
}

/// Waits until job `id` is in `state`; a timeout shows its history and the server.
pub fn wait_state(env: &TestEnv, server: &YouTubeServer, id: u64, state: JobState) -> JobView {
    wait_job(env, server, id, &format!("{state:?}"), |job| {
        job.state == state
    })
}

/// Waits until job `id` is as `wanted` says (`what` names it in a timeout's message).
pub fn wait_job(
    env: &TestEnv,
    server: &YouTubeServer,
    id: u64,
    what: &str,
    wanted: impl Fn(&JobView) -> bool,
) -> JobView {
    crate::wait::wait_for_explained(
        TIMEOUT,
        || {
            format!(
                "job {id} to be {what}; history:\n{}\nserver:\n{}",
                crate::describe_history(&env.show(id)),
                server.describe()
            )
        },
        || {
            let job = env.job(id);
            wanted(&job).then_some(job)
        },
    )
}

pub fn assert_no_violations(server: &YouTubeServer) {
    let violations = server.violations();
    assert!(
        violations.is_empty(),
        "upqd broke YouTube's rules:\n{}\nserver:\n{}",
        violations.join("\n"),
        server.describe()
    );
}

/// The one finished video on the server, its bytes checked against `source`.
pub fn the_video(server: &YouTubeServer, source: &SourceFile) -> VideoRecord {
    let videos: Vec<VideoRecord> = server
        .videos()
        .into_iter()
        .filter(|v| v.upload_status != "uploading")
        .collect();
    assert_eq!(videos.len(), 1, "{}", server.describe());
    let video = videos[0].clone();
    assert_eq!(video.size, source.size);
    assert_eq!(video.received, source.size);
    assert_eq!(
        video.blake3, source.hash,
        "the bytes YouTube holds are the file's"
    );
    video
}

pub fn privacy(video: &VideoRecord) -> String {
    video.status["privacyStatus"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Waits until the one video of `source` is public on the server (YouTube's own schedule).
pub fn wait_until_public(server: &YouTubeServer, source: &SourceFile) {
    crate::wait::wait_for_explained(
        TIMEOUT,
        || format!("the video to go public:\n{}", server.describe()),
        || {
            server
                .videos()
                .iter()
                .any(|v| v.size == source.size && privacy(v) == "public")
                .then_some(())
        },
    );
}
