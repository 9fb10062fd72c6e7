//! The tus checksum extension, offered by the shim in front of @tus/server: every PATCH
//! carries a correct `Upload-Checksum` (SHA-256 preferred), and a 460 sends the chunk again.

use upq_tests::tus::{assert_stored_copy, FAST_RETRY};
use upq_tests::{tus_config, EventLog, Rule, Shim, TestEnv, TusServer, MIB};

#[test]
fn every_patch_carries_a_checksum_and_460_resends_the_chunk() {
    let env = TestEnv::new("tus-checksum");
    let server = TusServer::start(&env);
    let shim = Shim::start(server.addr());
    shim.offer_checksum("sha1,sha256");
    env.write_config(&tus_config(
        &shim.endpoint(),
        "",
        FAST_RETRY,
        "chunk_size = \"2MiB\"",
    ));
    let video = env.source("checked.mp4", 7 * MIB);
    let _daemon = env.start_daemon();
    let events = EventLog::subscribe(&env);

    let mismatch = shim.add_rule(Rule::respond("PATCH", "/files/", 460).skip(1));
    let id = env.add(&video, &["--to", "tus"]);
    env.wait_published(id, 60);
    assert_eq!(shim.hits(mismatch), 1);

    let patches = shim.requests("PATCH");
    let log = shim.describe();
    assert_eq!(
        patches.len(),
        5,
        "four chunks plus the one sent again:\n{log}"
    );
    for patch in &patches {
        let checksum = patch
            .header("upload-checksum")
            .unwrap_or_else(|| panic!("a PATCH without Upload-Checksum:\n{log}"));
        assert!(
            checksum.starts_with("sha256 "),
            "sha256 is preferred: {checksum}"
        );
        assert_eq!(
            patch.checksum_matches(),
            Some(true),
            "wrong checksum {checksum}:\n{log}"
        );
    }
    // The refused chunk is the one sent next, from the same offset.
    assert_eq!(patches[1].status, Some(460));
    let offsets: Vec<Option<u64>> = patches.iter().map(|p| p.upload_offset()).collect();
    assert_eq!(
        offsets,
        [
            Some(0),
            Some(2 * MIB),
            Some(2 * MIB),
            Some(4 * MIB),
            Some(6 * MIB)
        ],
        "{log}"
    );
    assert!(
        events
            .errors(id)
            .iter()
            .all(|e| e.message.contains("460") || e.message.to_lowercase().contains("checksum")),
        "{}",
        events.describe(id)
    );
    assert_stored_copy(&server.only_upload(), &video);
}

#[test]
fn sha1_is_used_when_it_is_the_only_algorithm() {
    let env = TestEnv::new("tus-checksum-sha1");
    let server = TusServer::start(&env);
    let shim = Shim::start(server.addr());
    shim.offer_checksum("sha1");
    env.write_config(&tus_config(
        &shim.endpoint(),
        "",
        FAST_RETRY,
        "chunk_size = \"1MiB\"",
    ));
    let video = env.source("sha1.mp4", 3 * MIB + 5);
    let _daemon = env.start_daemon();

    let id = env.add(&video, &["--to", "tus"]);
    env.wait_published(id, 60);
    let patches = shim.requests("PATCH");
    assert_eq!(patches.len(), 4, "{}", shim.describe());
    for patch in &patches {
        let checksum = patch.header("upload-checksum").unwrap_or_default();
        assert!(checksum.starts_with("sha1 "), "{checksum}");
        assert_eq!(patch.checksum_matches(), Some(true), "{checksum}");
    }
    assert_stored_copy(&server.only_upload(), &video);
}
