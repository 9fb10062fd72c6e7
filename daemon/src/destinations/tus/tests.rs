use super::*;
use reqwest::header::HeaderValue;
use upq_proto::Metadata;

#[test]
fn metadata_is_base64_and_skips_bad_keys() {
    let mut metadata = Metadata {
        title: Some("Trip, day 1".into()),
        ..Metadata::default()
    };
    metadata.extra.insert("bad key".into(), "x".into());
    metadata.extra.insert("tags".into(), "a,b".into());
    let upload = UploadInfo {
        job_id: 1,
        path: "/v/trip.MOV".into(),
        name: "trip.MOV".into(),
        size: 10,
        metadata,
        hold: false,
        publish_at: None,
    };
    let header = upload_metadata(&upload);
    let pairs: Vec<&str> = header.split(',').collect();
    assert_eq!(pairs[0], "filename dHJpcC5NT1Y=");
    assert_eq!(pairs[1], "filetype dmlkZW8vcXVpY2t0aW1l");
    assert!(pairs.contains(&"title VHJpcCwgZGF5IDE="), "{header}");
    assert!(pairs.contains(&"tags YSxi"), "{header}");
    assert!(!header.contains("bad"), "{header}");
}

#[test]
fn retry_after_takes_seconds_or_a_date() {
    let mut headers = HeaderMap::new();
    headers.insert("retry-after", HeaderValue::from_static("2"));
    assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
    headers.insert(
        "retry-after",
        HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
    );
    assert_eq!(retry_after(&headers), Some(Duration::ZERO));
    headers.insert("retry-after", HeaderValue::from_static("soon"));
    assert_eq!(retry_after(&headers), None);
}

#[test]
fn offsets_must_be_present_and_numeric() {
    let mut headers = HeaderMap::new();
    assert_eq!(
        upload_offset(&headers, "HEAD").unwrap_err().kind,
        "protocol"
    );
    headers.insert("upload-offset", HeaderValue::from_static("12x"));
    let err = upload_offset(&headers, "HEAD").unwrap_err();
    assert!(err.message.contains("non-numeric"), "{}", err.message);
    headers.insert("upload-offset", HeaderValue::from_static("42"));
    assert_eq!(upload_offset(&headers, "HEAD").unwrap(), 42);
}

#[test]
fn urls_in_messages_lose_their_secrets() {
    let url = Url::parse("https://user:pw@host/files/abc?token=s3cret").unwrap();
    let shown = redact(&url);
    assert!(
        !shown.contains("s3cret") && !shown.contains("pw"),
        "{shown}"
    );
    assert!(shown.contains("/files/abc"), "{shown}");
}

#[test]
fn checksums_match_known_digests() {
    assert_eq!(
        ChecksumAlgorithm::Sha1.digest(b"abc"),
        "qZk+NkcGgWq6PiVxeFDCbJzQ2J0="
    );
    assert_eq!(
        ChecksumAlgorithm::Sha256.digest(b"abc"),
        "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
    );
}

fn destination(chunk_size: Option<u64>, checksum: Option<ChecksumAlgorithm>) -> TusDestination {
    let destination = TusDestination::new(TusSettings {
        name: "t".into(),
        endpoint: "http://127.0.0.1:1/files/".into(),
        chunk_size,
        headers: Vec::new(),
        connect_timeout: Duration::from_secs(1),
        io_timeout: Duration::from_secs(1),
    })
    .unwrap();
    destination
        .capabilities
        .set(Capabilities {
            checksum,
            ..Capabilities::default()
        })
        .unwrap();
    destination
}

/// The chunks an upload of `size` bytes from `offset` is cut into.
fn chunks(destination: &TusDestination, size: u64, mut offset: u64) -> Vec<u64> {
    let session = RemoteSession(serde_json::json!({"url": "http://127.0.0.1:1/files/a"}));
    let mut lens = Vec::new();
    while offset < size {
        let len = destination.chunk_len(&session, size, offset);
        lens.push(len);
        offset += len;
    }
    lens
}

const MIB: u64 = 1024 * 1024;

#[test]
fn by_default_one_patch_carries_all_but_the_final_piece() {
    let streamed = destination(None, None);
    assert_eq!(chunks(&streamed, 1024 * MIB, 0), [1023 * MIB, MIB]);
    // A resume goes on to the same end, then the final piece.
    assert_eq!(
        chunks(&streamed, 1024 * MIB, 700 * MIB + 5),
        [323 * MIB - 5, MIB]
    );
    // Within the final piece, the rest goes at once; a small file is one PATCH.
    assert_eq!(chunks(&streamed, 1024 * MIB, 1023 * MIB + 7), [MIB - 7]);
    assert_eq!(chunks(&streamed, 300_000, 0), [300_000]);
}

#[test]
fn a_checksumming_server_gets_bounded_chunks_and_a_configured_size_wins() {
    let checked = destination(None, Some(ChecksumAlgorithm::Sha256));
    let lens = chunks(&checked, 200 * MIB, 0);
    assert_eq!(lens, [64 * MIB, 64 * MIB, 64 * MIB, 7 * MIB, MIB]);
    let fixed = destination(Some(8 * MIB), None);
    assert_eq!(chunks(&fixed, 20 * MIB, 0), [8 * MIB, 8 * MIB, 4 * MIB]);
}

#[test]
fn after_a_413_no_chunk_is_longer_than_the_server_took() {
    let streamed = destination(None, None);
    streamed.max_patch.store(8 * MIB, Ordering::Relaxed);
    assert_eq!(
        chunks(&streamed, 20 * MIB, 0),
        [8 * MIB, 8 * MIB, 3 * MIB, MIB]
    );
    let fixed = destination(Some(64 * MIB), None);
    fixed.max_patch.store(MIB, Ordering::Relaxed);
    assert_eq!(chunks(&fixed, 3 * MIB, 0), [MIB, MIB, MIB]);
}
