//! The tus destination against the official tus server: a large upload arrives byte for
//! byte with its metadata, `Tus-Max-Size` is enforced at `add`, and secrets stay secret.
//!
//! Each test runs upqd and @tus/server (Node) in its own temporary environment.

use upq_tests::tus::{assert_stored_copy, TusOptions, FAST_RETRY};
use upq_tests::{
    describe_history, history_to, tus_config, JobState, OutputExt, Shim, TestEnv, TusServer, MIB,
};
use upq_tests::{TusKeys, TusRig};

#[test]
fn large_upload_arrives_byte_identical_with_its_metadata() {
    let env = TestEnv::new("tus-basic");
    // No chunk size: the defaults a user gets (one PATCH, then the final piece).
    let keys = TusKeys {
        daemon: "max_active = 2",
        retry: FAST_RETRY,
        tus: "",
    };
    let (run, _daemon) = TusRig::direct(&env, keys)
        .with_events()
        .start("holiday.mp4", 300 * MIB);

    let id = env.add(
        &run.video,
        &[
            "--to",
            "tus",
            "--title",
            "Summer, at last",
            "--caption",
            "Filmed on the coast",
            "--privacy",
            "unlisted",
        ],
    );
    env.wait_published(id, 600);
    // upload_url as it was shown while the upload was under way.
    let upload_url = run
        .events()
        .transitions(id)
        .iter()
        .find_map(|t| t.job.upload_url.clone())
        .unwrap_or_else(|| {
            panic!(
                "no upload_url was ever shown:\n{}",
                run.events().describe(id)
            )
        });
    assert!(
        upload_url.starts_with(&run.server.endpoint),
        "upload_url {upload_url} is not under {}",
        run.server.endpoint
    );

    let job = env.show(id);
    let history = describe_history(&job);
    assert_eq!(job.bytes_sent, run.video.size);
    assert_eq!(
        job.remote.as_deref(),
        Some(upload_url.as_str()),
        "{history}"
    );
    let committing = history_to(&job, JobState::Processing);
    assert!(
        committing
            .iter()
            .any(|e| e.reason.contains("committing: the upload becomes public")),
        "no commit entry:\n{history}"
    );

    let stored = run.server.only_upload();
    assert_eq!(
        run.server.upload(&upload_url).map(|u| u.id),
        Some(stored.id.clone())
    );
    assert_stored_copy(&stored, &run.video);
    assert_eq!(
        stored.metadata.get("filename").map(String::as_str),
        Some("holiday.mp4")
    );
    assert_eq!(
        stored.metadata.get("filetype").map(String::as_str),
        Some("video/mp4")
    );
    assert_eq!(
        stored.metadata.get("title").map(String::as_str),
        Some("Summer, at last")
    );
    assert_eq!(
        stored.metadata.get("caption").map(String::as_str),
        Some("Filmed on the coast")
    );
    assert_eq!(
        stored.metadata.get("privacy").map(String::as_str),
        Some("unlisted")
    );
    let head = run.server.head(&upload_url);
    assert_eq!(head.upload_offset(), Some(run.video.size), "{head:?}");
    run.video.assert_unchanged();
}

#[test]
fn a_file_over_tus_max_size_is_refused_at_add() {
    let env = TestEnv::new("tus-max-size");
    let server = TusServer::start_with(
        &env,
        TusOptions {
            max_size: Some(3 * MIB),
            ..TusOptions::default()
        },
    );
    env.write_config(&tus_config(
        &server.endpoint,
        "",
        FAST_RETRY,
        "chunk_size = \"1MiB\"",
    ));
    let too_big = env.source("too-big.mp4", 3 * MIB + 1);
    let fits = env.source("fits.mp4", 3 * MIB);
    let _daemon = env.start_daemon();

    let refused = env.ctl(["add", too_big.arg(), "--to", "tus"]);
    assert_eq!(refused.code(), 1, "{refused:?}");
    let message = refused.stderr_text();
    assert!(
        message.to_lowercase().contains("max")
            && (message.contains(&(3 * MIB).to_string())
                || message.contains("3 MiB")
                || message.contains("3.0 MiB")
                || message.contains("3MiB")),
        "the refusal should name the server's maximum (3 MiB): {message}"
    );
    assert!(env.list(true).is_empty(), "a refused file is not queued");
    assert_eq!(
        server.upload_count(),
        0,
        "nothing was created on the server"
    );

    let id = env.add(&fits, &["--to", "tus"]);
    env.wait_published(id, 60);
    assert_stored_copy(&server.only_upload(), &fits);
}

#[test]
fn a_relative_location_is_resolved_against_the_endpoint() {
    let env = TestEnv::new("tus-relative");
    let server = TusServer::start_with(
        &env,
        TusOptions {
            relative_location: true,
            ..TusOptions::default()
        },
    );
    env.write_config(&tus_config(
        &server.endpoint,
        "",
        FAST_RETRY,
        "chunk_size = \"1MiB\"",
    ));
    let video = env.source("relative.mp4", 5 * MIB + 123);
    let _daemon = env.start_daemon();

    let id = env.add(&video, &["--to", "tus"]);
    env.wait_published(id, 60);
    assert_stored_copy(&server.only_upload(), &video);
}

#[test]
fn header_secrets_reach_the_server_but_never_logs_or_output() {
    let env = TestEnv::new("tus-secrets");
    let server = TusServer::start(&env);
    let shim = Shim::start(server.addr());
    let token = "tok-3f9a1c7e5d2b8640-secret";
    let key_file = env.root().join("api-key");
    let api_key = "key-88e1d0c4aa7b-secret";
    std::fs::write(&key_file, format!("{api_key}\n")).unwrap();
    env.set_var("TUS_TOKEN", token);
    // Every level down to debug: secrets must stay out of all of them.
    env.set_var("RUST_LOG", "debug");
    env.write_config(&tus_config(
        &shim.endpoint(),
        "",
        FAST_RETRY,
        &format!(
            "chunk_size = \"1MiB\"\nheaders = {{ Authorization = \"Bearer ${{env:TUS_TOKEN}}\", X-Api-Key = \"${{file:{}}}\" }}",
            key_file.display()
        ),
    ));
    let video = env.source("secret.mp4", 3 * MIB);
    let daemon = env.start_daemon_with(&["--log-format", "json"]);
    let id = env.add(&video, &["--to", "tus", "--title", "Secret"]);
    env.wait_published(id, 60);

    let records = shim.records();
    assert!(!records.is_empty());
    for record in records.iter().filter(|r| r.method != "OPTIONS") {
        assert_eq!(
            record.header("authorization"),
            Some(format!("Bearer {token}").as_str()),
            "{} {} without the expanded Authorization",
            record.method,
            record.path
        );
        assert_eq!(record.header("x-api-key"), Some(api_key));
    }
    let shown = env.ctl(["show", &id.to_string()]);
    let shown_json = env.ctl(["show", &id.to_string(), "--json"]);
    let status = env.ctl(["status", "--json"]);
    let mut seen = daemon.log();
    for output in [&shown, &shown_json, &status] {
        seen.push_str(&output.stdout_text());
        seen.push_str(&output.stderr_text());
    }
    for secret in [token, api_key] {
        assert!(!seen.contains(secret), "secret {secret} leaked:\n{seen}");
    }
}
