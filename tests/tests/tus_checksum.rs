//! The tus checksum extension, offered by the shim in front of @tus/server: every PATCH
//! carries a correct `Upload-Checksum` (SHA-256 preferred), and a 460 sends the chunk again.

use upq_tests::tus::{assert_stored_copy, FAST_RETRY};
use upq_tests::{Rule, TestEnv, MIB};
use upq_tests::{TusKeys, TusRig};

#[test]
fn every_patch_carries_a_checksum_and_460_resends_the_chunk() {
    let env = TestEnv::new("tus-checksum");
    let keys = TusKeys {
        daemon: "",
        retry: FAST_RETRY,
        tus: "chunk_size = \"2MiB\"",
    };
    let rig = TusRig::shimmed(&env, keys).with_events();
    rig.shim().offer_checksum("sha1,sha256");
    let (run, _daemon) = rig.start("checked.mp4", 7 * MIB);

    let mismatch = run
        .shim()
        .add_rule(Rule::respond("PATCH", "/files/", 460).skip(1));
    let id = env.add(&run.video, &["--to", "tus"]);
    env.wait_published(id, 60);
    assert_eq!(run.shim().hits(mismatch), 1);

    let patches = run.shim().requests("PATCH");
    let log = run.shim().describe();
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
        run.events()
            .errors(id)
            .iter()
            .all(|e| e.message.contains("460") || e.message.to_lowercase().contains("checksum")),
        "{}",
        run.events().describe(id)
    );
    assert_stored_copy(&run.server.only_upload(), &run.video);
}

#[test]
fn sha1_is_used_when_it_is_the_only_algorithm() {
    let env = TestEnv::new("tus-checksum-sha1");
    let keys = TusKeys {
        daemon: "",
        retry: FAST_RETRY,
        tus: "chunk_size = \"1MiB\"",
    };
    let rig = TusRig::shimmed(&env, keys);
    rig.shim().offer_checksum("sha1");
    let (run, _daemon) = rig.start("sha1.mp4", 3 * MIB + 5);

    let id = env.add(&run.video, &["--to", "tus"]);
    env.wait_published(id, 60);
    let patches = run.shim().requests("PATCH");
    assert_eq!(patches.len(), 4, "{}", run.shim().describe());
    for patch in &patches {
        let checksum = patch.header("upload-checksum").unwrap_or_default();
        assert!(checksum.starts_with("sha1 "), "{checksum}");
        assert_eq!(patch.checksum_matches(), Some(true), "{checksum}");
    }
    assert_stored_copy(&run.server.only_upload(), &run.video);
}
