//! The recording HTTP shim on its own: streaming several MiB through, forced statuses,
//! the Nth match, lying headers and the checksum extension, against the real tus server.

use base64::Engine;
use sha2::{Digest, Sha256};
use upq_tests::http::{tus_create, tus_head, tus_options, tus_patch};
use upq_tests::{Edit, Rule, Shim, TestEnv, TusServer, MIB};

fn create_through(shim: &Shim, size: u64) -> String {
    let created = tus_create(&shim.endpoint(), size, "").unwrap();
    assert_eq!(created.status, 201, "{created:?}");
    created.header("location").unwrap().to_string()
}

#[test]
fn forwards_streams_and_records() {
    let env = TestEnv::new("infra-shim-forward");
    let server = TusServer::start(&env);
    let shim = Shim::start(server.addr());
    let url = create_through(&shim, 6 * MIB);
    assert!(
        url.starts_with(&shim.endpoint()),
        "the Location names the shim: {url}"
    );

    let data: Vec<u8> = (0..6 * MIB).map(|i| (i % 251) as u8).collect();
    let patched = tus_patch(&url, 0, &data).unwrap();
    assert_eq!(patched.status, 204, "{patched:?}");
    assert_eq!(patched.upload_offset(), Some(6 * MIB));
    assert_eq!(std::fs::read(server.only_upload().data_path).unwrap(), data);

    let records = shim.records();
    let methods: Vec<&str> = records.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["POST", "PATCH"], "{}", shim.describe());
    let patch = &records[1];
    assert_eq!(patch.upload_offset(), Some(0));
    assert_eq!(patch.body_bytes, 6 * MIB);
    assert!(patch.body_complete);
    assert_eq!(patch.status, Some(204));
    assert!(!patch.ruled);
    assert_eq!(
        patch.header("content-type"),
        Some("application/offset+octet-stream")
    );
    assert_eq!(
        records[0].header("upload-length"),
        Some((6 * MIB).to_string().as_str())
    );
}

#[test]
fn forced_statuses_do_not_reach_the_server() {
    let env = TestEnv::new("infra-shim-forced");
    let server = TusServer::start(&env);
    let shim = Shim::start(server.addr());
    let url = create_through(&shim, 2 * MIB);
    let data = vec![9u8; 2 * MIB as usize];

    let rule = shim.add_rule(Rule::respond("PATCH", "/files/", 429).header("Retry-After", "2"));
    let limited = tus_patch(&url, 0, &data).unwrap();
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after"), Some("2"));
    assert_eq!(shim.hits(rule), 1);
    assert_eq!(
        server.only_upload().received(),
        0,
        "a forced answer forwards nothing"
    );
    let drained = shim.requests("PATCH").pop().unwrap();
    assert_eq!(
        drained.body_bytes,
        2 * MIB,
        "the body is read before the forced answer"
    );
    assert!(drained.ruled);

    let ok = tus_patch(&url, 0, &data).unwrap();
    assert_eq!(ok.status, 204, "the rule acts once: {ok:?}");
    assert_eq!(shim.hits(rule), 1);
}

#[test]
fn the_nth_match_and_rules_that_last() {
    let env = TestEnv::new("infra-shim-nth");
    let server = TusServer::start(&env);
    let shim = Shim::start(server.addr());
    let url = create_through(&shim, 10);

    shim.add_rule(Rule::respond("HEAD", "/files/", 503).skip(1));
    let statuses: Vec<u16> = (0..3).map(|_| tus_head(&url).unwrap().status).collect();
    assert_eq!(statuses, [200, 503, 200]);

    let lasting = shim.add_rule(Rule::respond("HEAD", "/files/", 500).always());
    assert!((0..3).all(|_| tus_head(&url).unwrap().status == 500));
    shim.remove_rule(lasting);
    assert_eq!(tus_head(&url).unwrap().status, 200);
    assert_eq!(
        tus_options(&shim.endpoint()).unwrap().status,
        204,
        "other methods untouched"
    );
}

#[test]
fn lies_in_forwarded_answers() {
    let env = TestEnv::new("infra-shim-lies");
    let server = TusServer::start(&env);
    let shim = Shim::start(server.addr());
    let nowhere = shim.url("/files/nowhere0123456789");
    shim.add_rule(Rule::edit(
        "POST",
        "/files",
        vec![Edit::Set("location".into(), nowhere.clone())],
    ));
    let lost = tus_create(&shim.endpoint(), 100, "").unwrap();
    assert_eq!(lost.header("location"), Some(nowhere.as_str()));
    assert_eq!(
        server.upload_count(),
        1,
        "the upload was created all the same"
    );
    assert_eq!(tus_head(&nowhere).unwrap().status, 404);

    let url = server.uploads()[0].id.clone();
    let url = shim.url(&format!("/files/{url}"));
    let chunk = [1u8; 10];
    let lies = [
        (Edit::Remove("upload-offset".into()), 204, None),
        (Edit::OffsetBeyond(1000), 204, Some("1020")),
        (
            Edit::Set("upload-offset".into(), "ten".into()),
            204,
            Some("ten"),
        ),
        (Edit::Status(200), 200, Some("40")),
    ];
    for (offset, (edit, status, claimed)) in lies.into_iter().enumerate() {
        shim.add_rule(Rule::edit("PATCH", "/files/", vec![edit.clone()]));
        let answer = tus_patch(&url, offset as u64 * 10, &chunk).unwrap();
        assert_eq!(answer.status, status, "{edit:?}: {answer:?}");
        assert_eq!(
            answer.header("upload-offset"),
            claimed,
            "{edit:?}: {answer:?}"
        );
    }
    assert_eq!(
        server.only_upload().received(),
        40,
        "every lying answer was forwarded"
    );
}

#[test]
fn checksum_extension_offered_and_verified() {
    let env = TestEnv::new("infra-shim-checksum");
    let server = TusServer::start(&env);
    let shim = Shim::start(server.addr());
    shim.offer_checksum("sha1,sha256");
    let options = tus_options(&shim.endpoint()).unwrap();
    assert!(
        options
            .header("tus-extension")
            .unwrap()
            .ends_with(",checksum"),
        "{options:?}"
    );
    assert_eq!(
        options.header("tus-checksum-algorithm"),
        Some("sha1,sha256")
    );

    let url = create_through(&shim, 2 * MIB);
    let data = vec![0xEEu8; MIB as usize];
    let digest = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&data));
    let rule = shim.add_rule(Rule::respond("PATCH", "/files/", 460));
    let patch = |offset: u64, checksum: &str| {
        let offset_text = offset.to_string();
        upq_tests::http::request(
            "PATCH",
            &url,
            &[
                ("Tus-Resumable", "1.0.0"),
                ("Content-Type", "application/offset+octet-stream"),
                ("Upload-Offset", offset_text.as_str()),
                ("Upload-Checksum", checksum),
            ],
            &data,
        )
        .unwrap()
    };
    assert_eq!(patch(0, &format!("sha256 {digest}")).status, 460);
    assert_eq!(shim.hits(rule), 1);
    assert_eq!(patch(0, &format!("sha256 {digest}")).status, 204);
    assert_eq!(
        patch(MIB, "sha256 AAAA").status,
        204,
        "the shim records, the server accepts"
    );

    let patches = shim.requests("PATCH");
    let verdicts: Vec<Option<bool>> = patches.iter().map(|r| r.checksum_matches()).collect();
    assert_eq!(
        verdicts,
        [Some(true), Some(true), Some(false)],
        "{}",
        shim.describe()
    );
}
