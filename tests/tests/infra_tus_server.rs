//! The official tus server as the harness runs it: creation, PATCH, HEAD, termination,
//! `Tus-Max-Size`, relative locations and expiry, checked over plain HTTP without upqd.

use std::time::Duration;

use upq_tests::http::{self, tus_create, tus_delete, tus_head, tus_options, tus_patch};
use upq_tests::tus::{encode_metadata, TusOptions};
use upq_tests::{wait_until, TestEnv, TusServer, MIB};

/// Deterministic bytes for a test upload.
fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

#[test]
fn creation_patch_head_and_termination() {
    let env = TestEnv::new("infra-tus");
    let server = TusServer::start(&env);
    assert!(
        server.endpoint.starts_with("http://127.0.0.1:") && server.endpoint.ends_with("/files/")
    );

    let options = tus_options(&server.endpoint).unwrap();
    assert!(matches!(options.status, 200 | 204), "{options:?}");
    let extensions = options
        .header("tus-extension")
        .unwrap_or_default()
        .to_string();
    for wanted in ["creation", "termination", "expiration"] {
        assert!(extensions.contains(wanted), "no {wanted} in {extensions}");
    }
    assert!(
        options.header("tus-max-size").is_none(),
        "no limit unless configured"
    );

    let data = bytes(3 * MIB as usize + 17, 7);
    let metadata = encode_metadata(&[
        ("filename", "clip.mp4"),
        ("filetype", "video/mp4"),
        ("title", "Ünïcode, title"),
    ]);
    let created = tus_create(&server.endpoint, data.len() as u64, &metadata).unwrap();
    assert_eq!(created.status, 201, "{created:?}");
    let url = created.header("location").expect("a Location").to_string();
    assert!(url.starts_with(&server.endpoint), "{url}");

    let first = tus_patch(&url, 0, &data[..MIB as usize]).unwrap();
    assert_eq!(first.status, 204, "{first:?}");
    assert_eq!(first.upload_offset(), Some(MIB));
    let wrong = tus_patch(&url, 5, &data[5..10]).unwrap();
    assert_eq!(
        wrong.status, 409,
        "a PATCH at the wrong offset conflicts: {wrong:?}"
    );

    let head = tus_head(&url).unwrap();
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.upload_offset(), Some(MIB));
    assert_eq!(
        head.header("upload-length"),
        Some(data.len().to_string().as_str())
    );

    let stored = server.only_upload();
    assert_eq!(stored.size, Some(data.len() as u64));
    assert_eq!(stored.received(), MIB);
    assert_eq!(stored.metadata["filename"], "clip.mp4");
    assert_eq!(stored.metadata["filetype"], "video/mp4");
    assert_eq!(stored.metadata["title"], "Ünïcode, title");
    assert_eq!(server.upload(&url).map(|u| u.id), Some(stored.id.clone()));

    let rest = tus_patch(&url, MIB, &data[MIB as usize..]).unwrap();
    assert_eq!(rest.upload_offset(), Some(data.len() as u64), "{rest:?}");
    assert_eq!(std::fs::read(&stored.data_path).unwrap(), data);

    let deleted = tus_delete(&url).unwrap();
    assert_eq!(deleted.status, 204, "{deleted:?}");
    assert!(server.is_gone(&url));
    assert_eq!(server.upload_count(), 0);
}

#[test]
fn max_size_relative_location_and_expiry() {
    let env = TestEnv::new("infra-tus-options");
    let server = TusServer::start_with(
        &env,
        TusOptions {
            max_size: Some(1000),
            relative_location: true,
            expiration: Some(Duration::from_millis(1500)),
            ..TusOptions::default()
        },
    );
    let options = tus_options(&server.endpoint).unwrap();
    assert_eq!(options.header("tus-max-size"), Some("1000"), "{options:?}");

    let too_big = tus_create(&server.endpoint, 1001, "").unwrap();
    assert_eq!(too_big.status, 413, "{too_big:?}");

    let created = tus_create(&server.endpoint, 1000, "").unwrap();
    assert_eq!(created.status, 201, "{created:?}");
    let location = created.header("location").unwrap().to_string();
    assert!(
        location.starts_with("/files/"),
        "relative Location expected: {location}"
    );
    let url = server.direct_url(&location);
    let patched = tus_patch(&url, 0, &bytes(10, 1)).unwrap();
    assert!(patched.header("upload-expires").is_some(), "{patched:?}");

    wait_until(Duration::from_secs(20), "the upload to expire", || {
        matches!(tus_head(&url).unwrap().status, 404 | 410)
    });
    let late = tus_patch(&url, 10, &bytes(10, 2)).unwrap();
    assert!(matches!(late.status, 404 | 410), "{late:?}");
}

#[test]
fn each_server_is_its_own_process_and_store() {
    let env = TestEnv::new("infra-tus-two");
    let a = TusServer::start_with(
        &env,
        TusOptions {
            store_name: Some("a".into()),
            ..TusOptions::default()
        },
    );
    let b = TusServer::start_with(
        &env,
        TusOptions {
            store_name: Some("b".into()),
            ..TusOptions::default()
        },
    );
    assert_ne!(a.endpoint, b.endpoint);
    let created = tus_create(&a.endpoint, 5, "").unwrap();
    assert_eq!(created.status, 201);
    assert_eq!(a.upload_count(), 1);
    assert_eq!(b.upload_count(), 0);
    let endpoint = a.endpoint.clone();
    drop(a);
    assert!(
        http::request_with_timeout("OPTIONS", &endpoint, &[], &[], Duration::from_secs(2)).is_err(),
        "the server is stopped on drop"
    );
}
