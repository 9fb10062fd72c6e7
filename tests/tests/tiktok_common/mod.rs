//! What the TikTok end-to-end tests share: a daemon configured for the conformance
//! server, real video fixtures made by ffmpeg, and checks on what the server received.

#![allow(dead_code)]

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use upq_tests::env::toml_string;
use upq_tests::tiktok::{OAuthApp, TikTokOptions, TikTokServer, UploadRecord};
use upq_tests::tus::FAST_RETRY;
use upq_tests::video::{make_video, VideoSpec};
use upq_tests::{hash_file, wait_for, JobState, JobView, SourceFile, TestEnv};

/// The rate window both sides count in, short so processing polls come quickly.
pub const WINDOW: Duration = Duration::from_secs(3);

/// Server options for tests: the short window, the documented limits.
pub fn options() -> TikTokOptions {
    TikTokOptions {
        rate_window: WINDOW,
        ..TikTokOptions::default()
    }
}

/// Writes the token file and a config whose default destination is `tiktok`
/// talking to `server` in `mode`, with `destination_keys` added.
pub fn configure(env: &TestEnv, server: &TikTokServer, mode: &str, destination_keys: &str) {
    configure_with(env, server, mode, "", destination_keys);
}

pub fn configure_with(
    env: &TestEnv,
    server: &TikTokServer,
    mode: &str,
    daemon_keys: &str,
    destination_keys: &str,
) {
    let token_file = env.root().join("tiktok.token");
    std::fs::write(&token_file, format!("{}\n", server.token())).expect("write token file");
    env.write_config(&format!(
        "[daemon]\ndefault_destination = \"tiktok\"\n{daemon_keys}\n\n\
         [daemon.retry]\n{FAST_RETRY}\n\n\
         [destinations.tiktok]\nkind = \"tiktok\"\napi_base = {}\naccess_token_file = {}\n\
         mode = \"{mode}\"\nrate_window = \"{}s\"\n{destination_keys}\n",
        toml_string(Path::new(&server.api_base())),
        toml_string(&token_file),
        WINDOW.as_secs()
    ));
}

/// Server options with the OAuth app `app` on top of [`options`].
pub fn oauth_options(app: OAuthApp) -> TikTokOptions {
    TikTokOptions {
        oauth: Some(app),
        ..options()
    }
}

/// A config whose `tiktok` destination signs in against `server` (no token of its own).
pub fn configure_signin(env: &TestEnv, server: &TikTokServer, daemon_keys: &str) {
    let app = OAuthApp::default();
    env.write_config(&format!(
        "[daemon]\ndefault_destination = \"tiktok\"\n{daemon_keys}\n\n\
         [daemon.retry]\n{FAST_RETRY}\n\n\
         [destinations.tiktok]\nkind = \"tiktok\"\napi_base = {}\n\
         client_key = \"{}\"\nclient_secret = \"{}\"\n\
         auth_url = {}\ntoken_url = {}\nrevoke_url = {}\n\
         mode = \"direct\"\nrate_window = \"{}s\"\n",
        toml_string(Path::new(&server.api_base())),
        app.client_key,
        app.client_secret,
        toml_string(Path::new(&server.authorize_url())),
        toml_string(Path::new(&server.url("/v2/oauth/token/"))),
        toml_string(Path::new(&server.url("/v2/oauth/revoke/"))),
        WINDOW.as_secs()
    ));
}

/// A real video made by ffmpeg under `<root>/videos`.
pub fn video(env: &TestEnv, name: &str, spec: &VideoSpec) -> SourceFile {
    let path = make_video(&env.root().join("videos"), name, spec);
    source_of(&path)
}

/// A valid 1080x1920 H.264 MP4 grown to `size` bytes with a trailing `free` box, which
/// every MP4 reader skips: a real video of any size without encoding that much.
pub fn mp4_of_size(env: &TestEnv, name: &str, size: u64) -> SourceFile {
    let spec = VideoSpec::new("libx264", "mp4")
        .size(1080, 1920)
        .seconds(1.0);
    let path = make_video(&env.root().join("videos"), name, &spec);
    let current = std::fs::metadata(&path).expect("stat fixture").len();
    assert!(
        size >= current + 8,
        "{name}: the encoded video is {current} bytes, more than the {size} asked for"
    );
    let padding = size - current;
    assert!(padding <= u32::MAX as u64, "free box too large");
    let mut file = OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open fixture");
    file.write_all(&(padding as u32).to_be_bytes()).unwrap();
    file.write_all(b"free").unwrap();
    let block = vec![0u8; 1 << 20];
    let mut left = padding - 8;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
    file.sync_all().unwrap();
    drop(file);
    source_of(&path)
}

pub fn source_of(path: &Path) -> SourceFile {
    SourceFile {
        path: path.to_path_buf(),
        size: std::fs::metadata(path).expect("stat fixture").len(),
        hash: hash_file(path),
    }
}

/// A small valid vertical video (H.264 MP4, 1080x1920, 1 s).
pub fn small_video(env: &TestEnv, name: &str) -> SourceFile {
    video(
        env,
        name,
        &VideoSpec::new("libx264", "mp4").size(1080, 1920),
    )
}

/// Waits until job `id` is in `state`, showing the job's history and the server's log otherwise.
pub fn wait_state(
    env: &TestEnv,
    server: &TikTokServer,
    id: u64,
    state: JobState,
    timeout: Duration,
) -> JobView {
    upq_tests::wait::wait_for_explained(
        timeout,
        || {
            format!(
                "job {id} to be {state:?}; history:\n{}\nserver:\n{}",
                upq_tests::describe_history(&env.show(id)),
                server.describe()
            )
        },
        || {
            let job = env.job(id);
            (job.state == state).then_some(job)
        },
    )
}

/// The upload the server holds for `publish_id`.
pub fn upload(server: &TikTokServer, publish_id: &str) -> UploadRecord {
    server
        .uploads()
        .into_iter()
        .find(|u| u.publish_id == publish_id)
        .unwrap_or_else(|| {
            panic!(
                "no upload {publish_id} on the server:\n{}",
                server.describe()
            )
        })
}

/// The server's uploads, waiting until there are `count` of them.
pub fn uploads(server: &TikTokServer, count: usize, timeout: Duration) -> Vec<UploadRecord> {
    wait_for(timeout, format!("{count} uploads on the server"), || {
        let uploads = server.uploads();
        (uploads.len() >= count).then_some(uploads)
    })
}

/// Panics unless the upload is complete and byte-identical to `file`, with every PUT
/// answered 206 and the last 201, in plan order.
pub fn assert_clean_upload(server: &TikTokServer, record: &UploadRecord, file: &SourceFile) {
    assert!(record.complete, "upload incomplete:\n{}", server.describe());
    assert_eq!(record.video_size, file.size);
    assert_eq!(
        record.blake3.as_deref(),
        Some(file.hash.as_str()),
        "the server's bytes differ from the file"
    );
    let count = record.chunks.len();
    assert_eq!(
        count as u64, record.total_chunk_count,
        "one PUT per chunk: {:?}",
        record.chunks
    );
    for (i, (first, last, status)) in record.chunks.iter().enumerate() {
        assert_eq!(*first, i as u64 * record.chunk_size, "chunk {i} offset");
        let expected = if i + 1 == count { 201 } else { 206 };
        assert_eq!(*status, expected, "chunk {i} ({first}-{last}) status");
    }
    assert_eq!(record.chunks.last().map(|c| c.1 + 1), Some(file.size));
}

/// Panics if the server saw any request the client got wrong.
pub fn assert_no_violations(server: &TikTokServer) {
    assert_no_violations_but(server, &[]);
}

/// Like [`assert_no_violations`], allowing refusals whose text has one of `expected`
/// (those the test provoked, such as an expired URL).
pub fn assert_no_violations_but(server: &TikTokServer, expected: &[&str]) {
    let violations: Vec<String> = server
        .violations()
        .into_iter()
        .filter(|v| !expected.iter().any(|e| v.contains(e)))
        .collect();
    assert!(
        violations.is_empty(),
        "upqd broke TikTok's rules:\n{}\nserver:\n{}",
        violations.join("\n"),
        server.describe()
    );
}
